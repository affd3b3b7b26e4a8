"""The content-addressed image store: blobs, unpacked layers, image records and tags.

Image records and tags live in one JSON file (``images.json``) written
atomically under the store lock. Blobs are named by digest; layers are
unpacked once (as root of the user namespace, through the injected
``userns_call``) into ``layers/HEX`` and appear there by an atomic rename.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable

from layers import reference
from rootless.base import atomic, locking
from rootless.base.clock import now_iso
from rootless.base.errors import Conflict, ImageNotFound, RootlessError
from rootless.base.paths import Paths

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    import hashlib
    import io
    from typing import Any, BinaryIO

    from layers.unpack import Readable


INDEX_VERSION = 1
PARTIAL_DAYS = 7  # a partial download nobody went on with for this long is removed


class LayerRef:
    """One layer of an image: its diff id, its blob, the blob's media type, its unpacked size."""

    __slots__ = ("diff_id", "blob", "media_type", "size")
    diff_id: str  # sha256: of the uncompressed tar, as the image config's rootfs names it
    blob: str  # sha256: of the blob as stored (compressed or not)
    media_type: str
    size: int  # bytes unpacked, 0 when not known yet

    def __init__(self, diff_id: str, blob: str, media_type: str, size: int = 0):
        self.diff_id, self.blob, self.media_type, self.size = diff_id, blob, media_type, size

    def to_json(self) -> dict:
        return {"diff_id": self.diff_id, "blob": self.blob, "media_type": self.media_type, "size": self.size}


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


STAGING_LOCK = "staging.lock"
SPLIT_SUFFIX = ".tarsplit"  # layers.tarsplit.SUFFIX: a layer tar kept as its recipe and tree


class ImageStore:
    def __init__(self, paths: Paths, userns_call: Callable[..., Any], idmap_key: str,
                 userns_worker: Callable[..., Any] | None = None, search: tuple[str, ...] = (),
                 shared: tuple[Paths, ...] = ()):
        self.paths = paths
        self.shared = shared  # read-only additional stores (layers.sharedstores): read in place, never written
        self.search = search or (reference.DEFAULT_REGISTRY,)  # registries for short names, in order
        self.userns_call = userns_call
        self.userns_worker = userns_worker  # handler -> a helper in the user namespace taking jobs
        self.idmap_key = idmap_key

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

    # ---- index ---------------------------------------------------------------
    def _read_index(self) -> dict:
        try:
            data = atomic.read_json(self.paths.images_file)
        except FileNotFoundError:
            return {"version": INDEX_VERSION, "images": {}}
        except (OSError, ValueError) as e:
            raise RootlessError(f"image index {self.paths.images_file} is unreadable: {e}",
                                "restore it from a backup or run `rootless system reset`") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
            raise RootlessError(f"image index {self.paths.images_file} is corrupt",
                                "run `rootless system reset` to start over")
        return data

    def images(self, with_shared: bool = False) -> list[dict]:
        """The image records, newest first; ``with_shared``: the additional stores' too (marked)."""
        recs = list(self._read_index()["images"].values())
        if with_shared and self.shared:
            from layers import sharedstores
            recs = sharedstores.merged(recs, self.shared)
        return sorted(recs, key=lambda r: r.get("loaded", ""), reverse=True)

    def resolve(self, name: str) -> dict:
        """An image record by reference (a tag wins, as in Docker; a short name is tried with each
        registry of the search list in turn), full id or unique id prefix; else an additional store's (marked)."""
        try:
            return self._resolve_among(self._read_index()["images"], name)
        except ImageNotFound:
            from layers import sharedstores
            found = sharedstores.resolve(self.shared, lambda images: self._resolve_among(images, name))
            if found is None:
                raise
            return found

    def _resolve_among(self, images: dict, name: str) -> dict:
        try:
            refs = reference.candidates(name, self.search)
        except RootlessError:
            refs = []
        for ref in refs:
            for rec in images.values():
                if (ref.digest and f"{ref.repository}@{ref.digest}" in rec.get("repo_digests", [])) or \
                        (ref.tag and str(ref) in rec.get("repo_tags", [])):
                    return rec
        first = refs[0] if refs else None
        hexpart = name.removeprefix("sha256:")
        if hexpart and len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart):
            found = [r for i, r in images.items() if i[7:].startswith(hexpart)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise RootlessError(f"image id prefix {name!r} is ambiguous", "give more characters of the id")
        if first is None:
            reference.parse(name)  # raises the reference's own error
        # Docker's words: clients tell a missing image from other 404s by them (docker-py's ImageNotFound);
        # a full id is a digest to Docker, any other name a reference (``busybox`` is ``busybox:latest``)
        full_id = len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)
        shown = f"sha256:{hexpart}" if full_id else (first.familiar if first else name)
        raise ImageNotFound(f"No such image: {shown}",
                            "pull it, load it with `rootless load -i FILE` or create it with `rootless import`")

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

    def sweep_tmp(self) -> None:
        """Remove what processes that are gone left half-written: temporary blobs, and layer
        directories being unpacked or removed (a killed pull, load or rmi); and the partial
        downloads nobody went on with for ``PARTIAL_DAYS``."""
        for name in _dead_owners(self.paths.tmp, "blob"):
            try:
                os.unlink(os.path.join(self.paths.tmp, name))
            except OSError:
                pass
        self.drop_partials(PARTIAL_DAYS * 86400)
        doomed = [os.path.join(self.paths.layers, n) for n in _dead_owners(self.paths.layers, ".tmp", ".del")]
        if doomed:
            self.userns_call(remove_trees, doomed)

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

    # ---- layers --------------------------------------------------------------
    def layer_present(self, diff_id: str) -> bool:
        return os.path.isdir(self.paths.layer(diff_id))

    def layer_dir(self, diff_id: str) -> str:
        """The layer's tree: this store's, else an additional store's (used in place), else where it would go."""
        return self._in_stores(self.paths.layer(diff_id), lambda p: p.layer(diff_id))

    def check_idmap(self) -> None:
        """Layers on disk carry the owners of one id map; refuse to mix two."""
        try:
            recorded = atomic.read_json(self.paths.idmap_file).get("key")
        except (FileNotFoundError, ValueError, AttributeError):
            atomic.write_json(self.paths.idmap_file, {"key": self.idmap_key})
            return
        if recorded != self.idmap_key:
            raise RootlessError(
                f"the store {self.paths.root} was unpacked with another id map ({recorded}); now {self.idmap_key}",
                "run `rootless system reset` (or use another --root) after changing /etc/subuid or userns.idmap")

    def unpack_job(self, lr: LayerRef, growing: str | None = None, size: int = 0, commit: bool = True) -> dict:
        """What a helper needs to unpack ``lr``: from its blob in the store, or from ``growing``, the
        temporary file of its download, followed until it holds ``size`` bytes. With ``commit``
        false the layer is left in the job's ``tmp`` directory for :meth:`commit_layer`."""
        self.staging()
        job = {"blob": self.blob_path(lr.blob), "diff_id": lr.diff_id, "dest": self.paths.layer(lr.diff_id),
               "tmp": os.path.join(self.paths.layers,
                                   f".tmp-{lr.diff_id[7:19]}-{os.getpid()}-{time.monotonic_ns()}"),
               "commit": commit}
        if growing:
            job.update(growing=growing, size=size)
        elif commit and lr.blob == lr.diff_id and job["blob"] == self.paths.blob(lr.blob):  # as tree and recipe
            job["split"] = self._split_paths()
        return job

    def _split_paths(self) -> dict:
        os.makedirs(self.paths.tmp, exist_ok=True)
        return {"tmp": os.path.join(self.paths.tmp, f"blob-split-{os.getpid()}-{time.monotonic_ns()}")}

    def split_job(self, lr: LayerRef) -> dict | None:
        """The job that drops the uncompressed tar blob of a layer already unpacked (a load or
        build of a layer the store has), keeping its recipe instead; None when nothing to do."""
        if lr.blob != lr.diff_id or not os.path.isfile(self.paths.blob(lr.blob)) \
                or not self.layer_present(lr.diff_id):
            return None
        self.staging()
        return {"blob": self.paths.blob(lr.blob), "diff_id": lr.diff_id, "dest": self.paths.layer(lr.diff_id),
                "present": True, "split": self._split_paths()}

    def adopt_step_layer(self, tar: str, diff_id: str, tree: str | None) -> bool:
        """A build step's layer made in the store's own temporary space: ``tar``, its uncompressed
        tar (whose digest is ``diff_id``, checked as it was written), becomes the blob, and
        ``tree``, its writable layer made into that tar's very unpacking
        (:func:`layers.commit.settle_upper`), becomes the unpacked layer, with one sync of the
        store's filesystem for both before either is published by its rename (a crash leaves
        at most leftovers, never a half layer). True when the tree was taken; with ``tree`` None
        or the layer already there, the caller unpacks (or has) it as usual."""
        from rootless.base import syscalls
        self.staging()
        syscalls.syncfs(self.paths.root)
        os.rename(tar, self.paths.blob(diff_id))
        if tree is None or self.layer_present(diff_id):
            return False
        try:
            os.rename(tree, self.paths.layer(diff_id))
        except OSError:
            if not os.path.isdir(self.paths.layer(diff_id)):  # not another build that made it meanwhile
                raise
            return False
        self.split_layers([LayerRef(diff_id, diff_id, "")])  # the tar kept as its recipe: one copy
        return True

    def split_layers(self, layers: list[LayerRef]) -> None:
        """Keep the uncompressed tar blobs of these unpacked layers as recipes (one user-namespace
        helper for all; :meth:`split_job`)."""
        jobs = [j for j in map(self.split_job, layers) if j is not None]
        if jobs:
            self.userns_call(_unpack_jobs, jobs)

    def commit_layer(self, job: dict) -> None:
        """Move a layer unpacked with ``commit=False`` into place (its blob is now verified)."""
        try:
            os.rename(job["tmp"], job["dest"])
        except OSError:
            if not os.path.isdir(job["dest"]):
                raise
            self.userns_call(remove_trees, [job["tmp"]])  # another pull unpacked it meanwhile

    def discard_unpacked(self, jobs: list[dict]) -> None:
        """Remove what uncommitted jobs left (a failed pull)."""
        doomed = [j["tmp"] for j in jobs if os.path.lexists(j["tmp"])]
        if doomed:
            self.userns_call(remove_trees, doomed)

    def unpack_layers(self, layers: list[LayerRef]) -> list[str]:
        """Unpack the missing ones (one user-namespace helper for all); the diff ids added."""
        missing = [lr for lr in layers if not os.path.isdir(self.layer_dir(lr.diff_id))]  # an additional store's too
        doubled = [lr for lr in layers if lr not in missing and lr.blob == lr.diff_id
                   and os.path.isfile(self.paths.blob(lr.blob))]  # a tar beside its tree: one copy is enough
        if not missing and not doubled:
            return []
        self.check_idmap()
        held = self.staging()
        try:
            jobs = [self.unpack_job(lr) for lr in missing]
            jobs += [j for j in map(self.split_job, doubled) if j is not None]
            results = self.userns_call(_unpack_jobs, jobs)
        finally:
            if not held:  # the layers of a registered image (run): nothing waits to be registered
                self.staged()
        for lr, res in zip(missing, results, strict=False):
            lr.size = res["size"]
        return [lr.diff_id for lr in missing]

    def stored_size(self, recs: Iterable[dict]) -> int:
        """The bytes the store keeps for these images, each thing once however many share it:
        every layer's tree (its files' bytes, as unpacked) and every blob as it is kept on disk
        (configs, compressed layers as pulled, an uncompressed layer's recipe; never the tar
        that recipe re-creates)."""
        trees: dict[str, int] = {}
        blobs: set[str] = set()
        for rec in recs:
            blobs.add(rec["id"])
            for lr in rec["layers"]:
                trees[lr["diff_id"]] = lr.get("size", 0)
                blobs.add(lr["blob"])
        total = sum(trees.values())
        for digest in blobs:
            for path in (self.paths.blob(digest), self.paths.blob(digest) + SPLIT_SUFFIX):
                try:
                    total += os.stat(path).st_size
                except OSError:
                    pass
        return total

    def known_layer_size(self, diff_id: str) -> int:
        """The unpacked size another image recorded for this layer (0 if none did)."""
        for rec in self.images():
            for lr in rec["layers"]:
                if lr["diff_id"] == diff_id and lr.get("size"):
                    return lr["size"]
        return 0

    def remove_layers(self, diff_ids: Iterable[str]) -> None:
        doomed = []
        for d in diff_ids:
            src = self.paths.layer(d)
            if os.path.isdir(src):
                with contextlib.suppress(FileNotFoundError):  # a recipe is nothing without its tree
                    os.unlink(self.paths.blob(d) + SPLIT_SUFFIX)
                dst = os.path.join(self.paths.layers, f".del-{d[7:19]}-{os.getpid()}-{time.monotonic_ns()}")
                os.rename(src, dst)
                doomed.append(dst)
        if doomed:
            self.userns_call(remove_trees, doomed)

    # ---- images --------------------------------------------------------------
    def register(self, config_bytes: bytes, layers: list[LayerRef], tags: list[str],
                 manifest_digest: str | None = None, repo_digests: Iterable[str] = (),
                 platform: str | None = None, parent: str | None = None) -> tuple[dict, list[str]]:
        """Record an image (its blobs and layers are already in place); (record, tags moved).
        ``platform``: the os/arch[/variant] of the index entry it was pulled as; ``parent``: the
        local image it was made from (a commit's; Docker's ``Parent``)."""
        image_id = sha256_bytes(config_bytes)
        config = json.loads(config_bytes)
        with locking.locked(self.paths.store_lock):
            index = self._read_index()
            images = index["images"]
            rec = images.get(image_id) or {
                "id": image_id,
                "layers": [lr.to_json() for lr in layers],
                "repo_tags": [],
                "repo_digests": [],
                "created": config.get("created", ""),
                "size": sum(lr.size for lr in layers),
                "manifest_digest": manifest_digest,
            }
            rec["loaded"] = now_iso()
            if platform:
                rec["platform"] = platform
            if parent and not rec.get("parent") and parent != image_id:
                rec["parent"] = parent
            for tag in tags:
                for other in images.values():
                    if other is not rec and tag in other.get("repo_tags", []):
                        other["repo_tags"].remove(tag)
                if tag not in rec["repo_tags"]:
                    rec["repo_tags"].append(tag)
            for rd in repo_digests:
                if rd not in rec.setdefault("repo_digests", []):
                    rec["repo_digests"].append(rd)
            images[image_id] = rec
            atomic.write_json(self.paths.images_file, index)
        self.staged()
        return rec, tags

    def platform_of(self, rec: dict) -> str:
        """os/arch[/variant]: as pulled from an index, else as the image's config says."""
        if rec.get("platform"):
            return rec["platform"]
        try:
            config = json.loads(self.read_blob(rec["id"]))
        except (OSError, ValueError):
            return ""
        return "/".join(str(config.get(k) or "") for k in ("os", "architecture", "variant")).rstrip("/")

    def add_tag(self, image_id: str, tag: str) -> None:
        """Point ``tag`` at the image (taking it from any other image)."""
        with locking.locked(self.paths.store_lock):
            index = self._read_index()
            images = index["images"]
            if image_id not in images:
                from layers.sharedstores import refuse
                refuse(self.resolve(image_id), image_id[7:19])
            for other in images.values():
                if tag in other.get("repo_tags", []):
                    other["repo_tags"].remove(tag)
            if tag not in images[image_id]["repo_tags"]:
                images[image_id]["repo_tags"].append(tag)
            atomic.write_json(self.paths.images_file, index)

    def config(self, rec: dict) -> dict:
        try:
            return json.loads(self.read_blob(rec["id"]))
        except (OSError, ValueError) as e:
            raise RootlessError(f"image {rec['id'][7:19]}: config blob unreadable ({e})",
                                "remove the image with `rootless rmi -f` and load it again") from None

    def remove(self, name: str, force: bool, in_use: Callable[[str], list[str]],
               layers_in_use: Callable[[], set[str]]) -> list[str]:
        """``rmi``: untag or delete; lines like Docker's (Untagged: / Deleted:)."""
        out: list[str] = []
        with locking.locked(self.paths.store_lock):
            index = self._read_index()
            images = index["images"]
            rec = self._resolve_in(images, name)
            by_tag = name in rec["repo_tags"] or _normalised(name) in rec["repo_tags"]
            if by_tag and len(rec["repo_tags"]) > 1:
                tag = name if name in rec["repo_tags"] else _normalised(name)
                rec["repo_tags"].remove(tag)
                atomic.write_json(self.paths.images_file, index)
                return [f"Untagged: {_familiar(tag)}"]
            users = in_use(rec["id"])
            if users and not force:
                raise Conflict(f"unable to remove image {name}: it is used by container {users[0][:12]}",
                               "remove the container first (`rootless rm`) or use `rootless rmi -f`")
            if not by_tag and len(rec["repo_tags"]) > 1 and not force:
                raise Conflict(f"unable to delete {rec['id'][7:19]} (must be forced): "
                               "image is referenced in multiple repositories")
            out += [f"Untagged: {_familiar(t)}" for t in rec["repo_tags"]]
            del images[rec["id"]]
            keep_layers = layers_in_use() | {lr["diff_id"] for r in images.values() for lr in r["layers"]}
            keep_blobs = ({r["id"] for r in images.values()}
                          | {lr["blob"] for r in images.values() for lr in r["layers"]})
            doomed_layers = [lr["diff_id"] for lr in rec["layers"] if lr["diff_id"] not in keep_layers]
            doomed_blobs = [b for b in [rec["id"]] + [lr["blob"] for lr in rec["layers"]] if b not in keep_blobs]
            try:
                atomic.write_json(self.paths.images_file, index)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                # A full disk: make room first with the unpacked layers, which the index may
                # lack (an image's missing layer is unpacked again from its blob, kept until the
                # index no longer names it), then write the index.
                self.remove_layers(doomed_layers)
                doomed_layers = []
                atomic.write_json(self.paths.images_file, index)
            out.append(f"Deleted: {rec['id']}")
            self.remove_blobs(doomed_blobs)
            self.remove_layers(doomed_layers)
        return out

    def _resolve_in(self, images: dict, name: str) -> dict:
        # resolve() re-reads the index; under the lock we must use the copy we will write.
        rec = self.resolve(name)
        if rec["id"] not in images:
            from layers.sharedstores import refuse
            refuse(rec, name)
        return images[rec["id"]]


def _normalised(name: str) -> str:
    try:
        return str(reference.parse(name))
    except RootlessError:
        return name


def _dead_owners(directory: str, *prefixes: str) -> list[str]:
    """Names ``PREFIX-...-PID-NS`` in ``directory`` whose process PID is gone."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    dead = []
    for name in names:
        parts = name.split("-")
        if parts[0] not in prefixes or len(parts) < 3 or not parts[-2].isdigit():
            continue
        try:
            os.kill(int(parts[-2]), 0)
        except ProcessLookupError:
            dead.append(name)
        except PermissionError:
            pass  # a live process of someone else
    return dead


def _familiar(tag: str) -> str:
    ref = reference.parse(tag)
    return f"{ref.familiar_repository}:{ref.tag}"


# ---- run as root of the user namespace --------------------------------------------
def unpack_one(job: dict) -> dict:
    return _unpack_jobs([job])[0]


def _unpack_jobs(jobs: list[dict]) -> list[dict]:
    from layers.unpack import unpack_layer
    results = []
    done: dict[str, dict] = {}  # dest -> its result: an image may list one layer twice
    for job in jobs:
        if job["dest"] in done:
            results.append(done[job["dest"]])
            continue
        if job.get("present"):
            _split(job, job["dest"])
            results.append({"diff_id": job["diff_id"], "size": 0})
            continue
        os.mkdir(job["tmp"], 0o755)
        written: list | None = [] if job.get("split") else None
        try:
            res = unpack_layer(_source(job), job["tmp"], job["diff_id"], what=f"layer {job['diff_id'][7:19]}",
                               written=written)
            if not job.get("commit", True):
                results.append(res)
                continue
            if job.get("split"):
                _split(job, job["tmp"], drop=False, written=written)
            try:
                os.rename(job["tmp"], job["dest"])
            except OSError:
                if not os.path.isdir(job["dest"]):  # lost a race with another unpack: fine
                    raise
                remove_trees([job["tmp"]])
            if job.get("split"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(job["blob"])
        except BaseException:
            remove_trees([job["tmp"]])
            raise
        results.append(res)
        done[job["dest"]] = res
    return results


def _split(job: dict, tree: str, drop: bool = True, written: list | None = None) -> None:
    """Keep the job's uncompressed tar blob as its recipe (made from ``tree``, unless one is
    there; ``written``: what unpacking it into ``tree`` wrote), then (``drop``) remove the tar."""
    from layers import tarsplit
    recipe = job["blob"] + SPLIT_SUFFIX
    if not os.path.exists(recipe):
        tarsplit.split(job["blob"], tree, recipe, job["split"]["tmp"], what=f"layer {job['diff_id'][7:19]}",
                       written=written)
    if drop:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(job["blob"])


def _source(job: dict) -> str | io.BufferedReader:
    """The job's blob: its download's growing file, or the stored blob (also when that download
    has just finished and renamed the file)."""
    if job.get("growing"):
        import io

        from layers.unpack import GrowingFile
        try:
            return io.BufferedReader(GrowingFile(job["growing"], job["size"], job["blob"]), 1 << 20)
        except FileNotFoundError:
            pass
    return job["blob"]


def remove_trees(paths: list[str]) -> None:
    """rm -rf as root of the user namespace (files of subordinate uids, read-only dirs)."""
    # make read-only directories writable and retry
    def onerror(func: Callable[[str], object], path: str, exc_info: object) -> None:
        parent = os.path.dirname(path)
        try:
            os.chmod(parent, 0o700)
            func(path)
        except OSError:
            pass

    for p in paths:
        if os.path.lexists(p):
            try:
                shutil.rmtree(p, onerror=onerror)
            except RecursionError:  # a tree deeper than Python's recursion (a container can make one)
                _remove_deep_tree(p)


def _remove_deep_tree(path: str) -> None:
    """rm -rf of a tree of any depth: down one directory at a time by descriptor (never through
    a link), each emptied directory removed from its parent reached by ``..``."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd, names = os.open(path, flags), []
    while True:
        os.fchmod(fd, 0o700)  # a read-only directory of the tree
        sub = None
        with os.scandir(fd) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    sub = entry.name
                    break
                os.unlink(entry.name, dir_fd=fd)
        if sub is not None:
            child = os.open(sub, flags, dir_fd=fd)
            os.close(fd)
            fd = child
            names.append(sub)
            continue
        if not names:
            os.close(fd)
            os.rmdir(path)
            return
        parent = os.open("..", flags, dir_fd=fd)
        os.close(fd)
        fd = parent
        os.rmdir(names.pop(), dir_fd=fd)
