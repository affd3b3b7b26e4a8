"""A container's mount plan applied inside its root (``runtime.mountplan``'s ``Op``s): binds and
volumes through mount points opened inside the root, tmpfs, masks, read-only paths, accounts
(keep-id's /etc/passwd and /etc/group lines), symlinks; run by the container's PID 1 before it
pivots (``runtime.child``) and by ``fsaccess`` for a stopped container's view."""

from __future__ import annotations

import errno
import os

from rootless.base import syscalls
from rootless.base.atomic import read_text
from rootless.base.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from rootless.runtime import mountplan, rootfs, users
from rootless.runtime.mountplan import Op

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from rootless.runtime.spec import ContainerSpec


def owner(root: str, spec: ContainerSpec) -> tuple[int, int]:
    """The container user's uid and gid from the image's files, for ``:U`` before the pivot."""
    passwd, group = (read_text(rootfs.resolve(root, p)) for p in ("/etc/passwd", "/etc/group"))
    user = users.resolve(spec.user, passwd or "", group or "")
    return user.uid, user.gid


def apply_op(root: str, op: Op, owner: tuple[int, int] | None = None, view: str | None = None) -> None:
    """``view``: the root without its mounts (:func:`image_view`), where a volume is filled from."""
    target = rootfs.resolve(root, op.target)
    if op.kind in ("bind", "volume") or (op.kind == "mount" and op.fstype == "tmpfs"):
        # a destination that reached /proc through the image's symlinks (a tmpfs there hides it all)
        mountplan.check_destination("/" + os.path.relpath(target, root), "tmpfs" if op.kind == "mount" else op.kind,
                                    op.source)
    if op.kind == "symlink":  # the link itself is replaced (an image's /dev/fd in a volume on /dev
        target = rootfs.resolve_parent(root, op.target)  # points into /proc: never followed there)
        if os.path.lexists(target):
            os.unlink(target)
        assert op.source is not None  # a link's text
        os.symlink(op.source, target)
        return
    if op.kind in ("mask", "readonly", "cgroup"):
        _best_effort(target, op.kind)
        return
    if op.kind == "remount_ro":
        remount_ro(target)
        return
    if op.kind == "account":
        assert op.source is not None and op.data is not None  # the host file and the line
        _add_account(root, target, op.source, op.data)
        return
    if op.if_parent and not os.path.isdir(os.path.dirname(target)):
        return
    assert op.source is not None  # every mount, bind and volume has its source
    # made and mounted through a descriptor opened inside the root: a directory of a volume that
    # another container swaps for a link meanwhile leads nowhere outside
    point = rootfs.mount_point(root, target, op.is_file)
    try:
        if (op.kind == "volume" and view is not None) or (op.data == "U" and owner is not None):
            from rootless.runtime import copyup  # only for a volume's first contents or :U
        if op.kind == "volume" and view is not None:
            copyup.fill(rootfs.resolve(view, op.target), op.source)
        if op.data == "U" and owner is not None:
            copyup.chown_tree(op.source, owner)
        at = f"/proc/self/fd/{point}"
        if op.kind in ("bind", "volume"):
            _bind(op, at, target)
            if op.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):  # the last three: the OCI face's
                remount_ro(target, op.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC))
        else:
            syscalls.mount(op.source, at, op.fstype, op.flags, op.data)
    except OSError as e:
        if e.errno == errno.EPERM and op.fallback:
            for alt in op.fallback:
                apply_op(root, alt)
            return
        raise
    finally:
        os.close(point)


def _bind(op, at: str, target: str) -> None:
    """A bind of the op's source (or of its subpath, resolved inside the source) on ``at``, then
    the propagation of the mount now at ``target`` (``rshared`` and the others: among this
    container's own mounts, as the remount read-only does it)."""
    source, fd = op.source, -1
    if op.subpath:
        fd = rootfs.open_inside(op.source, op.subpath)
        source = f"/proc/self/fd/{fd}"
    try:
        syscalls.mount(source, at, None, MS_BIND | (op.flags & MS_REC))
    finally:
        if fd >= 0:
            os.close(fd)
    if op.propagation:
        syscalls.mount(None, target, None, op.propagation)


def _add_account(root: str, target: str, copy: str, line: str) -> None:
    """The image's /etc/passwd or /etc/group with ``line`` added, bound over it, unless an entry
    with that line's id (the third field) is there already."""
    text = read_text(target) or ""
    wanted = line.split(":")[2]
    if any(len(f) > 2 and f[2] == wanted for f in (entry.split(":") for entry in text.splitlines())):
        return
    with open(copy, "w") as f:  # the private runtime directory
        f.write(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n")
    point = rootfs.mount_point(root, target, True)  # never through a link swapped in meanwhile
    try:
        syscalls.mount(copy, f"/proc/self/fd/{point}", None, MS_BIND)
    finally:
        os.close(point)


def image_view(root: str, run_dir: str) -> str:
    """The container's root without the mounts on it (``/proc``, ``/dev``, volumes): a bind of the
    root alone, not recursive, where a volume's first contents are copied from (the image's
    files, never a live filesystem). Gone with the old root at ``pivot_root``."""
    view = os.path.join(run_dir, "image-view")
    os.makedirs(view, 0o700, exist_ok=True)
    syscalls.mount(root, view, None, MS_BIND)
    return view


def _locked_flags(path: str) -> int:
    """The flags a remount in a user namespace must keep (the kernel locks them)."""
    f = os.statvfs(path).f_flag
    flags = f & (MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048)  # + noatime, nodiratime
    if f & 4096:  # ST_RELATIME
        flags |= 1 << 21
    return flags


def remount_ro(target: str, flags: int = MS_RDONLY) -> None:
    """A bind remounted read-only (or with the other ``flags`` given: nosuid, nodev, noexec)."""
    syscalls.mount(None, target, None, MS_REMOUNT | MS_BIND | flags | _locked_flags(target))


def _best_effort(target: str, kind: str) -> None:
    if not os.path.lexists(target):
        return
    try:
        if kind == "cgroup":  # seen from the container's cgroup namespace: its own cgroup is the root
            syscalls.mount("cgroup2", target, "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        elif kind == "mask":
            if os.path.isdir(target):
                syscalls.mount("tmpfs", target, "tmpfs", MS_RDONLY, "size=0")
            else:
                syscalls.mount("/dev/null", target, None, MS_BIND)
        else:
            syscalls.mount(target, target, None, MS_BIND | MS_REC)
            remount_ro(target)
    except OSError:
        pass
