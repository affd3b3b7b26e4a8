"""The image store's unpacked layers (``layers/DIFFHEX``): unpacked once, as root of the user
namespace through the injected ``userns_call`` (or a ``userns_worker``'s helper), into a
temporary directory that appears by an atomic rename; an uncompressed tar blob beside its tree
kept as its recipe; the id map they were unpacked with; their removal, and the sweep of what
killed processes left half-written. :class:`layers.store.ImageStore` is built on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable

from layers.blobs import PARTIAL_DAYS, SPLIT_SUFFIX, Blobs
from rootless.base import atomic
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    import io


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


class LayerTrees(Blobs):
    """Unpacking and removing layer trees (its attributes are set by ``ImageStore``)."""

    idmap_key: str

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

    # ---- unpacking and removing layer trees --------------------------------------------------------------
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
        if tree is None or self.layer_present(diff_id) or not self._publish_tree(tree, diff_id):
            return False
        self.split_layers([LayerRef(diff_id, diff_id, "")])  # the tar kept as its recipe: one copy
        return True

    def adopt_step_recipe(self, recipe: str, diff_id: str, tree: str) -> bool:
        """As :meth:`adopt_step_layer` for a layer whose tar was never written: ``recipe``, its
        recipe made in the store's temporary space, and ``tree``, the settled writable layer it
        names the files of, become the layer; one sync, then the recipe's rename and the tree's
        (a recipe alone is nothing: the layer is the tree). False when the store already had
        the layer (``recipe`` is left to the caller)."""
        from rootless.base import syscalls
        self.staging()
        if self.layer_present(diff_id):
            return False
        syscalls.syncfs(self.paths.root)
        os.rename(recipe, self.paths.blob(diff_id) + SPLIT_SUFFIX)
        self._publish_tree(tree, diff_id)
        return True

    def _publish_tree(self, tree: str, diff_id: str) -> bool:
        """``tree`` renamed into place as the layer; False when another build made it meanwhile."""
        try:
            os.rename(tree, self.paths.layer(diff_id))
        except OSError:
            if not os.path.isdir(self.paths.layer(diff_id)):
                raise
            return False
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

    def known_layer_size(self, diff_id: str) -> int:
        """The unpacked size an image recorded for this layer (the image index's, ``store.ImageStore``)."""
        return 0

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
            lr.size = res["size"] or self.known_layer_size(lr.diff_id)  # 0: another process unpacked it
        return [lr.diff_id for lr in missing]

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
            try:
                res = unpack_layer(_source(job), job["tmp"], job["diff_id"], what=f"layer {job['diff_id'][7:19]}",
                                   written=written)
            except (FileNotFoundError, RootlessError):  # its tar gone: unpack_layer's "unpacking failed"
                if not _made_by_another(job):
                    raise
                remove_trees([job["tmp"]])
                res = {"diff_id": job["diff_id"], "size": 0}  # the caller takes the size another image recorded
                results.append(res)
                done[job["dest"]] = res
                continue
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
        try:
            tarsplit.split(job["blob"], tree, recipe, job["split"]["tmp"], what=f"layer {job['diff_id'][7:19]}",
                           written=written)
        except FileNotFoundError:
            if not _made_by_another(job):
                raise
    if drop:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(job["blob"])


def _made_by_another(job: dict) -> bool:
    """An uncompressed blob gone from under this job (a run's unpacking, or a pull's that followed
    the download into the store): another process (a concurrent first run or pull of the same
    image) unpacked the layer, kept its recipe and dropped the tar, in that order."""
    return not os.path.exists(job["blob"]) and os.path.isdir(job["dest"]) \
        and os.path.exists(job["blob"] + SPLIT_SUFFIX)


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
