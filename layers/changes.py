"""What a container changed in its image's files, as ``docker diff`` and ``GET
/containers/{id}/changes`` list them: ``(path, kind)`` pairs, kind 0 changed, 1 added, 2 deleted
(Docker's ``Kind``), parents before their children, names in byte order.

``from_upper`` reads an overlay upper directory against the image's layers: a whiteout (a
character device 0/0, or fuse-overlayfs's ``.wh.NAME`` file) is a deletion; an entry the image
does not have is an addition, and so is everything below it; one it has is a change, except a
directory whose own mode and owner are the image's and below which nothing is listed (overlay
copies a directory up whenever something inside it is touched). An opaque directory hides what
the image has below it. What a runtime made only to mount on (``mount_points``, relative paths
like ``etc/hosts``) is left out while it is bare, as Docker's init layer keeps it out.

``from_tree`` does the same for a whole root filesystem (the ``copy`` method): an entry is
changed when its type, mode, owner, size, mtime or link target differ from the image's, and
what the image has that the tree has not is a deletion.

Runs as root of the user namespace (the layers hold files of subordinate uids); every path is
walked from directory descriptors without following a link.
"""

from __future__ import annotations

import errno
import os
import stat

from layers import whiteout
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

CHANGED, ADDED, DELETED = 0, 1, 2
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def from_upper(upper: str, lowers: Sequence[str], mount_points: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The changes an overlay upper directory makes to ``lowers`` (top layer first)."""
    return _Diff(lowers, frozenset(mount_points), whole=False).run(upper)


def from_tree(root: str, lowers: Sequence[str], mount_points: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The changes a whole root filesystem makes to ``lowers`` (top layer first)."""
    return _Diff(lowers, frozenset(mount_points), whole=True).run(root)


class _Image:
    """Look-ups in the image's merged layers (top first), without mounting them."""

    def __init__(self, lowers: Sequence[str]):
        self.lowers = lowers

    def _open_dir(self, layer: str, parts: Sequence[str]) -> tuple[int | None, bool]:
        """(fd of the directory ``parts`` in one layer or None, whether the layers below are hidden
        there: a whiteout, a non-directory or an opaque directory on the way)."""
        try:
            fd = os.open(layer, _DIR_FLAGS)
        except OSError:
            return None, False
        for name in parts:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                os.close(fd)
                return None, False
            if not stat.S_ISDIR(st.st_mode):  # a whiteout or a file hides the layers below
                os.close(fd)
                return None, True
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = sub
        return fd, False

    def stat(self, parts: Sequence[str]) -> os.stat_result | None:
        """The image's entry at ``parts``, or None."""
        parent, name = parts[:-1], parts[-1]
        for layer in self.lowers:
            fd, hidden = self._open_dir(layer, parent)
            if fd is None:
                if hidden:
                    return None
                continue
            try:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    st = None
                if st is None and os.path.lexists(f"/proc/self/fd/{fd}/{whiteout.WH_PREFIX}{name}"):
                    return None
                opaque = _opaque(fd)
            finally:
                os.close(fd)
            if st is not None:
                return None if whiteout.is_whiteout_stat(st) else st
            if opaque:
                return None
        return None

    def names(self, parts: Sequence[str]) -> set[str]:
        """The names in the image's directory ``parts``."""
        seen: set[str] = set()
        gone: set[str] = set()
        for layer in self.lowers:
            fd, hidden = self._open_dir(layer, parts)
            if fd is None:
                if hidden:
                    break
                continue
            try:
                for name in os.listdir(fd):
                    if name == whiteout.OPAQUE_MARKER:
                        continue
                    if name.startswith(whiteout.WH_PREFIX):
                        gone.add(name[len(whiteout.WH_PREFIX):])
                        continue
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    if whiteout.is_whiteout_stat(st):
                        gone.add(name)
                    elif name not in gone:
                        seen.add(name)
                opaque = _opaque(fd)
            finally:
                os.close(fd)
            if opaque:
                break
        return seen


class _Diff:
    def __init__(self, lowers: Sequence[str], mount_points: frozenset, whole: bool):
        self.image = _Image(lowers)
        self.mount_points = mount_points
        self.whole = whole

    def run(self, top: str) -> list[tuple[str, int]]:
        try:
            fd = os.open(top, _DIR_FLAGS)
        except OSError as e:
            raise RootlessError(f"diff: cannot open {top}: {e.strerror or e}") from None
        try:
            return self._dir(fd, [], below=True)
        finally:
            os.close(fd)

    def _dir(self, dfd: int, parts: list[str], below: bool) -> list[tuple[str, int]]:
        """The changes inside the directory ``parts`` (open at ``dfd``); ``below``: whether the
        image may have entries under it."""
        found: dict[str, list[tuple[str, int]]] = {}  # by the child's name: its changes, its own first
        for name in os.listdir(dfd):
            if name == whiteout.OPAQUE_MARKER:
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not self.whole and (whiteout.is_whiteout_stat(st) or
                                   (name.startswith(whiteout.WH_PREFIX) and stat.S_ISREG(st.st_mode))):
                gone = name[len(whiteout.WH_PREFIX):] if name.startswith(whiteout.WH_PREFIX) else name
                if below and self.image.stat(parts + [gone]) is not None:
                    found[gone] = [("/" + "/".join(parts + [gone]), DELETED)]
                continue
            found[name] = self._entry(dfd, name, parts + [name], st, below)
        if self.whole and below:
            for name in self.image.names(parts) - found.keys():
                found[name] = [("/" + "/".join(parts + [name]), DELETED)]
        return [c for name in sorted(found, key=os.fsencode) for c in found[name]]

    def _entry(self, dfd: int, name: str, path: list[str], st: os.stat_result, below: bool) -> list[tuple[str, int]]:
        if "/".join(path) in self.mount_points and _bare(dfd, name, st):
            return []
        old = self.image.stat(path) if below else None
        if stat.S_ISDIR(st.st_mode):
            return self._subdir(dfd, name, path, st, old)
        if old is None:
            return [("/" + "/".join(path), ADDED)]
        if not self.whole or _differs(dfd, name, st, old, self.image, path):
            return [("/" + "/".join(path), CHANGED)]
        return []

    def _subdir(self, dfd: int, name: str, path: list[str], st: os.stat_result,
                old: os.stat_result | None) -> list[tuple[str, int]]:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return []
            raise
        try:
            opaque = not self.whole and _opaque(fd)
            old_dir = old is not None and stat.S_ISDIR(old.st_mode)
            inner = self._dir(fd, path, below=old_dir and not opaque)
        finally:
            os.close(fd)
        me = "/" + "/".join(path)
        if old is None:
            return [(me, ADDED)] + inner
        same = (st.st_mode, st.st_uid, st.st_gid) == (old.st_mode, old.st_uid, old.st_gid)
        if inner or not old_dir or opaque or not same:
            return [(me, CHANGED)] + inner
        return inner


def _differs(dfd: int, name: str, st: os.stat_result, old: os.stat_result, image: _Image, path: list[str]) -> bool:
    """Whether a whole tree's entry is not the image's (the copy method: no upper layer)."""
    if (stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid) != \
            (stat.S_IFMT(old.st_mode), old.st_mode, old.st_uid, old.st_gid):
        return True
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(name, dir_fd=dfd) != _image_link(image, path)
    return st.st_size != old.st_size or int(st.st_mtime) != int(old.st_mtime)


def _image_link(image: _Image, path: list[str]) -> str | None:
    for layer in image.lowers:
        fd, hidden = image._open_dir(layer, path[:-1])
        if fd is None:
            if hidden:
                return None
            continue
        try:
            return os.readlink(path[-1], dir_fd=fd)
        except OSError:
            continue
        finally:
            os.close(fd)
    return None


def _opaque(fd: int) -> bool:
    for name in whiteout.OPAQUE_XATTRS:
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError:
            continue
    try:
        return stat.S_ISREG(os.stat(whiteout.OPAQUE_MARKER, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _bare(dfd: int, name: str, st: os.stat_result) -> bool:
    """An empty regular file, or an empty directory."""
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if not stat.S_ISDIR(st.st_mode):
        return False
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
    except OSError:
        return False
    try:
        return not os.listdir(fd)
    finally:
        os.close(fd)
