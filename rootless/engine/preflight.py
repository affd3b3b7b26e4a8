"""Host diagnosis for ``rootless info``: one :class:`Check` per capability.

Every check says what was found (``detail``), what the tool will do about it
(``action``) and, when something is missing, the command or setting that
fixes it (``fix``).

The ``check_*`` functions are pure: they take file contents and facts as
parameters, so tests drive them with tables. The ``host_*`` wrappers read the
real host, read only (nothing under /sys/fs/cgroup or anywhere else is
modified), and :func:`run_checks` calls them in a fixed order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from rootless.base import apparmor, config, idmap, proc
from rootless.base.config import Config
from rootless.base.errors import RootlessError
from rootless.base.paths import NETWORK_FS, Paths, mount_of, nearest_existing
from rootless.runtime import state, volumes

TYPE_CHECKING = False  # annotations only: typing is not loaded for them
if TYPE_CHECKING:
    from layers.overlay import Probe
    from rootless.runtime.state import ContainerRecord

SUBID_FIX = "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
SINGLE_ACTION = "single-uid map: files of other uids in images become yours"
FULL_RANGE = 65536
CONTROLLERS = ("cpu", "memory", "pids", "io")
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_ACTION = "resource limits (--memory, --cpus, --pids-limit, ...) are refused, in one line naming the fix"
LOW_SPACE = 1 << 30


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail" | "info"
    detail: str
    action: str
    fix: str | None = None


# ---- pure checks ------------------------------------------------------------------
def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def check_userns(max_text: str | None, clone_text: str | None) -> Check:
    """``/proc/sys/user/max_user_namespaces`` and Debian's ``unprivileged_userns_clone``."""
    name = "user namespaces"
    limit, clone = _int(max_text), _int(clone_text)
    if limit is None:
        return Check(name, "fail", "/proc/sys/user/max_user_namespaces is missing or unreadable",
                     "cannot create containers", "use a kernel built with CONFIG_USER_NS=y")
    detail = f"max_user_namespaces={limit}"
    if clone is not None:
        detail += f", unprivileged_userns_clone={clone}"
    if limit == 0:
        return Check(name, "fail", detail, "cannot create containers",
                     "sudo sysctl -w user.max_user_namespaces=15000")
    if clone == 0:
        return Check(name, "fail", detail, "cannot create containers",
                     "sudo sysctl -w kernel.unprivileged_userns_clone=1")
    return Check(name, "ok", detail, "runs each container in a new user namespace")


def check_apparmor(text: str | None, label: str | None = None) -> Check:
    """``kernel.apparmor_restrict_unprivileged_userns`` (Ubuntu 23.10 and later) and the AppArmor
    ``label`` this process runs under: a profile of its own (scripts/install-apparmor-profile.sh)
    decides for it; without one its user namespaces get no capabilities."""
    name = "apparmor userns"
    if text is None:
        return Check(name, "info", "apparmor_restrict_unprivileged_userns not present",
                     "no AppArmor restriction on user namespaces")
    setting = f"apparmor_restrict_unprivileged_userns={text.strip()}"
    if _int(text) != 1:
        return Check(name, "ok", f"restriction off ({setting})", "no AppArmor restriction on user namespaces")
    profile = apparmor.profile_of(label)
    if profile is not None and profile.startswith("rootless"):  # the installer's profile
        return Check(name, "ok", f"restriction on ({setting}); rootless runs under its AppArmor profile "
                     f"{profile}", "the profile allows user namespaces")
    if profile is not None:
        return Check(name, "warn", f"restriction on ({setting}); rootless runs under the AppArmor "
                     f"profile {profile}", "that profile's userns rule decides whether containers start",
                     apparmor.FIX)
    return Check(name, "fail", f"restriction on ({setting}); no AppArmor profile attached to rootless",
                 "user namespaces get no capabilities: id maps and mounts fail", apparmor.FIX)


def check_subids(kind: str, text: str | None, user: str, uid: int) -> Check:
    """The user's ranges in /etc/subuid (``kind`` "subuid") or /etc/subgid ("subgid")."""
    path = f"/etc/{kind}"
    fix = SUBID_FIX.format(user=user)
    ranges = idmap.parse_subids(text or "", user, uid)
    if not ranges:
        found = "missing" if text is None else f"has no range for {user}"
        return Check(kind, "warn", f"{path} {found}", SINGLE_ACTION, fix)
    total = sum(count for _, count in ranges)
    shown = ", ".join(f"{start}-{start + count - 1}" for start, count in ranges)
    detail = f"{user}: {shown} ({total} ids)"
    if total < FULL_RANGE:
        return Check(kind, "warn", f"{detail}, fewer than {FULL_RANGE}",
                     f"files of container ids {total + 1} and above become yours", fix)
    return Check(kind, "ok", detail, f"maps container ids 1-{total} to this range")


def check_helper(name: str, path: str | None, usable: bool) -> Check:
    """newuidmap/newgidmap: present, and setuid root or with file capabilities."""
    if not path:
        return Check(name, "warn", "not found", SINGLE_ACTION, "sudo apt-get install uidmap")
    if not usable:
        return Check(name, "warn", f"{path} is neither setuid root nor has file capabilities",
                     SINGLE_ACTION, f"sudo chmod u+s {path} (or sudo apt-get install --reinstall uidmap)")
    return Check(name, "ok", f"{path} (setuid root or file capabilities)", "writes the subid map")


def check_idmap(mapping: idmap.IdMapping, configured: str, helpers_ok: bool, user: str,
                config_file: str) -> Check:
    """The mapping the tool will use, from :func:`idmap.plan`."""
    name = "id mapping"
    if mapping.mode == "subid":
        return Check(name, "ok", f"subid: {mapping.size} uids ({mapping.key})",
                     "maps container root to you and other ids to your subordinate ranges")
    if configured == "single":
        return Check(name, "warn", f"single: forced by userns.idmap = \"single\" in {config_file}",
                     SINGLE_ACTION, f"set userns.idmap = \"auto\" in {config_file}")
    detail = (mapping.warning or "single").split(": using a single-uid map")[0]
    fix = "sudo apt-get install uidmap" if not helpers_ok else SUBID_FIX.format(user=user)
    return Check(name, "warn", detail, SINGLE_ACTION, fix)


def check_overlay(get_probe: Callable[[], Probe], configured: str, config_file: str) -> Check:
    """Run the injected overlay probe; a RootlessError or OSError becomes a "fail"."""
    try:
        p = get_probe()
    except RootlessError as e:
        return Check("overlay", "fail", f"probe failed: {e}", "cannot assemble container root filesystems",
                     e.hint or "check the storage check below and `rootless info` again")
    except OSError as e:
        return Check("overlay", "fail", f"probe failed: {e.strerror or e}",
                     "cannot assemble container root filesystems", "check the storage check below")
    return overlay_from_probe(p, configured, config_file)


def overlay_from_probe(p: Probe, configured: str, config_file: str) -> Check:
    detail = f"probe chose {p.method}; kernel: {p.kernel_detail}; fuse: {p.fuse_detail}"
    method = p.method
    if configured != "auto":
        detail = f"config forces storage.overlay = \"{configured}\"; {detail}"
        method = configured
        works = {"kernel": p.kernel_ok, "fuse": p.fuse_ok}.get(configured, True)
        if not works:
            return Check("overlay", "fail", detail, f"{configured} overlay fails, containers cannot start",
                         f"set storage.overlay = \"auto\" in {config_file}")
    if method == "kernel":
        return Check("overlay", "ok", detail, "uses kernel overlayfs")
    if method == "fuse":
        return Check("overlay", "warn", detail, "uses fuse-overlayfs (fuse-overlayfs is slower than kernel overlayfs)",
                     "Linux 5.11+ with storage on a local filesystem allows kernel overlayfs")
    return Check("overlay", "warn", detail, "copy: every container copies its image",
                 "sudo apt-get install fuse-overlayfs fuse3 (see the fuse-overlayfs check)")


def _device(path: str, exists: bool, usable: bool) -> str:
    if not exists:
        return f"{path} missing"
    return f"{path} read+write" if usable else f"{path} not read+write for you"


def check_fuse(path: str | None, version: str | None, dev_exists: bool, dev_ok: bool) -> Check:
    """The fuse-overlayfs binary and /dev/fuse."""
    name = "fuse-overlayfs"
    found = f"{path} ({version or 'version unknown'})" if path else "not installed"
    detail = f"{found}; {_device('/dev/fuse', dev_exists, dev_ok)}"
    fixes = []
    if not path:
        fixes.append("sudo apt-get install fuse-overlayfs fuse3")
    if not dev_exists:
        fixes.append("sudo modprobe fuse")
    elif not dev_ok:
        fixes.append("sudo chmod 0666 /dev/fuse")
    if fixes:
        return Check(name, "warn", detail, "the fuse-overlayfs method is unavailable", "; ".join(fixes))
    return Check(name, "ok", detail, "the fuse-overlayfs method is available")


SLIRP_FEATURES = (("enable-sandbox", "sandbox"), ("enable-seccomp", "seccomp"), ("enable-ipv6", "ipv6"),
                  ("macaddress", "mac address"), ("api-socket", "API socket"),
                  ("disable-host-loopback", "host loopback hidden"))


def check_slirp(path: str | None, version: str | None, tun_exists: bool, tun_ok: bool,
                libslirp: str = "", options: tuple = ()) -> Check:
    """The slirp4netns binary (version, libslirp, the features we use) and /dev/net/tun."""
    name = "slirp4netns"
    found = f"{path} ({version or 'version unknown'})" if path else "not installed"
    if path and (libslirp or options):
        feats = ", ".join(label for opt, label in SLIRP_FEATURES if opt in options)
        found = (f"{path} ({version or 'version unknown'}, libslirp {libslirp or 'unknown'}; "
                 f"features: {feats or 'none'})")
    detail = f"{found}; {_device('/dev/net/tun', tun_exists, tun_ok)}"
    fixes = []
    if not path:
        fixes.append("sudo apt-get install slirp4netns")
    if not tun_exists:
        fixes.append("sudo modprobe tun")
    elif not tun_ok:
        fixes.append("sudo chmod 0666 /dev/net/tun")
    if fixes:
        return Check(name, "warn", detail, "only --network none and host are available", "; ".join(fixes))
    return Check(name, "ok", detail, "user-mode networking (slirp4netns) is possible")


def check_cgroups(version: str, cgroup: str | None, delegated_at: str | None,
                  controllers: list[str]) -> Check:
    """The cgroup version and, on v2, the controllers delegated to this user: which limit flags
    this host enforces (the others are refused at ``run``, never ignored)."""
    from rootless.runtime import cgroups
    name = "cgroups"
    if version != "v2":
        what = {"hybrid": "hybrid (cgroup v1 controllers, cgroup2 elsewhere)", "v1": "v1 only",
                "none": "no cgroup filesystem mounted"}.get(version, version)
        return Check(name, "warn", what, CGROUP_ACTION, cgroups.UNIFIED_FIX)
    if delegated_at is None:
        return Check(name, "warn", f"v2 unified; no writable cgroup above {cgroup or '?'}",
                     CGROUP_ACTION, cgroups.DELEGATE_FIX)
    have = [c for c in CONTROLLERS if c in controllers]
    missing = [c for c in CONTROLLERS if c not in controllers]
    flags = cgroups.enforceable(cgroups.Host(version, cgroup, delegated_at, tuple(controllers)))
    detail = f"v2 unified; delegated at {delegated_at}: {' '.join(have) or 'none'}"
    if missing:
        return Check(name, "warn", f"{detail} (missing {' '.join(missing)})",
                     f"enforces {' '.join(flags) or 'no limit'}; limits needing {', '.join(missing)} are refused",
                     cgroups.DELEGATE_FIX)
    return Check(name, "ok", detail, f"enforces {' '.join(flags)} in a delegated cgroup")


def check_pause(version: str, delegated_at: str | None) -> Check:
    """How ``pause`` stops a container here (``rootless.runtime.pause``): the cgroup v2 freezer of
    its own cgroup (where a cgroup v2 subtree is delegated every container has one), or SIGSTOP to
    each of its processes (which they and ps can tell)."""
    if version == "v2" and delegated_at is not None:
        return Check("pause", "ok", f"cgroup v2 freezer (cgroup.freeze below {delegated_at}): every container "
                     "has a cgroup of its own here",
                     "pause freezes the container's cgroup (SIGSTOP only for one that could not get a cgroup, "
                     "e.g. with --network container:)")
    return Check("pause", "info", "SIGSTOP to every process of the container (no delegated cgroup v2 freezer)",
                 "pause stops the processes with SIGSTOP and unpause resumes them with SIGCONT")


def host_pause() -> Check:
    from rootless.runtime import cgroups
    return _guard("pause", lambda: check_pause(*_version_delegated(cgroups.detect(CGROUP_ROOT))))


def _version_delegated(host) -> tuple[str, str | None]:
    return host.version, host.delegated


def _size(n: int) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    exp = 0
    while n >= 1024 ** (exp + 1) and exp < len(units) - 1:
        exp += 1
    return f"{n} B" if exp == 0 else f"{n / 1024 ** exp:.1f} {units[exp]}"


def check_storage(root: str, existing: str, fstype: str, mountpoint: str, free: int,
                  writable: bool, runroot: str, config_file: str, relocated: str | None = None) -> Check:
    """The storage root: filesystem type, free space, writability; and the runroot. ``relocated``:
    the home's store it stands for (``PATH (FSTYPE)``), kept off a network filesystem."""
    where = root if existing == root else f"{root} (not created yet; {existing} exists)"
    if relocated:
        where += f", instead of {relocated}"
    detail = (f"{where} on {fstype} at {mountpoint}, {_size(free)} free, "
              f"{'writable' if writable else 'not writable'}; runroot {runroot}")
    move = f"set storage.root in {config_file} to a local disk, e.g. /tmp or /var/tmp"
    if not writable:
        return Check("storage", "fail", detail, "cannot store images or containers", move)
    if fstype in NETWORK_FS:
        return Check("storage", "warn", detail,
                     "overlay and user xattrs are unreliable on network filesystems", move)
    if free < LOW_SPACE:
        return Check("storage", "warn", detail, "pulling or unpacking images may run out of space",
                     f"free space on {mountpoint}, or {move}")
    return Check("storage", "ok", detail, "stores images and containers here")


def check_config(path: str, exists: bool, cfg: Config) -> Check:
    state = "exists" if exists else "not present, defaults apply"
    detail = (f"{path} ({state}); storage.overlay={cfg.overlay} userns.idmap={cfg.idmap}"
              f" storage.root={cfg.root or 'default'}")
    return Check("config", "info", detail, "uses these settings")


def check_logs(cfg: Config, config_file: str) -> Check:
    """Each container's log: its driver and the cap that rotation keeps it under."""
    logs = config.log_defaults(cfg)
    if logs["driver"] == "none":
        return Check("logs", "info", "driver none", "containers' output is not kept (logs shows nothing)",
                     f"set [logs] driver in {config_file}, or --log-driver per container")
    if not logs["max_size"]:
        return Check("logs", "warn", f"{logs['driver']}, no size limit", "a chatty container can fill the disk",
                     f"set [logs] max_size (for example \"20m\") in {config_file}")
    cap = config.format_size(logs["max_size"])
    return Check("logs", "ok", f"{logs['driver']}, rotated at {cap}, {logs['max_file']} file(s) kept",
                 f"at most {config.format_size(logs['max_size'] * logs['max_file'])} per container "
                 f"(--log-opt max-size=, max-file= or [logs] in the config to change)")


def check_volumes(paths: Paths, count: int) -> Check:
    """Where volumes live (``-v NAME:/dst``, ``volume create``)."""
    return Check("volumes", "info", f"{count} volume(s) in {paths.volumes}",
                 "a volume's files are owned by whoever wrote them in a container (root there: you)")


def check_records(recs: list[ContainerRecord]) -> Check:
    """The store's container records: how many, and the damaged ones by id."""
    bad = [r["id"][:12] for r in recs if r.get("corrupt")]
    if not bad:
        return Check("containers", "ok", f"{len(recs)} container record(s), all readable", "")
    return Check("containers", "warn", f"{len(bad)} of {len(recs)} container records are damaged: {', '.join(bad)}",
                 "ps -a shows them as Dead", f"remove them: rootless rm -f {' '.join(bad)}")


def check_kernel(release: str) -> Check:
    return Check("kernel", "info", f"Linux {release}", "")


# ---- host wrappers ------------------------------------------------------------------
def read_text(path: str) -> str | None:
    """A file's contents, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def tool_version(exe: str | None) -> str | None:
    """The version line ``exe --version`` prints, or None when that fails."""
    if not exe:
        return None
    try:
        cp = proc.run([exe, "--version"], timeout=5, check=False)
    except (RootlessError, OSError):
        return None
    return version_line((cp.stdout + b"\n" + cp.stderr).decode(errors="replace"),
                        os.path.basename(exe))


def version_line(output: str, name: str) -> str | None:
    """The first line naming ``name`` (fuse-overlayfs prints fusermount's first), else the first."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return next((ln for ln in lines if name in ln), lines[0] if lines else None)


def _rw(path: str) -> tuple[bool, bool]:
    return os.path.exists(path), os.access(path, os.R_OK | os.W_OK)


def _usable(path: str | None) -> bool:
    try:
        return idmap.helper_usable(path)
    except OSError:
        return False


def host_userns() -> Check:
    return check_userns(read_text("/proc/sys/user/max_user_namespaces"),
                        read_text("/proc/sys/kernel/unprivileged_userns_clone"))


def host_apparmor() -> Check:
    return check_apparmor(apparmor.sysctl_text(), apparmor.label())


def host_fuse() -> Check:
    exe = proc.which("fuse-overlayfs")
    return check_fuse(exe, tool_version(exe), *_rw("/dev/fuse"))


def host_slirp() -> Check:
    exe = proc.which("slirp4netns")
    if not exe:
        return check_slirp(None, None, *_rw("/dev/net/tun"))
    from netstack import slirp
    f = slirp.probe(exe)
    return check_slirp(exe, f"slirp4netns version {f.version}" if f.version else None, *_rw("/dev/net/tun"),
                       libslirp=f.libslirp, options=f.options)


def host_cgroups() -> Check:
    from rootless.runtime import cgroups
    host = cgroups.detect(CGROUP_ROOT)
    return check_cgroups(host.version, host.own, host.delegated, list(host.controllers))


def host_storage(paths: Paths, config_file: str) -> Check:
    existing = nearest_existing(paths.root)
    point, fstype = mount_of(read_text("/proc/self/mountinfo") or "", os.path.realpath(existing))
    st = os.statvfs(existing)
    writable = os.access(existing, os.W_OK | os.X_OK)
    return check_storage(paths.root, existing, fstype, point or "?", st.f_bavail * st.f_frsize,
                         writable, paths.runroot, config_file, (read_text(paths.relocated_mark) or "").strip() or None)


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    """A host wrapper's unexpected OSError becomes a "warn", never a traceback."""
    try:
        return fn()
    except (OSError, ValueError, RootlessError) as e:
        return Check(name, "warn", f"could not check: {e}", "unknown")


def run_checks(paths: Paths, cfg: Config, overlay_probe: Callable[[], Probe]) -> list[Check]:
    """All checks, in a fixed order; ``overlay_probe`` returns the (cached) overlay probe."""
    me = idmap.current_user()
    user, uid, _gid = me
    cfg_file = cfg.path or config.config_path()
    texts = {kind: read_text(f"/etc/{kind}") for kind in ("subuid", "subgid")}
    helpers = {h: proc.which(h) for h in ("newuidmap", "newgidmap")}
    usable = {h: _usable(p) for h, p in helpers.items()}
    helpers_ok = all(usable.values())
    mapping = idmap.plan(cfg.idmap, texts["subuid"] or "", texts["subgid"] or "", helpers_ok, me)
    return [
        _guard("user namespaces", host_userns),
        _guard("apparmor userns", host_apparmor),
        *(check_subids(kind, texts[kind], user, uid) for kind in ("subuid", "subgid")),
        *(check_helper(h, helpers[h], usable[h]) for h in ("newuidmap", "newgidmap")),
        check_idmap(mapping, cfg.idmap, helpers_ok, user, cfg_file),
        check_overlay(overlay_probe, cfg.overlay, cfg_file),
        _guard("fuse-overlayfs", host_fuse),
        _guard("slirp4netns", host_slirp),
        _guard("cgroups", host_cgroups),
        _guard("storage", lambda: host_storage(paths, cfg_file)),
        check_config(cfg_file, os.path.exists(cfg_file), cfg),
        check_logs(cfg, cfg_file),
        _guard("containers", lambda: check_records(state.all_records(paths))),
        _guard("volumes", lambda: check_volumes(paths, len(volumes.all_volumes(paths)))),
        check_kernel(os.uname().release),
    ]
