"""Unpack one layer tar into a directory, safely, as root of the user namespace.

Every member is validated (:mod:`layers.tarsafe`); every file is created
relative to an open directory fd, never through a symlink (``O_NOFOLLOW`` at
each step), so a hostile layer cannot write outside its directory. OCI
whiteouts become overlay whiteouts (:mod:`layers.whiteout`). Device nodes are
skipped (a user namespace cannot create them, and a container gets its own
``/dev``), as are hard links to them; a character device 0/0, overlay's form of
a whiteout, becomes a whiteout. The uncompressed stream is hashed on the way and
must match the expected diff id.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import tarfile
import time
import zlib
from typing import BinaryIO, Protocol, cast

from layers import tarsafe, whiteout
from rootless.base.errors import InvalidImage, RootlessError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_KEEP_XATTRS = ("user.", "security.capability")


class Readable(Protocol):
    """What a reader of a stream needs of it: a blob, a decompressor, a tar member's data."""

    def read(self, n: int = -1, /) -> bytes: ...


class HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: Readable):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))


def compression_of(head: bytes) -> str | None:
    """The compression a stream's first bytes name: gzip, bzip2, xz or zstd; None for none."""
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def is_archive(head: bytes) -> bool:
    """Whether a stream whose first 512 bytes are ``head`` is a tar, plain or compressed (a build
    context: anything else is a Dockerfile's text)."""
    return compression_of(head) is not None or head[257:262] == b"ustar"


def open_decompressed(f: BinaryIO) -> BinaryIO | io.BufferedIOBase:
    """Wrap ``f`` in the decompressor its magic bytes call for: gzip, zstd, bzip2 or xz (the
    last two: ``ADD``'s archives, and layers of tools that use them), else ``f`` itself."""
    kind = compression_of(f.peek(6)[:6] if hasattr(f, "peek") else b"")
    if kind == "gzip":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if kind == "bzip2":
        import bz2
        return bz2.BZ2File(f)
    if kind == "xz":
        import lzma
        return lzma.LZMAFile(f)
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise InvalidImage("a zstd-compressed layer, and the zstandard module is missing",
                               "install rootless with its dependencies (pip install zstandard)") from None
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return f


class Abandoned(RootlessError):
    """The download a growing blob came from failed (its temporary file was removed)."""


class GrowingFile(io.RawIOBase):
    """A blob file still being downloaded, read as it grows until it holds ``size`` bytes.

    The downloader writes the file and renames it into the store when it is verified (the open
    file is the same); if the download fails it removes the file, and the reader stops with
    :class:`Abandoned`. So does it when the process that asked for the unpacking is gone.
    """

    POLL = 0.002

    def __init__(self, path: str, size: int, final: str | None = None):
        """``final``: where the verified blob lands. A partial download's path is shared by every
        pull of the blob: by the time this opens it, the download may have been renamed to
        ``final`` and another pull may have made a new, empty file of that name. A file that
        stops growing while ``final`` is a different file is left for ``final``, at the same
        offset (the same bytes, verified)."""
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size, self.pos = size, 0
        self.final = final
        self.parent = os.getppid()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while True:
            want = min(len(buf), self.size - self.pos)
            if want <= 0:
                return 0
            n = os.readv(self.fd, [memoryview(buf)[:want]])
            if n:
                self.pos += n
                return n
            st = os.fstat(self.fd)
            if st.st_size > self.pos:
                continue
            if self.final is not None and self._switch_to_final(st):
                continue
            if st.st_nlink == 0 or os.getppid() != self.parent:
                raise Abandoned("the layer's download was abandoned")
            time.sleep(self.POLL)

    def _switch_to_final(self, st: os.stat_result) -> bool:
        try:
            fd = os.open(self.final or "", os.O_RDONLY | os.O_CLOEXEC)  # set: the caller checked
        except FileNotFoundError:
            return False
        if (os.fstat(fd).st_ino, os.fstat(fd).st_dev) == (st.st_ino, st.st_dev):
            os.close(fd)  # the same file, renamed: nothing to switch to
            return False
        os.lseek(fd, self.pos, os.SEEK_SET)
        os.close(self.fd)
        self.fd = fd
        self.final = None
        return True

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


class _Skipped:
    """Device nodes left out of an unpack, and hard links to them, by cleaned name."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.count = 0

    def add(self, rel: str) -> int:
        self.names.add(rel)
        self.count += 1
        return 0


class Dirs:
    """Open directory fds below the layer root, walked without following symlinks (the unpacker's,
    and ``tarsplit``'s reader of an unpacked tree, with ``create`` false)."""

    def __init__(self, root_fd: int, what: str, written: list | None = None):
        self.root_fd = root_fd
        self.what = what
        self.cache: dict[str, int] = {}
        self.written = written  # (tar offset, size, path, inode) of each regular file made, if wanted

    def open(self, rel: str, create: bool) -> int:
        """The directory ``rel``, from its nearest open ancestor down (no recursion: any depth)."""
        if not rel:
            return self.root_fd
        fd = self.cache.get(rel)
        if fd is not None:
            return fd
        parts = rel.split("/")
        have = len(parts) - 1
        while have and "/".join(parts[:have]) not in self.cache:
            have -= 1
        for i in range(have + 1, len(parts)):
            self._open_one("/".join(parts[:i]), create)
        return self._open_one(rel, create)

    def _open_one(self, rel: str, create: bool) -> int:
        """``rel``, whose parent is open (or the root)."""
        fd = self.cache.get(rel)
        if fd is not None:
            return fd
        parent_rel, _, name = rel.rpartition("/")
        parent = self.cache[parent_rel] if parent_rel else self.root_fd
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise InvalidImage(f"{self.what}: {rel!r} does not exist") from None
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise InvalidImage(f"{self.what}: path {rel!r} goes through a symlink or a file",
                                   "the layer tries to write outside its directory") from None
            raise
        if len(self.cache) >= 256:
            self.close()
        self.cache[rel] = fd
        return fd

    def close(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()


def _chown(name: str, uid: int, gid: int, dir_fd: int | None = None, fd: int | None = None) -> None:
    try:
        if fd is not None:
            os.fchown(fd, uid, gid)
        else:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        # EINVAL: the owner is not mapped (single-uid map or a uid beyond the range):
        # the file stays owned by container root, that is by the user.
        if e.errno not in (errno.EINVAL, errno.EPERM):
            raise


def _set_xattrs(fd: int, m: tarfile.TarInfo) -> None:
    for key, value in m.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        name = key[len("SCHILY.xattr."):]
        if not name.startswith(_KEEP_XATTRS):
            continue
        try:
            os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))  # no /proc where cp unpacks
        except OSError:
            pass


def _clear(parent: int, name: str, rel: str, keep_dir: bool, what: str) -> bool:
    """Remove an earlier entry at ``name``; True if a directory was kept."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        raise InvalidImage(f"{what}: {rel!r} replaces a directory of the same layer")
    os.unlink(name, dir_fd=parent)
    return False


def unpack_layer(blob: str | int | BinaryIO, dest: str, expected_diff_id: str | None = None,
                 what: str = "layer", archive: bool = False, written: list | None = None) -> dict:
    """Unpack ``blob`` (a path, an open fd or a binary stream of a tar, maybe gzip or zstd) into
    the existing directory ``dest``.

    ``archive``: a plain archive (``cp``), not a layer: ``.wh.`` names are ordinary files and no
    device becomes a whiteout, a hard link may only name a member this archive made, and the
    archive's root entry leaves ``dest``'s own mode and owner alone.

    ``written``: a list to which each regular file made from the tar's bytes (not a sparse one) is
    added as (its data's offset in the uncompressed tar, size, path, inode), for
    :mod:`layers.tarsplit`.

    Returns ``{"diff_id": ..., "size": ..., "skipped_devices": ...}``, the last the number of
    device members (and hard links to them) left out.
    """
    root_fd = os.open(dest, _DIR_FLAGS)
    dirs = Dirs(root_fd, what, written)
    dir_times: list[tuple[str, int]] = []
    skipped = _Skipped()
    made: set[str] | None = set() if archive else None
    size = 0
    try:
        with _open_blob(blob) as raw:
            reader = HashingReader(open_decompressed(raw))
            try:
                # typeshed wants a seekable, writable file; an "r|" stream only reads
                with tarfile.open(fileobj=reader, mode="r|", errorlevel=2,  # type: ignore[call-overload]
                                  bufsize=_CHUNK) as tf:
                    for m in tf:
                        size += _extract(tf, m, dirs, dir_times, skipped, what, made)
                reader.drain()
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise InvalidImage(f"{what}: truncated or corrupt tar ({e})") from None
            except Exception as e:  # noqa: BLE001 - zstandard.ZstdError, lzma.LZMAError: corrupt data
                if type(e).__name__ not in ("ZstdError", "LZMAError"):
                    raise
                raise InvalidImage(f"{what}: corrupt compressed data ({e})") from None
        for rel, mtime in reversed(dir_times):
            fd = dirs.open(rel, create=False)
            os.utime(fd, (mtime, mtime))
    except OSError as e:
        raise RootlessError(f"{what}: unpacking failed: {e.strerror or e}") from None
    finally:
        dirs.close()
        os.close(root_fd)
    digest = reader.digest()
    if expected_diff_id and digest != expected_diff_id:
        raise InvalidImage(f"{what}: content digest {digest} does not match diff id {expected_diff_id}",
                           "the archive is corrupt; fetch or export it again")
    return {"diff_id": digest, "size": size, "skipped_devices": skipped.count}


def _copy_data(src: Readable, fd: int, length: int, rel: str, what: str) -> None:
    remaining = length
    while remaining:
        chunk = src.read(min(_CHUNK, remaining))
        if not chunk:
            raise InvalidImage(f"{what}: truncated file {rel!r}")
        remaining -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


def _open_blob(blob: str | int | BinaryIO) -> BinaryIO:
    if isinstance(blob, str):
        return open(blob, "rb")
    if isinstance(blob, int):
        return os.fdopen(os.dup(blob), "rb")
    return blob


def _extract(tf: tarfile.TarFile, m: tarfile.TarInfo, dirs: Dirs, dir_times: list, skipped: _Skipped,
             what: str, made: set[str] | None = None) -> int:
    """One member; ``made`` (a plain archive's, else None): the names it made so far."""
    rel = tarsafe.check_member(m, what)
    layer = made is None
    if tarsafe.is_device(m) and not (layer and tarsafe.is_whiteout_device(m)) \
            and not (layer and rel.rpartition("/")[2].startswith(whiteout.WH_PREFIX)):  # .wh.: by name below
        return skipped.add(rel)
    if m.islnk() and tarsafe.clean_name(m.linkname, what) in skipped.names:
        return skipped.add(rel)  # a hard link to a device node left out: the same inode
    skipped.names.discard(rel)  # a later member of the same name replaces the device
    if made is not None:  # not a layer
        if not rel:  # the archive's root: the destination keeps its mode and owner
            return 0
        if m.islnk() and tarsafe.clean_name(m.linkname, what) not in made:
            raise InvalidImage(f"{what}: hard link {rel!r} to {m.linkname!r}, which the archive did not make",
                               "an archive's hard links may only name its own earlier members")
        if not m.isdir():
            made.add(rel)
        else:
            made.discard(rel)
        return _extract_entry(tf, m, rel, dirs, dir_times, what, layer=False)
    return _extract_entry(tf, m, rel, dirs, dir_times, what, layer=True)


def _extract_entry(tf: tarfile.TarFile, m: tarfile.TarInfo, rel: str, dirs: Dirs, dir_times: list, what: str,
                   layer: bool) -> int:
    if not rel:  # the layer's root directory
        if m.ischr():
            raise InvalidImage(f"{what}: whiteout device for the layer's root")
        os.fchmod(dirs.root_fd, m.mode & 0o7777)
        _chown("", m.uid, m.gid, fd=dirs.root_fd)
        return 0
    parent_rel, _, name = rel.rpartition("/")
    parent = dirs.open(parent_rel, create=True)

    if not layer:
        pass
    elif name == whiteout.OPAQUE_MARKER:
        whiteout.mark_opaque(parent)
        return 0
    elif name.startswith(whiteout.WH_PREFIX):
        target = name[len(whiteout.WH_PREFIX):]
        if target in ("", ".", ".."):
            raise InvalidImage(f"{what}: bad whiteout {rel!r}")
        _clear(parent, target, rel, keep_dir=False, what=what)
        whiteout.make_whiteout(target, parent)
        return 0
    elif m.ischr():  # 0/0, overlay's whiteout form (other devices were skipped above)
        _clear(parent, name, rel, keep_dir=False, what=what)
        whiteout.make_whiteout(name, parent)
        return 0

    if m.isdir():
        if not _clear(parent, name, rel, keep_dir=True, what=what):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = dirs.open(rel, create=False)
        _chown(name, m.uid, m.gid, fd=fd)
        os.fchmod(fd, m.mode & 0o7777)
        _set_xattrs(fd, m)
        dir_times.append((rel, int(m.mtime)))
        return 0

    _clear(parent, name, rel, keep_dir=False, what=what)
    if m.isreg():
        _write_file(tf, m, name, parent, rel, what)
        if dirs.written is not None and not m.sparse and m.size:
            ino = os.stat(name, dir_fd=parent, follow_symlinks=False).st_ino
            dirs.written.append((m.offset_data, m.size, rel, ino))
        return m.size
    if m.issym():
        os.symlink(m.linkname, name, dir_fd=parent)
    elif m.islnk():
        target = tarsafe.clean_name(m.linkname, what)
        t_parent_rel, _, t_name = target.rpartition("/")
        t_parent = dirs.open(t_parent_rel, create=False)
        try:
            os.link(t_name, name, src_dir_fd=t_parent, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidImage(f"{what}: hardlink {rel!r} to missing {target!r}") from None
        except PermissionError:
            raise InvalidImage(f"{what}: hardlink {rel!r} to {target!r} is not allowed") from None
        return 0
    elif m.isfifo():
        os.mkfifo(name, 0o600, dir_fd=parent)
        os.chmod(name, m.mode & 0o7777, dir_fd=parent)  # not subject to the umask
    _chown(name, m.uid, m.gid, dir_fd=parent)
    os.utime(name, (int(m.mtime), int(m.mtime)), dir_fd=parent, follow_symlinks=False)
    return 0


def _write_file(tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, parent: int, rel: str, what: str) -> None:
    """A regular member as the new file ``name`` of the directory ``parent``: its data (a GNU-sparse
    member's holes stay holes), owner, mode, extended attributes and time."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=parent)
    try:
        # a regular member's data: typeshed says IO[bytes] or None, tarfile gives a BufferedReader
        src = cast("io.BufferedReader", tf.extractfile(m))
        if m.sparse:  # GNU sparse: only its data blocks are read and written, the holes stay holes
            raw = src.raw  # positioned directly (forward only): a stream is not seekable
            # typeshed says bytes; tarfile makes it a list of (offset, length)
            for offset, length in cast("list[tuple[int, int]]", m.sparse):
                if length:
                    raw.seek(offset)  # type: ignore[call-arg]  # tarfile's _FileInFile: a position only
                    os.lseek(fd, offset, os.SEEK_SET)
                    _copy_data(raw, fd, length, rel, what)
            os.ftruncate(fd, m.size)
        else:
            _copy_data(src, fd, m.size, rel, what)
        _chown(name, m.uid, m.gid, fd=fd)
        os.fchmod(fd, m.mode & 0o7777)
        _set_xattrs(fd, m)
        os.utime(fd, (int(m.mtime), int(m.mtime)))
    finally:
        os.close(fd)
