"""The container's mounts as data, planned before the kernel is touched.

``plan`` is pure; ``rootless.runtime.child`` executes the operations in order, each
target resolved inside the new root by :func:`rootless.runtime.rootfs.resolve`.
"""

from __future__ import annotations

import os
from collections import namedtuple

from rootless.base.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_STRICTATIME,
)

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"}
MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/acpi",
          "/proc/scsi", "/sys/firmware")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


# kind: mount | bind | volume | symlink | mask | readonly; target: a path inside the container
# (``volume``: a bind of a volume, which the image's files there fill while it is empty);
# is_file: the mount point is a file; fallback: ops to run instead if this one fails with EPERM.
Op = namedtuple("Op", "kind target source fstype flags data is_file fallback",
                defaults=(None, None, 0, None, False, ()))


def plan(etc_files: dict[str, str], own_netns: bool, pts_gid: int | None,
         volumes: tuple[tuple[str, str, bool, bool], ...] = ()) -> list[Op]:
    """``volumes``: (host source, container target, read-only, a volume to fill) per mount."""
    ops = [Op("mount", "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)]
    ops.append(Op("mount", "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"))
    ops += [Op("bind", f"/dev/{n}", f"/dev/{n}", flags=MS_BIND, is_file=True) for n in DEV_NODES]
    pts_opts = "newinstance,ptmxmode=0666,mode=0620" + (f",gid={pts_gid}" if pts_gid is not None else "")
    ops.append(Op("mount", "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC, pts_opts))
    ops += [Op("symlink", f"/dev/{n}", t) for n, t in DEV_LINKS.items()]
    ops.append(Op("mount", "/dev/shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"))
    ops.append(Op("mount", "/dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC))
    sys_flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    bind_sys = Op("bind", "/sys", "/sys", flags=MS_BIND | MS_REC | MS_RDONLY)
    if own_netns:
        ops.append(Op("mount", "/sys", "sysfs", "sysfs", sys_flags, fallback=(bind_sys,)))
    else:  # sysfs can only be mounted by the owner of the network namespace
        ops.append(bind_sys)
    for source, target, readonly, fill in volumes:
        ops.append(Op("volume" if fill else "bind", target, source, flags=MS_BIND | MS_REC | (MS_RDONLY if readonly else 0),
                      is_file=not fill and not os.path.isdir(source)))
    for cpath, host in sorted(etc_files.items()):
        ops.append(Op("bind", cpath, host, flags=MS_BIND, is_file=True))
    ops += [Op("mask", p) for p in MASKED]
    ops += [Op("readonly", p) for p in READONLY]
    return ops
