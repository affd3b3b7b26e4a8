"""Paths inside a container root: the resolver that follows symlinks within the root
(:func:`rootless.base.inroot.resolve`, shared with the build context) and ``cp``'s variant.

``resolve(root, "/etc/hosts")`` never leaves ``root``: an absolute symlink is
taken relative to the root and ``..`` stops at the root, as the kernel would
see it after ``pivot_root``. Never join container paths with ``os.path.join``
alone: an absolute container path would silently become a host path.
"""

from __future__ import annotations

import errno
import os

from rootless.base import syscalls
from rootless.base.errors import RootlessError
from rootless.base.inroot import resolve


def resolve_parent(root: str, path: str) -> str:
    """As :func:`resolve`, but a symlink in the last component stays itself (``cp`` copies a
    link as a link, as Docker does without ``-L``); a trailing ``/`` follows it, as in Docker."""
    head, _, last = path.rpartition("/")
    if last in ("", ".", ".."):
        return resolve(root, path)
    return os.path.join(resolve(root, head or "/"), last)


_IN_ROOT = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS


def mount_point(root: str, target: str, is_file: bool) -> int:
    """An ``O_PATH`` descriptor of ``target`` (a host path under ``root``, from :func:`resolve`),
    made when missing: a directory, or an empty file when ``is_file``, with its missing parents.
    Every step is resolved by the kernel inside ``root`` (``RESOLVE_IN_ROOT``): a directory of a
    volume that another container swaps for a link meanwhile is followed inside the root, never
    to the user's files. Mount on ``/proc/self/fd/N`` of it."""
    parts = [p for p in os.path.relpath(target, root).split("/") if p not in ("", ".")]
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = syscalls.openat2(root_fd, ".", os.O_PATH, resolve=_IN_ROOT)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):  # before Linux 5.6, or a seccomp filter
                raise
            return _mount_point_by_path(target, is_file)
        for i, part in enumerate(parts):
            os.close(fd)
            fd = _open_or_make(root_fd, parts[:i], part, is_file and i == len(parts) - 1)
        return fd
    finally:
        os.close(root_fd)


def open_inside(root: str, path: str) -> int:
    """An ``O_PATH`` descriptor of ``path`` (relative) resolved by the kernel inside ``root``: what a
    volume's subpath names, whatever links the volume holds (a container may have made them), never
    leaves the volume. Bind from ``/proc/self/fd/N`` of it. A missing path is one line."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return syscalls.openat2(root_fd, path, os.O_PATH | os.O_CLOEXEC, resolve=_IN_ROOT)
    except FileNotFoundError:
        raise RootlessError(f"cannot mount the volume's subpath {path}: it does not exist in the volume",
                            "make it first (in a container that mounts the whole volume)") from None
    finally:
        os.close(root_fd)


def _open_or_make(root_fd: int, parent: list[str], name: str, is_file: bool) -> int:
    path = "/".join(parent + [name])
    try:
        return syscalls.openat2(root_fd, path, os.O_PATH, resolve=_IN_ROOT)
    except FileNotFoundError:
        pass
    pfd = syscalls.openat2(root_fd, "/".join(parent) or ".", os.O_PATH | os.O_DIRECTORY, resolve=_IN_ROOT)
    try:
        if is_file:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=pfd))
        else:
            os.mkdir(name, 0o755, dir_fd=pfd)
    except FileExistsError:
        pass  # made meanwhile, or a link to what is missing: opened below, or one line
    finally:
        os.close(pfd)
    try:
        return syscalls.openat2(root_fd, path, os.O_PATH, resolve=_IN_ROOT)
    except FileNotFoundError:
        raise RootlessError(f"cannot make the mount point {'/' + path}: it is a link to nothing") from None


def _mount_point_by_path(target: str, is_file: bool) -> int:
    """:func:`mount_point` where the kernel has no openat2 (the path is followed as it is then)."""
    if is_file:
        if not os.path.lexists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(target, exist_ok=True)
    return os.open(target, os.O_PATH | os.O_CLOEXEC)
