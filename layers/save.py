"""``save``: images from the store into a docker-archive or an OCI archive (a tar).

Blobs go in as they are stored, an uncompressed layer kept as its tree re-created byte for
byte (:mod:`layers.tarsplit`) (their digests unchanged, so ``save`` then ``load`` gives the
same image ids and layer digests). The docker-archive is laid out as Docker 25 writes it
(``manifest.json`` naming ``blobs/sha256/...``); the OCI archive is an image layout
(``oci-layout``, ``index.json`` with the names as annotations, ``blobs/sha256/...``). The
file appears by an atomic rename once complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time

from layers import manifest, reference
from layers.store import ImageStore
from rootless.base.errors import UsageError

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from typing import BinaryIO

FORMATS = ("docker-archive", "oci-archive")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, store: ImageStore, digest: str, added: set, mtime: float) -> int:
    size = store.blob_size(digest)
    name = f"blobs/sha256/{digest[7:]}"
    if name not in added:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, 0o644
        with store.open_blob(digest) as f:  # a layer kept as its tree: its tar re-created
            tar.addfile(info, f)
        added.add(name)
    return size


def _dirs(tar: tarfile.TarFile, mtime: float) -> None:
    for d in ("blobs", "blobs/sha256"):
        info = tarfile.TarInfo(d)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(info)


def save(store: ImageStore, names: list[str], out_path: str | None, fmt: str = "docker-archive",
         out_fd: int | None = None) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", "use docker-archive or oci-archive")
    images = [(rec, _tags_for(rec, name)) for name in names for rec in [store.resolve(name)]]
    if out_path:
        directory = os.path.dirname(os.path.abspath(out_path))
        tmp = os.path.join(directory, f".{os.path.basename(out_path)}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                _write(store, images, fmt, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        with os.fdopen(out_fd if out_fd is not None else os.dup(1), "wb") as f:
            _write(store, images, fmt, f)


def _write(store: ImageStore, images: list, fmt: str, f: BinaryIO) -> None:
    mtime = time.time()
    added: set = set()
    with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _dirs(tar, mtime)
        entries = []
        for rec, tags in images:
            config_size = _add_blob(tar, store, rec["id"], added, mtime)
            layers = [(lr["blob"], _add_blob(tar, store, lr["blob"], added, mtime), lr.get("media_type", ""))
                      for lr in rec["layers"]]
            entries.append((rec, tags, config_size, layers))
        if fmt == "docker-archive":
            doc = [{"Config": f"blobs/sha256/{rec['id'][7:]}", "RepoTags": [_familiar(t) for t in tags],
                    "Layers": [f"blobs/sha256/{d[7:]}" for d, _s, _m in layers]}
                   for rec, tags, _cs, layers in entries]
            _add_bytes(tar, "manifest.json", json.dumps(doc, separators=(",", ":")).encode(), mtime)
            return
        manifests: list[dict] = []
        index = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": manifests}
        for rec, tags, config_size, layers in entries:
            body = manifest.oci_manifest(rec["id"], config_size, layers)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            name = f"blobs/sha256/{digest[7:]}"
            if name not in added:
                _add_bytes(tar, name, body, mtime)
                added.add(name)
            for tag in tags or [None]:
                d = {"mediaType": manifest.OCI_MANIFEST, "digest": digest, "size": len(body)}
                if tag:
                    d["annotations"] = {"io.containerd.image.name": tag,
                                        "org.opencontainers.image.ref.name": reference.parse(tag).tag}
                manifests.append(d)
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', mtime)
        _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode(), mtime)


def _tags_for(rec: dict, name: str) -> list[str]:
    """The tag the user named (``docker save busybox`` keeps ``busybox:latest``; an id, none)."""
    try:
        ref = reference.parse(name)
    except UsageError:
        return []
    return [str(ref)] if str(ref) in rec.get("repo_tags", []) else []


def _familiar(tag: str) -> str:
    ref = reference.parse(tag)
    return f"{ref.familiar_repository}:{ref.tag}"
