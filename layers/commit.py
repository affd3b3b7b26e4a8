"""A container's writable layer (or a whole root filesystem) as one layer tar: ``commit``.

The reverse of :mod:`layers.unpack`. An overlay upper directory marks a
deletion with a character device 0/0 and an opaque directory with an
``*.opaque=y`` xattr (:mod:`layers.whiteout`); in the tar these become the OCI
``.wh.NAME`` and ``DIR/.wh..wh..opq`` empty files. Everything is walked through
directory fds without following symlinks, in sorted order, so the same tree
always gives the same bytes and so the same diff id.

Runs as root of the user namespace (files of subordinate uids are readable
there); takes plain paths and does no namespace work itself.
"""

from __future__ import annotations

import errno
import os
import stat

from layers import whiteout
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    import tarfile
    from collections.abc import Iterable, Iterator
    from typing import BinaryIO

    from layers import tarsplit

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_KEEP_XATTRS = ("user.", "security.capability")
# Overlay's and fuse-overlayfs's own bookkeeping: never part of an image.
_PRIVATE_XATTRS = ("user.overlay.", "trusted.overlay.", "user.fuseoverlayfs.", "user.containers.")
_WHITEOUT_MODE = 0o600


class HashingWriter:
    """A write-only stream that hashes (and counts) what passes through it."""

    def __init__(self, raw: BinaryIO | tarsplit.RecipeStream):
        import hashlib  # here, not at import: the CLI imports this module
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self.raw, "flush", None)
        if flush is not None:
            flush()

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _FdReader:
    """``read`` on a borrowed fd, for ``TarFile.addfile``."""

    def __init__(self, fd: int):
        self.fd = fd
        # (recipe stream, tar, path, size): the contents are claimed as the file at path when
        # first read, when the tar's offset is where they begin
        self.claim: tuple[tarsplit.RecipeStream, tarfile.TarFile, str, int] | None = None

    def read(self, n: int = -1) -> bytes:
        if self.claim is not None:
            recipe, tf, path, size = self.claim
            self.claim = None
            recipe.claim(tf.offset, size, path)
        if n is None or n < 0:
            n = 1 << 20
        return os.read(self.fd, n)


def layer_from_upper(upper: str, out: BinaryIO, mount_points: Iterable[str] = ()) -> dict:
    """Write the overlay upper directory ``upper`` to ``out`` as an uncompressed layer tar.
    ``mount_points``: paths (relative, like ``etc/hosts``) a runtime made only to mount on: left
    out while they are an empty file or directory, as Docker's init layer keeps them out.

    Returns ``{"diff_id": "sha256:...", "size": bytes_of_regular_files}``.
    """
    return _write_layer(upper, out, overlay=True, mount_points=frozenset(mount_points))


def layer_from_tree(root: str, out: BinaryIO) -> dict:
    """Write a whole root filesystem (the ``copy`` method's directory) as one layer tar."""
    return _write_layer(root, out, overlay=False)


def recipe_from_upper(upper: str, out: BinaryIO, mount_points: Iterable[str] = ()) -> dict:
    """As :func:`layer_from_upper`, but the tar itself is not written: ``out`` gets its recipe
    (:mod:`layers.tarsplit`), each regular file's contents named by its path in ``upper``; the
    tar is the one ``upper``'s settling (:func:`settle_upper`) makes the very unpacking of."""
    from layers import tarsplit
    writer = tarsplit.RecipeWriter(out)
    stream = tarsplit.RecipeStream(writer)
    info = _write_layer(upper, stream, overlay=True, mount_points=frozenset(mount_points), recipe=stream)
    writer.finish()
    return info


def _write_layer(top: str, out: BinaryIO | tarsplit.RecipeStream, overlay: bool,
                 mount_points: frozenset = frozenset(), recipe: tarsplit.RecipeStream | None = None) -> dict:
    import tarfile
    writer = HashingWriter(out)
    try:
        root_fd = os.open(top, _DIR_FLAGS)
    except OSError as e:
        raise RootlessError(f"commit: cannot open {top}: {e.strerror or e}") from None
    walker = _Walker(overlay, mount_points)
    walker.recipe = recipe
    try:
        # typeshed wants a seekable, readable file; a "w|" stream only writes
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
            walker.tf = tf
            walker.walk(root_fd)
    except OSError as e:
        from rootless.base.errors import is_no_space
        if is_no_space(e):  # the layer's tar has no room: the CLI names the store
            raise
        where = f" at {walker.current!r}" if walker.current else ""
        raise RootlessError(f"commit: archiving {top} failed{where}: {e.strerror or e}") from None
    finally:
        os.close(root_fd)
    writer.flush()
    return {"diff_id": writer.digest(), "size": walker.size}


class _Walker:
    def __init__(self, overlay: bool, mount_points: frozenset = frozenset()):
        self.overlay = overlay
        self.mount_points = mount_points
        self.tf: tarfile.TarFile  # the archive being written: set before walk()
        self.links: dict[tuple[int, int], str] = {}
        self.size = 0
        self.current = ""
        self.recipe: tarsplit.RecipeStream | None = None  # only the recipe is kept: claims go there

    def walk(self, root_fd: int) -> None:
        """Depth first, pre-order, children sorted by their member names."""
        stack = [(root_fd, "", iter(self._children(root_fd)), False)]
        try:
            while stack:
                dfd, rel, it, owned = stack[-1]
                entry = next(it, None)
                if entry is None:
                    stack.pop()
                    if owned:
                        os.close(dfd)
                    continue
                name, st = entry
                path = f"{rel}/{name}" if rel else name
                self.current = path
                if path in self.mount_points and _bare(dfd, name, st):
                    continue
                sub = self._entry(dfd, name, path, st)
                if sub is not None:
                    stack.append((sub, path, iter(()), True))  # closed by the finally if listing fails
                    stack[-1] = (sub, path, iter(self._children(sub)), True)
        finally:
            for dfd, _, _, owned in stack:
                if owned:
                    os.close(dfd)

    def _children(self, dfd: int) -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of the entries of a directory, sorted by the name they get in the tar."""
        keyed: dict[bytes, tuple[str, os.stat_result]] = {}
        for name in os.listdir(dfd):
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if self.overlay and whiteout.is_whiteout_stat(st):
                key = os.fsencode(whiteout.WH_PREFIX + name)
            elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode) \
                    or stat.S_ISFIFO(st.st_mode):
                key = os.fsencode(name)
            else:  # sockets, device nodes: not part of an image
                continue
            if self.overlay and name == whiteout.OPAQUE_MARKER:
                continue  # fuse-overlayfs's marker file: written with its directory
            # A whiteout device and a fuse-overlayfs ``.wh.NAME`` file say the same: keep one.
            if key not in keyed or stat.S_ISREG(st.st_mode):
                keyed[key] = (name, st)
        return [keyed[k] for k in sorted(keyed)]

    def _info(self, path: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        import tarfile
        ti = tarfile.TarInfo(path)
        ti.type = kind
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.mtime = int(st.st_mtime)
        ti.uname = ti.gname = ""
        return ti

    def _entry(self, dfd: int, name: str, path: str, st: os.stat_result) -> int | None:
        """Write one member; an open fd when it is a directory to descend into."""
        import tarfile
        tf = self.tf
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            try:
                st = os.fstat(fd)
                ti = self._info(path, st, tarfile.DIRTYPE)
                opaque = self._xattrs(fd, ti)
                tf.addfile(ti)
                if self.overlay and (opaque or _has_marker_file(fd)):
                    tf.addfile(self._marker(f"{path}/{whiteout.OPAQUE_MARKER}", st))
            except BaseException:
                os.close(fd)
                raise
            return fd
        if self.overlay and whiteout.is_whiteout_stat(st):
            tf.addfile(self._marker(_wh_path(path), st))
            return None
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                ti = self._info(path, st, tarfile.LNKTYPE)
                ti.linkname = first
                tf.addfile(ti)
                return None
            self.links[key] = path
        if stat.S_ISREG(mode):
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):  # swapped under us
                    raise OSError(errno.ESTALE, "file changed during the commit")
                ti = self._info(path, st, tarfile.REGTYPE)
                ti.size = st.st_size
                self._xattrs(fd, ti)
                reader = _FdReader(fd)
                if self.recipe is not None and ti.size:
                    reader.claim = (self.recipe, tf, path, ti.size)
                tf.addfile(ti, reader)
            finally:
                os.close(fd)
            self.size += ti.size
        elif stat.S_ISLNK(mode):
            ti = self._info(path, st, tarfile.SYMTYPE)
            ti.linkname = os.readlink(name, dir_fd=dfd)
            tf.addfile(ti)
        elif stat.S_ISFIFO(mode):
            tf.addfile(self._info(path, st, tarfile.FIFOTYPE))
        return None

    def _marker(self, path: str, st: os.stat_result) -> tarfile.TarInfo:
        import tarfile
        ti = self._info(path, st, tarfile.REGTYPE)
        ti.mode = _WHITEOUT_MODE
        ti.size = 0
        return ti

    def _xattrs(self, fd: int, ti: tarfile.TarInfo) -> bool:
        """Copy the kept xattrs of ``fd`` to PAX headers; True if it is marked opaque."""
        opaque = False
        if self.overlay:
            opaque = any(_xattr(fd, x) == b"y" for x in whiteout.OPAQUE_XATTRS)
        try:
            names = os.listxattr(fd)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return opaque
            raise
        for xname in sorted(names):
            if not xname.startswith(_KEEP_XATTRS) or xname.startswith(_PRIVATE_XATTRS):
                continue
            try:
                value = os.getxattr(fd, xname)
            except OSError as e:
                if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue
                raise
            # typeshed says Mapping; TarInfo makes it a dict, and adding to it is how tarfile writes PAX
            ti.pax_headers["SCHILY.xattr." + xname] = value.decode("utf-8", "surrogateescape")  # type: ignore[index]
        return opaque


def _bare(dfd: int, name: str, st: os.stat_result) -> bool:
    """An empty regular file, or an empty directory that hides nothing (no opaque mark)."""
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if not stat.S_ISDIR(st.st_mode):
        return False
    fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
    try:
        return not os.listdir(fd) and not any(_xattr(fd, x) == b"y" for x in whiteout.OPAQUE_XATTRS)
    finally:
        os.close(fd)


def _xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError:
        return None


def _wh_path(path: str) -> str:
    parent, _, name = path.rpartition("/")
    return f"{parent}/{whiteout.WH_PREFIX}{name}" if parent else whiteout.WH_PREFIX + name


def _has_marker_file(fd: int) -> bool:
    """fuse-overlayfs may leave ``.wh..wh..opq`` as a file where it cannot set the xattr."""
    try:
        st = os.stat(whiteout.OPAQUE_MARKER, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


# ---- a build step's writable layer kept as its unpacked layer ------------------------------------
def settle_upper(upper: str, mount_points: Iterable[str] = ()) -> bool:
    """Make the overlay upper directory ``upper`` (the kernel overlay's) the very tree that
    :func:`layers.unpack.unpack_layer` makes of the tar :func:`layer_from_upper` writes of it, so
    that it can be renamed into the store as that layer instead of being unpacked again: what the
    tar leaves out goes (bare mount points, sockets, device nodes other than whiteouts, the
    overlay's own and other unkept xattrs, fuse-overlayfs's opaque marker file, kept as the xattr),
    times are whole seconds (atime = mtime, as unpacked) and the root is root's, 0755. False,
    leaving the tree half settled, when it holds a ``.wh.NAME`` file: the tar says a whiteout
    there, which unpacking alone resolves (the caller unpacks the tar then)."""
    root_fd = os.open(upper, _DIR_FLAGS)
    points = frozenset(mount_points)
    try:
        os.fchown(root_fd, 0, 0)
        os.fchmod(root_fd, 0o755)
        _settle_xattrs(root_fd, opaque=False)
        stack: list[tuple[int, str, Iterator[str], int | None]] = [(root_fd, "", iter(os.listdir(root_fd)), None)]
        while stack:
            dfd, rel, it, mtime = stack[-1]
            name = next(it, None)
            if name is None:
                stack.pop()
                if mtime is not None:
                    os.utime(dfd, (mtime, mtime))
                    os.close(dfd)
                continue
            path = f"{rel}/{name}" if rel else name
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            mode = st.st_mode
            if path in points and _bare(dfd, name, st):
                (os.rmdir if stat.S_ISDIR(mode) else os.unlink)(name, dir_fd=dfd)
            elif name == whiteout.OPAQUE_MARKER and stat.S_ISREG(mode):
                _set_opaque(dfd)
                os.unlink(name, dir_fd=dfd)
            elif name.startswith(whiteout.WH_PREFIX):
                return False
            elif whiteout.is_whiteout_stat(st):
                pass
            elif stat.S_ISDIR(mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    _settle_xattrs(fd, opaque=True)
                except BaseException:
                    os.close(fd)
                    raise
                stack.append((fd, path, iter(os.listdir(fd)), int(st.st_mtime)))
            elif stat.S_ISREG(mode):
                fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
                try:
                    _settle_xattrs(fd, opaque=False)
                    os.utime(fd, (int(st.st_mtime), int(st.st_mtime)))
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(mode) or stat.S_ISFIFO(mode):
                os.utime(name, (int(st.st_mtime), int(st.st_mtime)), dir_fd=dfd, follow_symlinks=False)
            else:  # sockets, device nodes: not part of an image
                os.unlink(name, dir_fd=dfd)
        return True
    finally:
        for dfd, _, _, mtime in stack:
            if mtime is not None:
                os.close(dfd)
        os.close(root_fd)


def _settle_xattrs(fd: int, opaque: bool) -> None:
    """Leave only the xattrs a layer tar keeps; a directory (``opaque``) marked opaque in any of
    the forms :class:`_Walker` reads keeps the one form unpacking writes."""
    is_opaque = opaque and any(_xattr(fd, x) == b"y" for x in whiteout.OPAQUE_XATTRS)
    try:
        names = os.listxattr(fd)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for xname in names:
        if xname.startswith(_KEEP_XATTRS) and not xname.startswith(_PRIVATE_XATTRS):
            continue
        if is_opaque and xname == whiteout.OPAQUE_XATTR:
            continue
        try:
            os.removexattr(fd, xname)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    if is_opaque and _xattr(fd, whiteout.OPAQUE_XATTR) != b"y":
        _set_opaque(fd)


def _set_opaque(fd: int) -> None:
    whiteout.mark_opaque(fd)
