"""One copy of each layer: an uncompressed layer tar kept as its unpacked tree plus a recipe.

The recipe (``blobs/sha256/HEX.tarsplit``, next to where the tar itself would be) says, in order,
every byte of the tar: the bytes that are not a file's contents in the tree (headers, pax and
long-name records, padding, the end blocks, whatever follows them; a member whose contents the tree
does not hold byte for byte: a duplicate replaced later, a whiteout's data, a sparse member) are
kept in the recipe itself, and each regular member whose contents are exactly the file at its path
in the tree is named by that path and size. So the tar is re-created byte for byte from the recipe
and the tree, and its digest (the layer's diff id, which was its blob's digest) is unchanged.

The recipe file is ``MAGIC``, the tar's size (8 bytes, big-endian), then a gzip stream of records:
``D`` + a 4-byte length + the bytes; ``F`` + a 2-byte length + the path (relative to the tree) +
the 8-byte size; ``E`` at the end.

:func:`split` makes a recipe from a tar and its unpacked tree, :func:`rebuild` writes the tar again
(the tree's files are checked first by type and size, and the whole by its digest: a tree changed
after its unpacking is an error, never a different tar). Both run as root of the user namespace
(the tree holds files of subordinate uids). Nothing here is imported at start-up.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import zlib

from layers import tarsafe
from rootless.base.errors import InvalidImage, RootlessError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

MAGIC = b"RLSPLIT1"
SUFFIX = ".tarsplit"
_CHUNK = 1 << 20
_MAX_PATH = 0xFFFF  # an F record's path length is 2 bytes: a file deeper than that stays in the recipe
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class LayerChanged(RootlessError):
    """A layer's unpacked files are not what they were when it was unpacked."""

    exit_code = 125


def recipe_path(blob_path: str) -> str:
    return blob_path + SUFFIX


def tar_size(recipe: str) -> int:
    """The size of the tar a recipe re-creates (from its head: nothing else is read)."""
    with open(recipe, "rb") as f:
        head = f.read(16)
    if len(head) != 16 or head[:8] != MAGIC:
        raise RootlessError(f"{recipe}: not a layer recipe", "remove the image and pull or load it again")
    return int.from_bytes(head[8:], "big")


class _Tree:
    """Files of an unpacked layer by relative path, reached without following any symlink."""

    def __init__(self, root: str):
        from layers.unpack import Dirs
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.dirs = Dirs(self.root_fd, "layer")

    def open_regular(self, rel: str, size: int) -> int | None:
        """An fd of the regular file ``rel`` holding ``size`` bytes; None if it is not that."""
        parent, _, name = rel.rpartition("/")
        try:
            dfd = self.dirs.open(parent, create=False)
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return None
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except InvalidImage:  # a directory on the way is missing, or not one
            return None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.EPERM):
                return None
            raise
        if os.fstat(fd).st_size != size:
            os.close(fd)
            return None
        return fd

    def close(self) -> None:
        self.dirs.close()
        os.close(self.root_fd)


def _same(tar_fd: int, offset: int, fd: int, size: int) -> bool:
    pos = 0
    while pos < size:
        n = min(_CHUNK, size - pos)
        a = os.pread(tar_fd, n, offset + pos)
        if len(a) != n or os.pread(fd, n, pos) != a:
            return False
        pos += n
    return os.pread(fd, 1, size) == b""


def _claims(tar: str, tree: _Tree, what: str) -> list[tuple[int, int, bytes]]:
    """(offset, size, path) of each regular member whose contents the tree holds at its path."""
    claims: list[tuple[int, int, bytes]] = []
    with open(tar, "rb") as f:
        try:
            tf = tarfile.open(fileobj=f, mode="r:")
        except tarfile.TarError:
            return claims  # not a tar tarfile can read: all of it stays in the recipe
        while True:
            try:
                m = tf.next()
            except tarfile.TarError:
                break  # the rest stays in the recipe
            if m is None:
                break
            tf.members.clear()  # type: ignore[attr-defined]  # one member at a time: memory stays flat
            if not m.isreg() or m.sparse is not None or m.size == 0:
                continue
            try:
                rel = tarsafe.check_member(m, what)
            except InvalidImage:
                continue
            fd = tree.open_regular(rel, m.size) if rel else None
            if fd is None:
                continue
            try:
                if _same(f.fileno(), m.offset_data, fd, m.size):
                    claims.append((m.offset_data, m.size, os.fsencode(rel)))
            finally:
                os.close(fd)
    return claims


def _written_claims(tar: str, tree: _Tree, written: list) -> list[tuple[int, int, bytes]]:
    """The claims of an unpacking that said what it wrote (:func:`layers.unpack.unpack_layer`'s
    ``written``): a file still the inode it made, of its size, holds the bytes it was made of (a
    layer's unpacking never writes into a file it made; a later member of the same name makes a
    new inode). Each claim's first and last bytes are compared with the tar's all the same."""
    claims: list[tuple[int, int, bytes]] = []
    end = 0
    with open(tar, "rb") as f:
        for offset, size, rel, ino in written:
            if offset < end:
                continue
            fd = tree.open_regular(rel, size)
            if fd is None:
                continue
            try:
                n = min(size, 4096)
                if os.fstat(fd).st_ino != ino or \
                        os.pread(fd, n, 0) != os.pread(f.fileno(), n, offset) or \
                        os.pread(fd, n, size - n) != os.pread(f.fileno(), n, offset + size - n):
                    continue
            finally:
                os.close(fd)
            claims.append((offset, size, os.fsencode(rel)))
            end = offset + size
    return claims


def split(tar: str, tree: str, recipe: str, tmp: str, what: str = "layer", written: list | None = None) -> int:
    """Write the recipe of ``tar`` (unpacked into ``tree``) as ``recipe``, through the temporary
    file ``tmp`` (synced, then renamed); the bytes of the tar the tree holds. ``written``: what
    the unpacking that made ``tree`` wrote (else each member is compared with the tree's file)."""
    t = _Tree(tree)
    try:
        claims = _claims(tar, t, what) if written is None else _written_claims(tar, t, written)
    finally:
        t.close()
    claims = [c for c in claims if len(c[2]) <= _MAX_PATH]
    total = os.path.getsize(tar)
    fd = os.open(tar, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with open(tmp, "wb") as out:
            w = RecipeWriter(out)
            pos = 0
            for offset, size, rel in claims + [(total, 0, b"")]:
                while pos < offset:
                    data = os.pread(fd, min(_CHUNK, offset - pos), pos)
                    if not data:
                        raise RootlessError(f"{what}: the tar shrank while it was split")
                    w.data(data)
                    pos += len(data)
                if size:
                    w.file(rel, size)
                    pos += size
            w.finish()
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, recipe)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return w.referenced


class RecipeWriter:
    """Writes a recipe to ``out`` (a seekable binary file at its start): the tar's bytes as
    :meth:`data`, and each run of bytes that a tree's file holds as :meth:`file`, in the tar's
    order; :meth:`finish` ends it and writes the tar's size into the head."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.start = out.tell()
        out.write(MAGIC + bytes(8))
        self.z = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0)
        self.pending: list[bytes] = []
        self.held = 0
        self.total = 0
        self.referenced = 0

    def data(self, data: bytes | memoryview) -> None:
        self.pending.append(bytes(data))
        self.held += len(data)
        self.total += len(data)
        if self.held >= _CHUNK:
            self._flush()

    def file(self, rel: bytes, size: int) -> None:
        self._flush()
        self.z.write(b"F" + struct.pack(">H", len(rel)) + rel + struct.pack(">Q", size))
        self.total += size
        self.referenced += size

    def _flush(self) -> None:
        if self.held:
            self.z.write(b"D" + struct.pack(">I", self.held) + b"".join(self.pending))
            self.pending.clear()
            self.held = 0

    def finish(self) -> None:
        self._flush()
        self.z.write(b"E")
        self.z.close()  # ends the gzip member; ``out`` stays open
        end = self.out.tell()
        self.out.seek(self.start + len(MAGIC))
        self.out.write(self.total.to_bytes(8, "big"))
        self.out.seek(end)


class RecipeStream:
    """A write-only stream for a tar writer that keeps only the recipe: the tar's bytes go to a
    :class:`RecipeWriter`, except the runs :meth:`claim` names beforehand as a file of the tree
    (a run is claimed before any of its bytes is written: ``TarFile.addfile`` has written the
    header and not yet read the member's contents when its reader first reads)."""

    def __init__(self, writer: RecipeWriter):
        self.w = writer
        self.pos = 0
        self.claims: list[tuple[int, int, bytes]] = []  # (offset, size, path), in order
        self.next = 0  # index of the first claim not yet passed

    def claim(self, offset: int, size: int, rel: str) -> None:
        if offset < self.pos or (self.claims and offset < self.claims[-1][0] + self.claims[-1][1]):
            raise RootlessError(f"layer recipe: /{rel} claimed out of order")
        path = os.fsencode(rel)
        if len(path) <= _MAX_PATH:  # else its bytes stay in the recipe
            self.claims.append((offset, size, path))

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self.next < len(self.claims) and self.claims[self.next][0] <= self.pos:
                offset, size, rel = self.claims[self.next]
                if self.pos == offset:
                    self.w.file(rel, size)
                n = min(len(view), offset + size - self.pos)
                if self.pos + n == offset + size:
                    self.next += 1
            else:
                n = len(view)
                if self.next < len(self.claims):
                    n = min(n, self.claims[self.next][0] - self.pos)
                self.w.data(view[:n])
            view = view[n:]
            self.pos += n
        return len(data)

    def flush(self) -> None:
        pass


def _records(recipe: str):
    """The recipe's records: ("D", bytes, 0) or ("F", path, size)."""
    try:
        yield from _read_records(recipe)
    except (EOFError, struct.error, zlib.error, gzip.BadGzipFile):
        raise RootlessError(f"{recipe}: the layer recipe is damaged",
                            "remove the image and pull or load it again") from None


def _read_records(recipe: str):
    with open(recipe, "rb") as f:
        if f.read(16)[:8] != MAGIC:
            raise RootlessError(f"{recipe}: not a layer recipe", "remove the image and pull or load it again")
        with gzip.GzipFile(fileobj=f, mode="rb") as z:
            while True:
                kind = z.read(1)
                if kind == b"D":
                    (n,) = struct.unpack(">I", z.read(4))
                    yield "D", _exactly(z, n), 0
                elif kind == b"F":
                    (n,) = struct.unpack(">H", z.read(2))
                    path = os.fsdecode(_exactly(z, n))
                    (size,) = struct.unpack(">Q", z.read(8))
                    yield "F", path, size
                elif kind == b"E":
                    return
                else:
                    raise RootlessError(f"{recipe}: the layer recipe is damaged",
                                        "remove the image and pull or load it again")


def _exactly(z: gzip.GzipFile, n: int) -> bytes:
    data = z.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _changed(what: str, path: str, how: str) -> LayerChanged:
    return LayerChanged(f"{what}: /{path} {how} since the layer was unpacked, so its tar cannot be "
                        "re-created byte for byte",
                        "layers are read-only: remove the image (`rootless rmi -f`) and pull or load it again")


def rebuild(recipe: str, tree: str, diff_id: str, out_fd: int, what: str = "layer") -> int:
    """Write the tar ``recipe`` and ``tree`` make to ``out_fd``; its size. Every file is checked
    (type and size) before anything is written; a digest other than ``diff_id`` at the end raises
    (the reader must not take what it got as the layer)."""
    t = _Tree(tree)
    try:
        for kind, path, size in _records(recipe):
            if kind == "F":
                fd = t.open_regular(path, size)
                if fd is None:
                    raise _changed(what, path, "is gone or changed size")
                os.close(fd)
        h, total = hashlib.sha256(), 0
        for kind, data, size in _records(recipe):
            if kind == "D":
                chunks = [data]
            else:
                fd = t.open_regular(data, size)
                if fd is None:
                    raise _changed(what, data, "is gone or changed size")
                chunks = _file_chunks(fd, size, what, data)
            for chunk in chunks:
                h.update(chunk)
                total += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out_fd, view):]
    finally:
        t.close()
    if "sha256:" + h.hexdigest() != diff_id:
        raise LayerChanged(f"{what}: its files were changed since the layer was unpacked (the tar "
                           f"re-created from them has digest sha256:{h.hexdigest()}, not {diff_id})",
                           "layers are read-only: remove the image (`rootless rmi -f`) and pull or load it again")
    return total


def _file_chunks(fd: int, size: int, what: str, path: str):
    try:
        pos = 0
        while pos < size:
            chunk = os.read(fd, min(_CHUNK, size - pos))
            if not chunk:
                raise _changed(what, path, "shrank")
            pos += len(chunk)
            yield chunk
    finally:
        os.close(fd)


class Rebuilt(io.RawIOBase):
    """The tar a recipe re-creates, to read: a helper in the user namespace (``worker_for``:
    the store's ``userns_worker``) writes it into a pipe. The read that reaches its last byte
    waits for the helper's verdict first, so a reader never takes a tar whose digest is wrong."""

    def __init__(self, worker_for: Callable[..., Any], recipe: str, tree: str, diff_id: str):
        self.size = tar_size(recipe)
        self.pos = 0
        self.what = f"layer {diff_id[7:19]}"
        r, w = os.pipe2(os.O_CLOEXEC)

        def handler(job: dict) -> int:
            os.close(r)
            try:
                return rebuild(job["recipe"], job["tree"], job["diff_id"], w, self.what)
            finally:
                os.close(w)

        try:
            self.worker = worker_for(handler, f"re-creating {self.what}")
        except BaseException:
            os.close(r)
            os.close(w)
            raise
        os.close(w)
        self.fd = r
        self.worker.submit({"recipe": recipe, "tree": tree, "diff_id": diff_id})
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        want = min(len(buf), self.size - self.pos)
        if want <= 0:
            self._finish()
            return 0
        n = os.readv(self.fd, [memoryview(buf)[:want]])
        self.pos += n
        if n == 0 or self.pos == self.size:
            self._finish()
            if n == 0:
                raise RootlessError(f"{self.what}: its tar ended after {self.pos} of {self.size} bytes")
        return n

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if os.read(self.fd, 1):
            raise LayerChanged(f"{self.what}: its tar is longer than its recipe says",
                               "remove the image (`rootless rmi -f`) and pull or load it again")
        self.worker.result()  # the helper's error (a changed tree), if any

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
            self.worker.close()
        super().close()
