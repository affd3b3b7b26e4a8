"""The image store's content-addressed blobs (``blobs/sha256/HEX``; an uncompressed layer's tar
perhaps kept as its recipe, :mod:`layers.tarsplit`) and where a blob or a layer tree is: the own
store, else the first additional store that has it (:mod:`layers.sharedstores`). Writing a blob
(with the partial downloads a pull goes on from), reading it, removing it, and the staging lock
that holds what no image names yet. :class:`layers.store.ImageStore` is built on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from rootless.base.paths import Paths

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    import hashlib
    from typing import Any, BinaryIO

    from layers.unpack import Readable

PARTIAL_DAYS = 7  # a partial download nobody went on with for this long is removed
STAGING_LOCK = "staging.lock"
SPLIT_SUFFIX = ".tarsplit"  # layers.tarsplit.SUFFIX: a layer tar kept as its recipe and tree


class Partial:
    """A download's file kept across pulls (see :meth:`ImageStore.open_partial`): its path, the
    open locked fd, the hash of and count of the bytes it holds."""

    __slots__ = ("path", "fd", "hasher", "have")
    path: str
    fd: int
    hasher: hashlib._Hash
    have: int

    def __init__(self, path: str, fd: int, hasher: hashlib._Hash, have: int):
        self.path, self.fd, self.hasher, self.have = path, fd, hasher, have

    def close(self) -> None:
        os.close(self.fd)


def sha256_bytes(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Blobs:
    """The blobs and the lookups of a store's files (its attributes are set by ``ImageStore``)."""

    paths: Paths
    shared: tuple[Paths, ...]  # read-only additional stores (layers.sharedstores): read in place, never written
    userns_call: Callable[..., Any]
    userns_worker: Callable[..., Any] | None  # handler -> a helper in the user namespace taking jobs

    # ---- staging -------------------------------------------------------------
    # Blobs and layers that no image names yet (a pull, load, import, commit or build on its way)
    # are held by a shared flock on ``staging.lock`` until the image is registered (or the
    # process ends): what no image names while nobody holds it is a leftover (layers.leftovers).
    _staging_fd = -1
    _staging_pid = 0

    def staging(self) -> bool:
        """Hold the staging lock (shared) for this process; whether it was held already."""
        if self._staging_pid == os.getpid():
            return True
        import fcntl
        fd = os.open(os.path.join(self.paths.root, STAGING_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._staging_fd, self._staging_pid = fd, os.getpid()
        return False

    def staged(self) -> None:
        """What this process staged is registered now: let go of the staging lock."""
        if self._staging_pid == os.getpid():
            os.close(self._staging_fd)
        self._staging_fd, self._staging_pid = -1, 0

    # ---- blobs ---------------------------------------------------------------
    def has_blob(self, digest: str) -> bool:
        """Whether the blob is here: as its bytes, or (an uncompressed layer tar) as the recipe
        that re-creates it from its unpacked tree (:mod:`layers.tarsplit`)."""
        path = self.blob_path(digest)
        return os.path.exists(path) or os.path.exists(path + SPLIT_SUFFIX)

    def blob_size(self, digest: str) -> int:
        path = self.blob_path(digest)
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            if not os.path.exists(path + SPLIT_SUFFIX):
                raise
        from layers import tarsplit
        return tarsplit.tar_size(path + SPLIT_SUFFIX)

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's bytes to read: its file, or the layer tar re-created byte for byte from its
        recipe and unpacked tree (by a helper in the user namespace, through a pipe; a tree
        changed since its unpacking fails the read that would end the tar)."""
        path = self.blob_path(digest)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            if not os.path.exists(path + SPLIT_SUFFIX) or self.userns_worker is None:
                raise
        import io

        from layers import tarsplit
        return io.BufferedReader(tarsplit.Rebuilt(self.userns_worker, path + SPLIT_SUFFIX,
                                                  self.layer_dir(digest), digest), 1 << 20)

    def put_blob(self, stream: Readable, expected: str | None = None, expected_size: int | None = None,
                 what: str = "blob", on_open: Callable[[str], None] | None = None,
                 partial: Partial | None = None) -> tuple[str, int, bool]:
        """Copy ``stream`` into the store; (digest, size, newly_added). Verifies ``expected``.

        ``on_open(path)`` is told the temporary file as soon as it exists, for a reader that
        follows it as it grows (:class:`layers.unpack.GrowingFile`); the file is removed if the
        copy fails and renamed into place (the same inode) when it is verified. With ``partial``
        (:meth:`open_partial`) the stream goes on after what that file holds, and the file stays
        for another try when the stream breaks (but not when the whole proves wrong).
        """
        import hashlib

        from rootless.base.errors import InvalidImage
        self.staging()
        if partial is None:
            os.makedirs(self.paths.tmp, exist_ok=True)
            tmp = os.path.join(self.paths.tmp, f"blob-{os.getpid()}-{time.monotonic_ns()}")
            out, h, size = open(tmp, "wb"), hashlib.sha256(), 0
        else:
            tmp, out, h, size = partial.path, open(os.dup(partial.fd), "ab"), partial.hasher, partial.have
        keep = False
        try:
            with out:
                if on_open:
                    on_open(tmp)
                while True:
                    try:
                        chunk = stream.read(1 << 20)
                    except BaseException:
                        keep = partial is not None  # what arrived is good so far: the next pull goes on from it
                        raise
                    if not chunk:
                        break
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected and digest != expected:
                raise InvalidImage(f"{what}: digest {digest} does not match {expected}",
                                   "the archive is corrupt; export or download it again")
            if expected_size is not None and size != expected_size:
                raise InvalidImage(f"{what}: size {size} does not match the descriptor's {expected_size}")
            final = self.paths.blob(digest)
            if os.path.exists(final + SPLIT_SUFFIX):  # kept as its tree and recipe: no second copy
                return digest, size, False
            added = not os.path.exists(final)
            os.rename(tmp, final)
            return digest, size, added
        finally:
            if not keep and os.path.exists(tmp):
                os.unlink(tmp)

    def open_partial(self, digest: str, size: int) -> Partial | None:
        """The file a download of ``digest`` writes to and that outlives a broken or killed pull
        (``tmp/partial-HEX``), locked for this process, with what it holds already hashed; None
        when another process is downloading that blob now. A file longer than ``size`` starts over."""
        import fcntl
        import hashlib
        self.staging()
        os.makedirs(self.paths.tmp, exist_ok=True)
        path = os.path.join(self.paths.tmp, f"partial-{digest.removeprefix('sha256:')}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            st = os.fstat(fd)
            try:
                here = os.stat(path)
            except FileNotFoundError:
                here = None
            if here is None or (here.st_ino, here.st_dev) != (st.st_ino, st.st_dev):
                os.close(fd)  # finished (renamed into place) or dropped by its holder before we locked it
                return self.open_partial(digest, size)
            if st.st_size > size:
                os.ftruncate(fd, 0)
            h, have = hashlib.sha256(), 0
            while chunk := os.pread(fd, 1 << 20, have):
                h.update(chunk)
                have += len(chunk)
        except BaseException:
            os.close(fd)
            raise
        return Partial(path, fd, h, have)

    def drop_partials(self, older_than: float = 0) -> int:
        """Remove the partial downloads untouched for ``older_than`` seconds that no pull is
        going on with now; the bytes freed."""
        import fcntl
        before = time.time() - older_than
        try:
            names = [n for n in os.listdir(self.paths.tmp) if n.startswith("partial-")]
        except FileNotFoundError:
            return 0
        freed = 0
        for name in names:
            path = os.path.join(self.paths.tmp, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if st.st_mtime <= before:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # not one being downloaded now
                    os.unlink(path)
                    freed += st.st_size
            except OSError:
                pass
            finally:
                os.close(fd)
        return freed

    def put_blob_bytes(self, data: bytes) -> tuple[str, bool]:
        import io
        digest, _, added = self.put_blob(io.BytesIO(data))
        return digest, added

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def blob_path(self, digest: str) -> str:
        """Where the blob (or its recipe, beside it) is: this store, else the first additional one with it."""
        return self._in_stores(self.paths.blob(digest), lambda p: p.blob(digest), SPLIT_SUFFIX)

    def _in_stores(self, own: str, path_of: Callable[[Paths], str], alt: str = "") -> str:
        if not self.shared:
            return own
        from layers import sharedstores
        return sharedstores.find(self.shared, path_of, own, alt)

    def remove_blobs(self, digests: Iterable[str]) -> None:
        for d in digests:
            for path in (self.paths.blob(d), self.paths.blob(d) + SPLIT_SUFFIX):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    # ---- lookups of layer trees -------------------------------------------------
    def layer_present(self, diff_id: str) -> bool:
        return os.path.isdir(self.paths.layer(diff_id))

    def layer_dir(self, diff_id: str) -> str:
        """The layer's tree: this store's, else an additional store's (used in place), else where it would go."""
        return self._in_stores(self.paths.layer(diff_id), lambda p: p.layer(diff_id))
