"""The container's mounts as data, planned before the kernel is touched.

``plan`` is pure; ``rootless.runtime.child`` executes the operations in order, each
target resolved inside the new root by :func:`rootless.runtime.rootfs.resolve`.
"""

from __future__ import annotations

import os

from rootless.base.errors import UsageError
from rootless.base.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
)
from rootless.base.valuetype import KeywordRecord, record

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"}
MASKED = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Root emulation's word to apt: no sandbox user (it cannot become _apt in a single-uid map, and
# would find that it had not). Bound only where the image has apt's configuration directory.
APT_SANDBOX_CONF = "/etc/apt/apt.conf.d/00rootless-sandbox"
APT_SANDBOX_TEXT = 'APT::Sandbox::User "root";\n'
# What the runtime makes in a container's root only to mount on it: no part of a layer
# (``commit``, a build's RUN) while it is still bare.
MOUNT_POINTS = ("proc", "sys", "dev", "etc/hostname", "etc/hosts", "etc/resolv.conf", APT_SANDBOX_CONF[1:])


# The files under /proc a mount may cover (what lxcfs emulates), as runc allows; nothing else
# there: a volume on /proc would be filled from, or hide, the kernel's live files.
PROC_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
                "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
                "/proc/sys/crypto/fips_enabled")
_PROC_ROOT_INO = 1


def check_destination(target: str, kind: str, source: str | None = None) -> None:
    """Refuse a user's mount (``kind`` volume, bind or tmpfs) on or under ``/proc``, as runc does:
    on ``/proc`` itself only a bind of a procfs's root, under it only :data:`PROC_ALLOWED`.
    ``/sys`` and ``/dev`` take mounts (``-v /sys:/sys:ro``, ``-v /dev/log:/dev/log``), as in Docker:
    a volume there is filled from the image's files, never from the live filesystem."""
    target = os.path.normpath("/" + target.lstrip("/"))
    if target != "/proc" and not target.startswith("/proc/"):
        return
    if target == "/proc":
        if kind == "bind" and source and _is_proc_root(source):
            return
        raise UsageError(f"invalid mount destination {target!r}: it cannot be mounted because it is not of type proc",
                         "mount a volume or directory somewhere else than /proc")
    if target in PROC_ALLOWED:
        return
    raise UsageError(f"invalid mount destination {target!r}: it cannot be mounted because it is inside /proc",
                     "mount a volume or directory somewhere else than /proc")


def _is_proc_root(source: str) -> bool:
    try:
        st, proc = os.stat(source), os.stat("/proc")
    except OSError:
        return False
    return st.st_ino == _PROC_ROOT_INO and st.st_dev == proc.st_dev


@record
class Op(KeywordRecord):
    """One step of the mount plan, applied in the container's mount namespace."""
    # mount | bind | volume | symlink | mask | readonly | account (a line added to a copy of an
    # /etc file, bound over it, unless its id is there) | remount_ro (a mount made read-only,
    # not best effort as ``readonly`` is) | cgroup (the cgroup2 filesystem, read-only, best effort)
    kind: str
    # a path inside the container (``volume``: a bind of a volume, which the image's files there
    # fill while it is empty)
    target: str
    source: str | None = None
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    is_file: bool = False  # the mount point is a file
    fallback: tuple[Op, ...] = ()  # ops to run instead if this one fails with EPERM
    if_parent: bool = False  # skipped when the target's directory is not in the image
    propagation: int = 0  # a bind's propagation flags, set once it is mounted (MS_REC for the r- words)
    subpath: str = ""  # a bind of this directory of the source, resolved inside the source


def plan(etc_files: dict[str, str], own_netns: bool, pts_gid: int | None,
         volumes: tuple[tuple, ...] = (), devices: tuple[tuple[str, str], ...] = (),
         privileged: bool = False, apt_sandbox: str | None = None,
         account: tuple[str, str, str, str] | None = None, pid_host: bool = False,
         ipc_host: bool = False, shm_size: int | None = None) -> list[Op]:
    """``volumes``: (kind, host source, container target, read-only, options[, propagation,
    subpath]) per mount, kind ``volume`` (a volume the image's files fill while it is empty),
    ``bind`` or ``tmpfs``; options ``U`` (chown the source to the container's user first) or a
    tmpfs's options; propagation Docker's word for a bind; subpath a directory of the source.
    ``devices``: (host node, container path) pairs, bound (``--device``, ``--privileged``);
    ``privileged``: nothing of /proc or /sys is masked or made read-only; ``apt_sandbox``: the
    host file of :data:`APT_SANDBOX_TEXT` (root emulation), bound read-only where apt is;
    ``account``: (passwd line, group line, host file for each) of ``--userns=keep-id``'s user, added
    to the image's /etc/passwd and /etc/group (a copy bound over them) where its ids are missing;
    ``pid_host`` (``--pid host``): the host's /proc, bound (a new procfs needs a pid namespace of
    one's own user namespace: the kernel refuses one of the host's pid namespace); ``ipc_host``
    (``--ipc host``): the host's /dev/shm (and /dev/mqueue where it has one) bound, not new ones;
    ``shm_size``: the bytes of a new /dev/shm (``--shm-size``; None: 64 MiB, Docker's)."""
    ops = [Op("bind", "/proc", "/proc", flags=MS_BIND | MS_REC) if pid_host
           else Op("mount", "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)]
    read_only: list[Op] = []
    on_dev = [v for v in volumes if os.path.normpath(v[2]) == "/dev" and v[0] in ("volume", "tmpfs")]
    if on_dev:  # a volume or tmpfs as /dev instead of the runtime's tmpfs: the devices go into it, as with runc
        # (a host directory bound there still covers the runtime's /dev: nothing is made in it)
        ops += _volume_ops(on_dev[0], read_only)
        volumes = tuple(v for v in volumes if v is not on_dev[0])
    else:
        ops.append(Op("mount", "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"))
    ops += [Op("bind", f"/dev/{n}", f"/dev/{n}", flags=MS_BIND, is_file=True) for n in DEV_NODES]
    pts_opts = "newinstance,ptmxmode=0666,mode=0620" + (f",gid={pts_gid}" if pts_gid is not None else "")
    ops.append(Op("mount", "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC, pts_opts))
    ops += [Op("symlink", f"/dev/{n}", t) for n, t in DEV_LINKS.items()]
    if ipc_host:  # the host's shared memory (MPI's): a new mqueue needs an IPC namespace of one's own
        ops.append(Op("bind", "/dev/shm", "/dev/shm", flags=MS_BIND | MS_REC))
        if os.path.ismount("/dev/mqueue"):
            ops.append(Op("bind", "/dev/mqueue", "/dev/mqueue", flags=MS_BIND))
    else:
        ops.append(Op("mount", "/dev/shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      f"mode=1777,size={shm_size or 65536 * 1024}"))
        ops.append(Op("mount", "/dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC))
    ops += [Op("bind", target, host, flags=MS_BIND, is_file=True) for host, target in devices]
    sys_flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    bind_sys = Op("bind", "/sys", "/sys", flags=MS_BIND | MS_REC | MS_RDONLY)
    if own_netns:
        ops.append(Op("mount", "/sys", "sysfs", "sysfs", sys_flags, fallback=(bind_sys,)))
        ops.append(Op("cgroup", "/sys/fs/cgroup"))  # its own cgroup (v2) as the root, read-only
    else:  # sysfs can only be mounted by the owner of the network namespace
        ops.append(bind_sys)
    for volume in volumes:
        ops += _volume_ops(volume, read_only)
    for cpath, host in sorted(etc_files.items()):
        ops.append(Op("bind", cpath, host, flags=MS_BIND, is_file=True))
    if account:
        passwd_line, group_line, passwd_file, group_file = account
        ops.append(Op("account", "/etc/passwd", passwd_file, data=passwd_line, is_file=True))
        ops.append(Op("account", "/etc/group", group_file, data=group_line, is_file=True))
    if apt_sandbox:
        ops.append(Op("bind", APT_SANDBOX_CONF, apt_sandbox, flags=MS_BIND | MS_RDONLY, is_file=True, if_parent=True))
    ops += read_only
    if not privileged:
        ops += [Op("mask", p) for p in MASKED]
        ops += [Op("readonly", p) for p in READONLY]
    return ops


def _volume_ops(volume: tuple, read_only: list[Op]) -> list[Op]:
    kind, source, target, readonly, options = volume[:5]
    propagation, subpath = (tuple(volume[5:7]) + ("", ""))[:2]
    return _user_ops(kind, source, target, readonly, options, read_only, propagation, subpath)


def _user_ops(kind: str, source: str, target: str, readonly: bool, options: str, read_only: list[Op],
              propagation: str = "", subpath: str = "") -> list[Op]:
    """One of the user's mounts; a read-only bind is made so later (in ``read_only``), once the
    /etc files are in: their mount points may have to be made in it."""
    if kind == "tmpfs":
        return [_tmpfs(target, readonly, options)]
    if readonly:
        read_only.append(Op("remount_ro", target))
    full = os.path.join(source, subpath) if subpath else source
    return [Op(kind, target, source, flags=MS_BIND | MS_REC, data=options or None,
               is_file=kind == "bind" and not os.path.isdir(full), propagation=propagation_flags(propagation),
               subpath=subpath)]


def propagation_flags(word: str) -> int:
    """Docker's propagation word as mount flags (0 for none: the bind stays private, as made)."""
    if not word:
        return 0
    base = {"shared": MS_SHARED, "slave": MS_SLAVE, "private": MS_PRIVATE}[word.removeprefix("r")]
    return base | (MS_REC if word.startswith("r") else 0)


_TMPFS_FLAGS = {"ro": MS_RDONLY, "noexec": MS_NOEXEC, "nosuid": MS_NOSUID, "nodev": MS_NODEV}


def _tmpfs(target: str, readonly: bool, options: str) -> Op:
    """``--tmpfs``/``--mount type=tmpfs``: nosuid, nodev and noexec unless asked otherwise (Docker's
    defaults); the rest of the options go to the kernel."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (MS_RDONLY if readonly else 0)
    data = []
    for opt in [o for o in options.split(",") if o]:
        if opt in _TMPFS_FLAGS:
            flags |= _TMPFS_FLAGS[opt]
        elif opt in ("exec", "suid", "dev", "rw"):
            flags &= ~{"exec": MS_NOEXEC, "suid": MS_NOSUID, "dev": MS_NODEV, "rw": MS_RDONLY}[opt]
        elif "=" in opt:
            data.append(opt)
    return Op("mount", target, "tmpfs", "tmpfs", flags, ",".join(data) or "mode=1777")
