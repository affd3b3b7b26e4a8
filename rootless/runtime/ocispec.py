"""An OCI bundle's ``config.json`` (runtime-spec 1.0+) as this project's plan, pure.

:func:`translate` gives an :class:`OciPlan`: the :class:`~rootless.runtime.spec.ContainerSpec`,
the mount plan (``mountplan.Op``s), the id maps and what PID 1 does before its exec
(:class:`OciProcess`); ``rootless.engine.ocirt`` runs it with the runtime of ``rootless run``.
Whatever of the spec cannot be honoured rootless is refused in one line naming the field
(:data:`REFUSED`); unknown properties are ignored, as the spec asks.
"""

from __future__ import annotations

import os

from rootless.base.errors import UsageError
from rootless.base.idmap import IdMapping, Range
from rootless.base.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_STRICTATIME,
)
from rootless.base.valuetype import KeywordRecord, keyword_record
from rootless.runtime.mountplan import DEV_LINKS, DEV_NODES, Op, propagation_flags

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from rootless.runtime.spec import ContainerSpec

# fields of the spec that rootless cannot honour: refused when given (non-empty)
REFUSED = ("hooks", "linux.intelRdt", "linux.personality", "linux.mountLabel", "linux.timeOffsets",
           "process.selinuxLabel", "process.apparmorProfile", "process.ioPriority", "process.scheduler",
           "process.execCPUAffinity", "domainname", "solaris", "windows", "vm", "linux.resources.rdma",
           "linux.resources.hugepageLimits", "linux.resources.network", "linux.resources.unified")
NAMESPACES = ("user", "mount", "pid", "ipc", "uts", "network", "cgroup")
RLIMITS = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
           "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
           "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME")  # the kernel's numbering
_FLAG = {"ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False), "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
         "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False), "noexec": (MS_NOEXEC, True),
         "exec": (MS_NOEXEC, False), "strictatime": (MS_STRICTATIME, True), "noatime": (1024, True),
         "nodiratime": (2048, True), "relatime": (1 << 21, True), "norelatime": (1 << 21, False),
         "bind": (MS_BIND, True), "rbind": (MS_BIND | MS_REC, True)}
_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_SYSCTL_NS = (("net.", "network"), ("kernel.shm", "ipc"), ("kernel.msg", "ipc"), ("kernel.sem", "ipc"),
              ("fs.mqueue.", "ipc"), ("kernel.hostname", "uts"), ("kernel.domainname", "uts"))


@keyword_record
class OciProcess(KeywordRecord):
    """What PID 1 (and its keeper) do for an OCI container beyond ``run``'s: ``rlimits``
    (resource number, soft, hard), ``umask``, ``oom_score_adj``, ``sysctl`` (key, value) written in
    the container's namespaces, ``start_fifo`` (the keeper waits there for ``start``; "" for
    none), ``console_socket`` (the pty master goes there, SCM_RIGHTS; "" for none), ``pid_file``
    (where the keeper writes PID 1's host pid; "" for none)."""
    rlimits: tuple[tuple[int, int, int], ...] = ()
    umask: int | None = None
    oom_score_adj: int | None = None
    sysctl: tuple[tuple[str, str], ...] = ()
    start_fifo: str = ""
    console_socket: str = ""
    pid_file: str = ""


@keyword_record
class OciPlan(KeywordRecord):
    """The translation of one bundle: ``root`` (absolute), ``mapping`` (the user namespace's id
    maps), ``seccomp`` (a profile of Docker's format, None: none), ``warnings`` to say."""
    spec: ContainerSpec
    root: str
    mounts: tuple[Op, ...]
    mapping: IdMapping
    process: OciProcess
    terminal: bool = False
    seccomp: dict | None = None
    annotations: dict | None = None
    warnings: tuple[str, ...] = ()


def refuse(field: str, why: str = "cannot be honoured by a rootless runtime", hint: str | None = None) -> UsageError:
    return UsageError(f"config.json: {field} {why}", hint or "remove it from the bundle's config.json")


def check_id(cid: str) -> None:
    """runc's rule for a container ID: a name, never a path."""
    import re
    if not cid or cid in (".", "..") or "/" in cid or not re.fullmatch(r"[\w+\-.]+", cid):
        raise UsageError(f"invalid container ID {cid!r}", "use letters, digits and _ + - . (no / and not ..)")


def load(bundle: str) -> dict:
    """The bundle's config.json, parsed (one-line errors)."""
    import json
    if not os.path.isdir(bundle):
        raise UsageError(f"bundle {bundle!r} is not a directory", "give --bundle DIR, a directory with config.json")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            config = json.loads(f.read())
    except FileNotFoundError:
        raise UsageError(f"no config.json in the bundle {bundle}", "write one (runc spec --rootless)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}",
                         "give a valid JSON config.json") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a JSON object", "give a valid config.json")
    return config


def translate(config: dict, bundle: str, cid: str, uid: int, gid: int,
              subuids: list[tuple[int, int]] = (), subgids: list[tuple[int, int]] = ()) -> OciPlan:  # type: ignore[assignment]
    """The plan of ``config`` for the container ``cid`` of the caller ``uid``/``gid`` (whose
    subordinate id ranges are given)."""
    for path in REFUSED:
        if _get(config, path):
            raise refuse(path)
    version = config.get("ociVersion")
    if not isinstance(version, str) or not version.startswith(("1.0", "1.1", "1.2")):
        raise refuse("ociVersion", f"{version!r} is not supported", "use a config.json of runtime-spec 1.0 or 1.1")
    linux = _dict(config, "linux")
    proc = _dict(config, "process")
    namespaces = _namespaces(linux)
    if "user" not in namespaces:
        raise refuse("linux.namespaces", "has no user namespace, which a rootless container needs",
                     "add {\"type\": \"user\"} (runc spec --rootless writes one)")
    if "mount" not in namespaces:
        raise refuse("linux.namespaces", "has no mount namespace, which a rootless container needs",
                     "add {\"type\": \"mount\"}")
    for key in ("rootfsPropagation",):
        if linux.get(key) not in (None, "", "private", "rprivate", "slave", "rslave"):
            raise refuse(f"linux.{key}", f"{linux[key]!r} is not supported", "use rprivate or rslave")
    root = _dict(config, "root")
    root_path = root.get("path")
    if not isinstance(root_path, str) or not root_path:
        raise refuse("root.path", "is missing", "set root.path (the rootfs directory, relative to the bundle)")
    root_dir = os.path.normpath(os.path.join(bundle, root_path))
    mapping = id_mapping(linux, uid, gid, subuids, subgids)
    user = _dict(proc, "user")
    if user.get("username"):
        raise refuse("process.user.username", "is for Windows")
    cuid, cgid = _int(user.get("uid", 0), "process.user.uid"), _int(user.get("gid", 0), "process.user.gid")
    groups = tuple(str(_int(g, "process.user.additionalGids")) for g in user.get("additionalGids") or ())
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise refuse("process.args", "is missing or empty", "give the command as a list of strings")
    if proc.get("commandLine"):
        raise refuse("process.commandLine", "is for Windows")
    env = proc.get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise refuse("process.env", "is not a list of strings")
    cwd = proc.get("cwd") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise refuse("process.cwd", f"{cwd!r} is not an absolute path")
    caps = _capabilities(_dict(proc, "capabilities"), cuid)
    warnings: list[str] = []
    hostname = config.get("hostname") or ""
    if hostname and "uts" not in namespaces:
        raise refuse("hostname", "needs a UTS namespace (linux.namespaces)")
    asked = {"PidMode": "host" if "pid" not in namespaces else "",
             "UTSMode": "host" if "uts" not in namespaces else "",
             "IpcMode": "host" if "ipc" not in namespaces else "",
             "CgroupnsMode": "host" if "cgroup" not in namespaces else ""}
    from rootless.runtime.spec import ContainerSpec
    spec = ContainerSpec(
        id=cid, name=cid, image_id="", image_name=os.path.abspath(bundle), layers=(), argv=tuple(args),
        env=tuple(env), user=f"{cuid}:{cgid}", workdir=os.path.normpath(cwd),
        hostname=hostname or os.uname().nodename,  # a new UTS namespace without one keeps the host's, as runc's
        network="none" if "network" in namespaces else "host", tty=bool(proc.get("terminal")),
        read_only=bool(root.get("readonly")), no_new_privs=bool(proc.get("noNewPrivileges")),
        caps=caps, seccomp=False, group_add=groups, privileged=False,
        limits=_limits(_dict(linux, "resources")), labels=dict(config.get("annotations") or {}),
        asked={k: v for k, v in asked.items() if v}, root_emulation="off")
    process = OciProcess(rlimits=_rlimits(proc.get("rlimits") or ()), umask=_umask(user.get("umask")),
                         oom_score_adj=None if proc.get("oomScoreAdj") is None
                         else _int(proc["oomScoreAdj"], "process.oomScoreAdj", -1000, 1000),
                         sysctl=_sysctl(linux.get("sysctl") or {}, namespaces))
    mounts = mount_ops(config.get("mounts") or [], linux, bundle, namespaces)
    _check_mapped_gids(mounts, mapping)
    return OciPlan(spec=spec, root=root_dir, mounts=tuple(mounts), mapping=mapping, process=process,
                   terminal=bool(proc.get("terminal")), seccomp=seccomp_profile(linux.get("seccomp")),
                   annotations=dict(config.get("annotations") or {}), warnings=tuple(warnings))


def _get(config: dict, path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _dict(d: dict, key: str) -> dict:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise refuse(key, "is not an object")
    return value


def _int(value, field: str, low: int = 0, high: int = 2 ** 32 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise refuse(field, f"{value!r} is not a valid number")
    return value


def _namespaces(linux: dict) -> set[str]:
    out = set()
    for ns in linux.get("namespaces") or []:
        kind = ns.get("type") if isinstance(ns, dict) else None
        if kind not in NAMESPACES:
            raise refuse("linux.namespaces", f"type {kind!r} is not supported")
        if ns.get("path"):
            raise refuse(f"linux.namespaces ({kind})", "path: joining an existing namespace is not supported",
                         "leave out path, to get a new namespace")
        out.add(kind)
    return out


def id_mapping(linux: dict, uid: int, gid: int, subuids, subgids) -> IdMapping:
    """The config's uidMappings/gidMappings: a single mapping of the caller's id is the single-uid
    map; other ranges must lie within the caller's subordinate ids (newuidmap/newgidmap)."""
    uids = _ranges(linux.get("uidMappings"), uid, subuids, "linux.uidMappings")
    gids = _ranges(linux.get("gidMappings"), gid, subgids, "linux.gidMappings")
    single = len(uids) == 1 and uids[0].outside == uid and len(gids) == 1 and gids[0].outside == gid
    return IdMapping("single" if single else "subid", uids, gids)


def _ranges(items, own: int, subs, field: str) -> tuple[Range, ...]:
    if not items:
        return (Range(0, own, 1),)
    out = []
    for m in items:
        if not isinstance(m, dict):
            raise refuse(field, "is not a list of mappings")
        r = Range(_int(m.get("containerID"), field), _int(m.get("hostID"), field), _int(m.get("size"), field, 1))
        if not (r.outside == own and r.count == 1) and not any(
                s <= r.outside and r.outside + r.count <= s + n for s, n in subs):
            raise refuse(field, f"maps host ids {r.outside}-{r.outside + r.count - 1}, which are neither yours "
                         "nor within your subordinate ids", "map your own id, or ranges of /etc/subuid and /etc/subgid")
        out.append(r)
    return tuple(out)


def _capabilities(caps: dict, uid: int) -> tuple[str, ...]:
    """The capabilities the process keeps: bounding, within effective and permitted (a root
    process gets its bounding set at exec: it gets no more than it asked for)."""
    from rootless.runtime.security import ALL_CAPS

    def names(key: str) -> set[str] | None:
        items = caps.get(key)
        if items is None:
            return None
        out = set()
        for c in items:
            name = c.removeprefix("CAP_") if isinstance(c, str) else ""
            if name not in ALL_CAPS:
                raise refuse(f"process.capabilities.{key}", f"names an unknown capability {c!r}")
            out.add(name)
        return out
    keep = names("bounding")
    for key in ("effective", "permitted", "inheritable"):
        names(key)  # checked
    for key in ("effective", "permitted"):
        more = names(key)
        if more is not None and keep is not None:
            keep &= more
    ambient = names("ambient")
    if ambient and uid != 0:
        raise refuse("process.capabilities.ambient", "for a user other than root is not supported",
                     "run as uid 0 (in the user namespace), or leave ambient empty")
    return tuple(sorted(keep or ()))


def _rlimits(items) -> tuple[tuple[int, int, int], ...]:
    out = []
    for r in items:
        kind = r.get("type") if isinstance(r, dict) else None
        if kind not in RLIMITS:
            raise refuse("process.rlimits", f"type {kind!r} is unknown")
        out.append((RLIMITS.index(kind), _int(r.get("soft"), f"process.rlimits {kind}", 0, 2 ** 64 - 1),
                    _int(r.get("hard"), f"process.rlimits {kind}", 0, 2 ** 64 - 1)))
    return tuple(out)


def _umask(value) -> int | None:
    return None if value is None else _int(value, "process.user.umask", 0, 0o777)


def _sysctl(items: dict, namespaces: set[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in sorted(items.items()):
        ns = next((n for prefix, n in _SYSCTL_NS if key.startswith(prefix)), None)
        if ns is None or ns not in namespaces:
            raise refuse(f"linux.sysctl {key}", "is not of the container's own namespaces",
                         "set only sysctls of its network, IPC or UTS namespace")
        out.append((key, str(value)))
    return tuple(out)


def _limits(res: dict) -> dict:
    """``linux.resources`` as ``cgroups``' limits (Docker's units)."""
    out: dict = {}
    mem, cpu, pids, blkio = (_dict(res, k) for k in ("memory", "cpu", "pids", "blockIO"))
    for key, name in (("limit", "memory"), ("reservation", "memory_reservation"), ("swap", "memory_swap")):
        if mem.get(key) is not None and mem[key] > 0:
            out[name] = int(mem[key])
    for key in mem:
        unset = mem[key] in (None, -1) if key in ("kernel", "kernelTCP") else mem[key] is None
        if key not in ("limit", "reservation", "swap", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate") \
                and not unset:
            raise refuse(f"linux.resources.memory.{key}")
    if mem.get("disableOOMKiller"):
        raise refuse("linux.resources.memory.disableOOMKiller")
    if cpu.get("quota") and cpu["quota"] > 0:
        out["nano_cpus"] = int(cpu["quota"] * 1e9 / (cpu.get("period") or 100000))
    if cpu.get("shares"):
        out["cpu_shares"] = int(cpu["shares"])
    if cpu.get("cpus"):
        out["cpuset_cpus"] = str(cpu["cpus"])
    for key in cpu:
        if key not in ("quota", "period", "shares", "cpus") and cpu[key]:
            raise refuse(f"linux.resources.cpu.{key}")
    if pids.get("limit") and pids["limit"] > 0:
        out["pids_limit"] = int(pids["limit"])
    if blkio.get("weight"):
        out["blkio_weight"] = int(blkio["weight"])
    for key in blkio:
        if key != "weight" and blkio[key]:
            raise refuse(f"linux.resources.blockIO.{key}")
    for rule in res.get("devices") or ():  # the device cgroup: a rootless container makes no device node
        if isinstance(rule, dict) and rule.get("allow") and (rule.get("major") is None or rule.get("type") in
                                                             (None, "a")):
            raise refuse("linux.resources.devices", "allows every device, which a rootless runtime cannot grant")
    return out


def seccomp_profile(sec) -> dict | None:
    """``linux.seccomp`` as a profile of Docker's format (``runtime.seccompprofile`` compiles it)."""
    if not sec:
        return None
    if not isinstance(sec, dict):
        raise refuse("linux.seccomp", "is not an object")
    for key in ("listenerPath", "listenerMetadata"):
        if sec.get(key):
            raise refuse(f"linux.seccomp.{key}", "(a seccomp agent) is not supported")
    if sec.get("flags"):
        raise refuse("linux.seccomp.flags", f"{sec['flags']!r} are not supported")
    profile = {k: v for k, v in sec.items() if k in ("defaultAction", "defaultErrnoRet", "architectures", "syscalls")}
    for entry in profile.get("syscalls") or ():
        if isinstance(entry, dict) and entry.get("action") == "SCMP_ACT_NOTIFY":
            raise refuse("linux.seccomp.syscalls", "action SCMP_ACT_NOTIFY is not supported")
    from rootless.runtime import seccompprofile
    seccompprofile.check(profile, "linux.seccomp")
    return profile


def _options(options, field: str) -> tuple[int, int, list[str]]:
    """(flags, propagation flags, data options) of a mount's options."""
    flags, prop, data = 0, 0, []
    for opt in options or ():
        if not isinstance(opt, str):
            raise refuse(field, f"option {opt!r} is not a string")
        if opt in _FLAG:
            bit, on = _FLAG[opt]
            flags = flags | bit if on else flags & ~bit
        elif opt in _PROPAGATION:
            prop = propagation_flags(opt)
        elif opt in ("unbindable", "runbindable", "tmpcopyup", "idmap", "ridmap", "remount", "mand", "sync",
                     "dirsync", "recursive"):
            raise refuse(field, f"option {opt!r} is not supported")
        else:
            data.append(opt)
    return flags, prop, data


def mount_ops(mounts: list, linux: dict, bundle: str, namespaces: set[str]) -> list[Op]:
    """The config's mounts, in order, with the default devices (bound from the host) and their
    links after ``/dev``, then the masked and read-only paths."""
    ops: list[Op] = []
    devices_done = False
    for n, m in enumerate(mounts):
        field = f"mounts[{n}]"
        if not isinstance(m, dict) or not isinstance(m.get("destination"), str) or not m["destination"].startswith("/"):
            raise refuse(field, "has no absolute destination")
        dest = os.path.normpath(m["destination"])
        kind, source = m.get("type") or "", m.get("source") or ""
        flags, prop, data = _options(m.get("options"), f"{field} ({dest})")
        if flags & MS_BIND or kind == "bind":
            if data:
                raise refuse(f"{field} ({dest})", f"option {data[0]!r} is not supported on a bind mount")
            if not source:
                raise refuse(f"{field} ({dest})", "is a bind mount without a source")
            src = os.path.normpath(os.path.join(bundle, source))
            ops.append(Op("bind", dest, src, flags=flags | MS_BIND, is_file=not os.path.isdir(src), propagation=prop))
            continue
        opts = ",".join(data) or None
        if kind == "proc":
            ops.append(Op("bind", dest, "/proc", flags=MS_BIND | MS_REC) if "pid" not in namespaces
                       else Op("mount", dest, "proc", "proc", flags, opts))
        elif kind in ("tmpfs", "devpts", "mqueue"):
            ops.append(Op("mount", dest, source or kind, kind, flags, opts))
        elif kind == "sysfs":
            ops.append(Op("mount", dest, "sysfs", "sysfs", flags, opts,
                          fallback=(Op("bind", dest, "/sys", flags=MS_BIND | MS_REC | MS_RDONLY),)))
        elif kind in ("cgroup", "cgroup2"):
            ops.append(Op("cgroup", dest))
        else:
            raise refuse(f"{field} ({dest})", f"type {kind!r} is not supported",
                         "use proc, tmpfs, devpts, mqueue, sysfs, cgroup or a bind mount")
        if dest == "/dev":
            ops += _devices()
            devices_done = True
    if not devices_done:
        ops += _devices()
    for dev in linux.get("devices") or ():
        path = dev.get("path") if isinstance(dev, dict) else None
        if not isinstance(path, str) or path.removeprefix("/dev/") not in DEV_NODES:
            raise refuse("linux.devices", f"{path!r}: a rootless runtime cannot create device nodes",
                         "bind the host's node with a mount instead")
    ops += [Op("mask", p) for p in linux.get("maskedPaths") or ()]
    ops += [Op("readonly", p) for p in linux.get("readonlyPaths") or ()]
    return ops


def _check_mapped_gids(mounts: list[Op], mapping: IdMapping) -> None:
    """A devpts ``gid=N`` must name a gid of the user namespace (the kernel says only EINVAL)."""
    for op in mounts:
        for opt in (op.data or "").split(",") if op.fstype == "devpts" else ():
            if opt.startswith("gid=") and opt[4:].isdigit():
                gid = int(opt[4:])
                if not any(r.inside <= gid < r.inside + r.count for r in mapping.gids):
                    raise refuse(f"mounts ({op.target})", f"option {opt} names a gid the user namespace does not map",
                                 f"remove {opt}, or map it in linux.gidMappings")


def _devices() -> list[Op]:
    ops = [Op("bind", f"/dev/{n}", f"/dev/{n}", flags=MS_BIND, is_file=True) for n in DEV_NODES]
    return ops + [Op("symlink", f"/dev/{n}", t) for n, t in DEV_LINKS.items()]
