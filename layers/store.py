"""The content-addressed image store: blobs, unpacked layers, image records and tags.

Image records and tags live in one JSON file (``images.json``) written
atomically under the store lock. Blobs are named by digest (:mod:`layers.blobs`); layers are
unpacked once (as root of the user namespace, through the injected
``userns_call``) into ``layers/HEX`` and appear there by an atomic rename (:mod:`layers.layertrees`).
This module is the image index: records, tags, resolving a name, ``rmi``.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterable

from layers import reference
from layers.blobs import PARTIAL_DAYS, SPLIT_SUFFIX, STAGING_LOCK, Partial, sha256_bytes
from layers.layertrees import LayerRef, LayerTrees, remove_trees, unpack_one
from rootless.base import atomic, locking
from rootless.base.clock import now_iso
from rootless.base.errors import Conflict, ImageNotFound, RootlessError
from rootless.base.paths import Paths

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

# the store's names, as before the split into blobs, layertrees and this index
__all__ = ["INDEX_VERSION", "PARTIAL_DAYS", "SPLIT_SUFFIX", "STAGING_LOCK", "ImageStore", "LayerRef", "Partial",
           "remove_trees", "sha256_bytes", "unpack_one"]

INDEX_VERSION = 1


class ImageStore(LayerTrees):
    def __init__(self, paths: Paths, userns_call: Callable[..., Any], idmap_key: str,
                 userns_worker: Callable[..., Any] | None = None, search: tuple[str, ...] = (),
                 shared: tuple[Paths, ...] = ()):
        self.paths = paths
        self.shared = shared  # read-only additional stores (layers.sharedstores): read in place, never written
        self.search = search or (reference.DEFAULT_REGISTRY,)  # registries for short names, in order
        self.userns_call = userns_call
        self.userns_worker = userns_worker  # handler -> a helper in the user namespace taking jobs
        self.idmap_key = idmap_key

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

    # ---- sizes -----------------------------------------------------------------
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


def _familiar(tag: str) -> str:
    ref = reference.parse(tag)
    return f"{ref.familiar_repository}:{ref.tag}"
