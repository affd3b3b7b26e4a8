"""A container's files from the outside: commit, export, cp, as root of the user namespace.

A running container is entered (its user and mount namespaces, joined through
``/proc/PID/ns``: its root is then ``/``); a stopped one gets its root
filesystem mounted in a private mount namespace for the duration of the call.
Files of subordinate uids are only readable and writable there. Data crosses
by file descriptors opened beforehand: inside, host paths may not exist.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import tarfile  # noqa: F401 - imported before entering a container, where this install is out of sight
import time

from layers import commit as _commit  # noqa: F401 - the same
from layers import store as _store  # noqa: F401 - the same
from layers import unpack as _unpack  # noqa: F401 - the same
from rootless.base import syscalls, userns
from rootless.base.channel import Channel
from rootless.base.errors import RootlessError
from rootless.runtime import rootfs as _rootfs  # noqa: F401 - the same

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from layers.overlay import RootfsPlan
    from rootless.runtime import Context
    from rootless.runtime.state import ContainerRecord


def call(ctx: Context, rec: ContainerRecord, fn: Callable[..., Any], *args: Any, writable: bool = False,
         mounts: tuple = ()) -> Any:
    """``fn(root, *args)`` with the container's root filesystem at ``root``; fn's JSON-able result.

    ``mounts``: for a stopped container, its volumes and binds as ``mountplan.plan`` takes them
    ((kind, host source, target, read-only, options[, propagation, subpath]) each; ``tmpfs`` ones
    are left out), mounted
    on the view as when it runs (``cp``; ``export`` gives none). A running one has its own."""
    if rec["state"].get("status") == "running":
        return _call_entered(rec["state"]["pid"], fn, args)
    from rootless.runtime.records import rootfs_plan
    plan = rootfs_plan(ctx, rec)
    view = os.path.join(ctx.paths.run_dir(rec["id"]) + "-view")
    os.makedirs(view, 0o700, exist_ok=True)
    binds = tuple((m[1], m[2], bool(m[3]), m[6] if len(m) > 6 else "") for m in mounts if m[0] != "tmpfs")
    try:
        return ctx.userns_call(_call_mounted, plan, view, writable, fn, args, binds)
    finally:
        try:
            os.rmdir(view)
        except OSError:
            pass


def _call_mounted(plan: RootfsPlan, view: str, writable: bool, fn, args, binds: tuple = ()):
    from layers import overlay
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    if writable:
        overlay.mount_rootfs(plan._replace(merged=view))
    elif plan.method == "copy":
        syscalls.mount(plan.copy_dir, view, None, syscalls.MS_BIND | syscalls.MS_REC)
    else:  # read-only: the writable layer as the top lower layer, nothing written
        overlay.mount_readonly(plan, view)
    try:
        _mount_volumes(view, binds, writable)
        return _chrooted(view, fn, args)
    finally:
        overlay.unmount_rootfs(plan._replace(merged=view))


def _chrooted(view: str, fn, args):
    """``fn("/", *args)`` with the root directory at ``view``, as for a running container, so that
    no path fn opens can leave the container's files: a volume shared with a running container
    may swap one of its directories for a link to the user's home at any time, and the kernel
    then takes that link inside the view (the view has no /proc: no magic link leads out).
    The host's root comes back afterwards, for the unmounts."""
    host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chroot(view)
        os.chdir("/")
        try:
            return fn("/", *args)
        finally:
            os.fchdir(host_root)
            os.chroot(".")
            os.fchdir(cwd)
    finally:
        os.close(host_root)
        os.close(cwd)


def _mount_volumes(view: str, binds: tuple, writable: bool) -> None:
    """The stopped container's volumes and binds over its root at ``view``, outermost first, each
    target resolved inside the root; a missing mount point is made when the view is writable
    (as a start would), else that mount is left out (nothing can be below it)."""
    from rootless.runtime import mountops, rootfs
    from rootless.runtime.mountplan import Op
    for source, target, readonly, subpath in sorted(binds, key=lambda b: len([p for p in b[1].split("/") if p])):
        is_file = not os.path.isdir(os.path.join(source, subpath) if subpath else source)
        if not writable and not os.path.lexists(rootfs.resolve(view, target)):
            continue
        mountops.apply_op(view, Op("bind", target, source, flags=syscalls.MS_BIND | syscalls.MS_REC, is_file=is_file,
                                subpath=subpath))
        if readonly:
            mountops.apply_op(view, Op("remount_ro", target))


def _call_entered(pid: int, fn, args):
    from rootless.runtime.execute import join, open_namespaces
    ns = open_namespaces(pid, only=(syscalls.CLONE_NEWUSER, syscalls.CLONE_NEWNS))

    def inside(ch: Channel) -> int:
        join(ns)
        ch.send("result", value=fn("/", *args))
        return 0

    helper, parent_end = userns.fork_child(inside, "enter the container")
    for fd, _ in ns:
        os.close(fd)
    try:
        msg = parent_end.expect("result")
    finally:
        parent_end.close()
        userns.reap(helper)
    return msg["value"]


# ---- what runs inside ------------------------------------------------------------------------
def tar_tree(root: str, rel: str, out_fd: int, follow_link: bool = False) -> dict:
    """Write a tar of ``rel`` (a path inside the container, resolved within ``root``) to ``out_fd``;
    a symlink named by ``rel`` goes in as a link unless ``follow_link`` (``cp -L``)."""

    from rootless.runtime import rootfs
    src = (rootfs.resolve if follow_link else rootfs.resolve_parent)(root, rel)
    if not os.path.lexists(src):
        raise RootlessError(f"could not find the file {rel} in container", exit_code=1)
    with os.fdopen(out_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        try:
            _add_tree(tf, src, os.path.basename(rel.rstrip("/")) or ".")
        except OSError as e:
            if e.errno not in _GONE:
                raise
            # gone meanwhile (a container changing a volume)
            raise RootlessError(f"could not find the file {rel} in container", exit_code=1) from None
    return {}


_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # removed, or a link now


def _add_tree(tf, top: str, arcname: str) -> None:
    """``top`` and what is below it on the same filesystem (not ``/proc``, ``/sys`` or the /etc files
    bound there), depth first in name order, without recursion (a tree of any depth). An entry
    gone or changed into something else meanwhile (a container writing to a volume while it is
    copied) is left out."""
    dev = os.lstat(top).st_dev
    todo = [(top, arcname)]
    while todo:
        path, name = todo.pop()
        try:
            info = tf.gettarinfo(path, name)  # a hard link to an earlier member is recognised here
            if path != top and os.lstat(path).st_dev != dev:
                continue
            if info.isreg():  # still one, not a FIFO swapped in (that would block the copy for ever)
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as f:
                    if stat.S_ISREG(os.fstat(fd).st_mode):
                        tf.addfile(info, f)
                continue
            tf.addfile(info)
            if info.isdir():
                todo += [(os.path.join(path, n), f"{name}/{n}") for n in sorted(os.listdir(path), reverse=True)]
        except OSError as e:
            if e.errno not in _GONE or path == top:
                raise


def export_tree(root: str, out_fd: int) -> dict:
    from layers.commit import layer_from_tree
    if root == "/":  # inside a running container: its root filesystem alone, not /proc, /sys, /dev
        syscalls.unshare(syscalls.CLONE_NEWNS)  # a private copy of the container's mounts
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        syscalls.mount("/", "/proc", None, syscalls.MS_BIND)  # not recursive: no submounts
        root = "/proc"
    with os.fdopen(out_fd, "wb") as out:
        return layer_from_tree(root, out)


def untar_into(root: str, rel: str, in_fd: int, name: str) -> dict:
    """``cp`` into the container: the tar on ``in_fd`` (one top entry, ``name``) goes into the
    directory ``rel``, or becomes ``rel`` when that does not exist (Docker's rule)."""
    from layers.store import remove_trees
    from layers.unpack import unpack_layer
    from rootless.runtime import rootfs
    dest = rootfs.resolve(root, rel)
    parent = dest if os.path.isdir(dest) else os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise RootlessError(f"no such directory in the container: {os.path.dirname(rel) or '/'}", exit_code=1)
    if _read_only(parent):
        raise RootlessError(f"cannot copy to {rel}: it is on a read-only volume or mount", exit_code=1)
    try:
        if os.path.isdir(dest):
            return unpack_layer(in_fd, dest, what="cp", archive=True)
        tmp = os.path.join(parent, f".rootless-cp-{os.getpid()}")
        os.mkdir(tmp, 0o700)
        try:
            res = unpack_layer(in_fd, tmp, what="cp", archive=True)
            os.replace(os.path.join(tmp, name), dest)
            return res
        finally:
            remove_trees([tmp])
    except (FileNotFoundError, NotADirectoryError):  # gone meanwhile (a container changing a volume)
        raise RootlessError(f"no such directory in the container: {os.path.dirname(rel) or '/'}",
                            exit_code=1) from None


def _read_only(path: str) -> bool:
    """Whether ``path`` is on a read-only mount (False when it is gone: the copy then says so)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def extract_at(root: str, rel: str, in_fd: int) -> dict:
    """``cp - CONTAINER:DIR`` and the API's PUT archive: the tar on ``in_fd`` unpacked into the
    existing directory ``rel`` inside the container, by the same rules as a layer (no member
    through a link, ``..`` or an absolute name; hard links to the archive's own members only).
    What went wrong is answered as data (``missing``, ``not_dir``, ``refused``), so that the
    caller can give Docker's status for each."""
    from layers.unpack import unpack_layer
    from rootless.base.errors import InvalidImage
    from rootless.runtime import rootfs
    try:
        try:
            dest = rootfs.resolve(root, rel)
        except RootlessError as e:
            return {"refused": e.message}
        if not os.path.lexists(dest):
            return {"missing": True}
        if not os.path.isdir(dest):
            return {"not_dir": True}
        if _read_only(dest):
            return {"read_only": True}
        unpack_layer(in_fd, dest, what="archive", archive=True)
    except InvalidImage as e:  # a member the rules refuse
        return {"refused": e.message}
    except (FileNotFoundError, NotADirectoryError):  # gone meanwhile (a container changing a volume)
        return {"missing": True}
    finally:
        os.close(in_fd)
    return {}


def stat_path(root: str, rel: str) -> dict | None:
    """What Docker's ``X-Docker-Container-Path-Stat`` says of ``rel`` (no link followed in its last
    part), or None when it is missing."""
    from rootless.runtime import rootfs
    path = rootfs.resolve_parent(root, rel)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mode = st.st_mode & 0o777
    for test, bit in ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISBLK, 1 << 26),
                      (stat.S_ISFIFO, 1 << 25), (stat.S_ISSOCK, 1 << 24)):
        if test(st.st_mode):
            mode |= bit
    if stat.S_ISCHR(st.st_mode):
        mode |= (1 << 26) | (1 << 21)  # Go's ModeDevice | ModeCharDevice
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if st.st_mode & flag:
            mode |= bit
    return {"name": os.path.basename(rel.rstrip("/")) or "/", "size": st.st_size, "mode": mode,
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
            "linkTarget": os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""}


def tar_layer(src: str, out_fd: int, squash: bool) -> dict:
    """``commit``: the writable layer (or, for the copy method, the whole tree) as a layer tar."""
    from layers.commit import layer_from_tree, layer_from_upper
    from rootless.runtime.mountplan import MOUNT_POINTS
    with os.fdopen(out_fd, "wb", closefd=False) as out:
        return layer_from_tree(src, out) if squash else layer_from_upper(src, out, MOUNT_POINTS)


def step_layer(upper: str, out_fd: int, recipe: str | None = None) -> dict:
    """A build step's writable layer as a layer tar written to ``out_fd``; with ``recipe`` (a file
    to write: the kernel overlay's upper) only the tar's recipe is written there
    (:mod:`layers.tarsplit`), and the upper directory is then made the tar's very unpacking, to
    become the stored layer as it is (``settled`` in the answer says whether it could be; when it
    could not, the tar is written from the recipe)."""
    from layers.commit import recipe_from_upper, settle_upper
    from rootless.runtime.mountplan import MOUNT_POINTS
    if recipe is None:
        info = tar_layer(upper, out_fd, False)
        info["settled"] = False
        return info
    with open(recipe, "r+b") as f:
        info = recipe_from_upper(upper, f, MOUNT_POINTS)
    info["settled"] = settle_upper(upper, MOUNT_POINTS)
    if not info["settled"]:  # its whiteout files need the tar unpacked: the tar, from its recipe
        from layers import tarsplit
        tarsplit.rebuild(recipe, upper, info["diff_id"], out_fd, f"layer {info['diff_id'][7:19]}")
    return info


def changes(top: str, lowers: tuple[str, ...], whole: bool) -> list[tuple[str, int]]:
    """``diff``: what the writable layer (or, for the copy method, the whole tree) changed in the
    image's layers, as (path, Docker's kind) pairs."""
    from layers import changes as diff
    from rootless.runtime.mountplan import MOUNT_POINTS
    return (diff.from_tree if whole else diff.from_upper)(top, lowers, MOUNT_POINTS)


def hold_mount(plan, ch) -> int:
    """In the user namespace: mount a stopped container's root filesystem privately and keep it
    until SIGTERM (``rootless mount``)."""
    from layers import overlay
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    overlay.mount_rootfs(plan)
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    stop = []
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.append(1))
    ch.send("mounted")
    ch.close()
    while not stop:
        signal.pause()
    overlay.unmount_rootfs(plan)  # fuse-overlayfs ends with its mount
    return 0
