"""Image archives in and out: ``docker save`` archives, OCI image layouts, rootfs tarballs.

Every archive is read in place (a tar or a directory), never extracted to
disk: member names are validated, blobs are verified against their digests
and sizes as they are copied into the store, and the image record is written
last, so a failure leaves no image behind.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from layers import manifest as manifest_types
from layers import reference, tarsafe
from layers.store import ImageStore, LayerRef, sha256_bytes
from rootless.base.clock import now_iso
from rootless.base.errors import InvalidImage, UsageError

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from layers.unpack import Readable

MT_LAYER_TAR = manifest_types.OCI_LAYER
MT_LAYER_GZIP = manifest_types.OCI_LAYER_GZIP
_MAX_JSON = 16 << 20
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class Loaded:
    id: str
    tags: list[str]


class _Source:
    """Named members of an archive, a tar file or a directory."""

    def __init__(self, path: str):
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if os.path.isdir(path):
            return
        try:
            self.tar = tarfile.open(path, "r:*")
            for m in self.tar.getmembers():
                self.members[tarsafe.clean_name(m.name, f"archive {path}")] = m
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            detail = "not a tar archive" if isinstance(e, tarfile.ReadError) else str(e).splitlines()[0]
            raise InvalidImage(f"cannot read archive {path}: {detail}",
                               "the file is truncated or not an image archive") from None

    def exists(self, name: str) -> bool:
        name = tarsafe.clean_name(name, self.path)
        if self.tar is None:
            return os.path.isfile(self._dir_path(name))
        return name in self.members

    def _dir_path(self, name: str) -> str:
        full = os.path.realpath(os.path.join(self.path, name))
        if not full.startswith(os.path.realpath(self.path) + os.sep):
            raise InvalidImage(f"archive {self.path}: {name!r} points outside the directory")
        return full

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        clean = tarsafe.clean_name(name, self.path)
        if self.tar is None:
            try:
                with open(self._dir_path(clean), "rb") as fh:
                    yield fh
            except FileNotFoundError:
                raise InvalidImage(f"archive {self.path}: {name!r} is missing") from None
            return
        m = self.members.get(clean)
        if m is None:
            raise InvalidImage(f"archive {self.path}: {name!r} is missing")
        try:
            f = self.tar.extractfile(m)
        except (tarfile.TarError, KeyError) as e:
            raise InvalidImage(f"archive {self.path}: cannot read {name!r} ({e})") from None
        if f is None:
            raise InvalidImage(f"archive {self.path}: {name!r} is not a file")
        yield f

    def read_json(self, name: str) -> Any:
        with self.open(name) as f:
            data = f.read(_MAX_JSON + 1)
        if len(data) > _MAX_JSON:
            raise InvalidImage(f"archive {self.path}: {name!r} is too large")
        try:
            return json.loads(data), data
        except ValueError:
            raise InvalidImage(f"archive {self.path}: {name!r} is not valid JSON") from None

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


class _Import:
    """Blobs added during one load or import, removed again if it fails."""

    def __init__(self, store: ImageStore):
        self.store = store
        self.added_blobs: list[str] = []
        self.added_layers: list[str] = []

    def put(self, stream: Readable, expected: str | None = None, size: int | None = None,
            what: str = "blob") -> tuple[str, int]:
        try:
            digest, n, added = self.store.put_blob(stream, expected, size, what)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise InvalidImage(f"{what}: truncated or corrupt archive ({e})") from None
        if added:
            self.added_blobs.append(digest)
        return digest, n

    def rollback(self) -> None:
        try:
            self.store.remove_layers(self.added_layers)
        finally:
            self.store.remove_blobs(self.added_blobs)


def _layer_media_type(store: ImageStore, digest: str) -> str:
    try:
        f = open(store.paths.blob(digest), "rb")
    except FileNotFoundError:
        if store.has_blob(digest):  # kept as its tree and recipe: an uncompressed tar
            return MT_LAYER_TAR
        raise
    with f:
        head = f.read(2)
    return MT_LAYER_GZIP if head == b"\x1f\x8b" else MT_LAYER_TAR


def _parse_config(data: bytes, what: str) -> dict:
    try:
        config = json.loads(data)
    except ValueError:
        raise InvalidImage(f"{what}: image config is not valid JSON") from None
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidImage(f"{what}: image config has no rootfs.diff_ids")
    for d in rootfs["diff_ids"]:
        if not isinstance(d, str) or not _DIGEST_RE.match(d):
            raise InvalidImage(f"{what}: invalid diff id {d!r} in the image config")
    return config


def _store_image(imp: _Import, config_bytes: bytes, layer_blobs: list[tuple[str, str]],
                 tags: list[str], what: str, manifest_digest: str | None = None) -> Loaded:
    """Verify layers against the config's diff ids, unpack them, record the image."""
    config = _parse_config(config_bytes, what)
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layer_blobs):
        raise InvalidImage(f"{what}: {len(layer_blobs)} layers but {len(diff_ids)} diff ids in the config")
    imp.put(io.BytesIO(config_bytes), what=f"{what} config")
    layers = [LayerRef(diff_id=d, blob=b, media_type=mt) for d, (b, mt) in zip(diff_ids, layer_blobs, strict=True)]
    imp.added_layers += imp.store.unpack_layers(layers)
    for lr in layers:
        if not lr.size:
            lr.size = imp.store.known_layer_size(lr.diff_id)
    rec, _ = imp.store.register(config_bytes, layers, tags, manifest_digest)
    return Loaded(rec["id"], tags)


def _tags_from(names: list[str], what: str) -> list[str]:
    tags = []
    for n in names:
        try:
            ref = reference.parse(n)
        except UsageError:
            raise InvalidImage(f"{what}: invalid image name {n!r}") from None
        if ref.tag:
            tags.append(f"{ref.repository}:{ref.tag}")
    return tags


def load(store: ImageStore, path: str) -> list[Loaded]:
    """``rootless load -i PATH``: a docker-archive or an OCI layout, as a tar or a directory."""
    if not os.path.exists(path):
        raise UsageError(f"open {path}: no such file or directory")
    src = _Source(path)
    imp = _Import(store)
    try:
        if src.exists("manifest.json"):
            loaded = _load_docker(src, imp)
        elif src.exists("index.json") and src.exists("oci-layout"):
            loaded = _load_oci(src, imp)
        else:
            raise InvalidImage(f"{path} is neither a docker-archive nor an OCI image layout",
                               "expected manifest.json (docker save) or oci-layout + index.json")
    except (TypeError, AttributeError, KeyError) as e:
        imp.rollback()
        raise InvalidImage(f"{path}: malformed image metadata ({type(e).__name__}: {e})",
                           "the archive's JSON files do not follow the image format") from None
    except BaseException:
        imp.rollback()
        raise
    finally:
        src.close()
    return loaded


def _load_docker(src: _Source, imp: _Import) -> list[Loaded]:
    manifest, _ = src.read_json("manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise InvalidImage(f"{src.path}: manifest.json is not a list of images")
    out = []
    for entry in manifest:
        if (not isinstance(entry, dict) or not isinstance(entry.get("Config"), str)
                or not isinstance(entry.get("Layers"), list) or not all(isinstance(x, str) for x in entry["Layers"])):
            raise InvalidImage(f"{src.path}: manifest.json entry lacks Config or Layers")
        with src.open(entry["Config"]) as f:
            config_bytes = f.read(_MAX_JSON)
        what = f"image {sha256_bytes(config_bytes)[7:19]}"
        blobs = []
        for i, name in enumerate(entry["Layers"]):
            with src.open(name) as f:
                digest, _ = imp.put(f, what=f"{what} layer {i + 1}")
            blobs.append((digest, _layer_media_type(imp.store, digest)))
        repo_tags = entry.get("RepoTags") or []
        if not isinstance(repo_tags, list):
            raise InvalidImage(f"{src.path}: manifest.json RepoTags is not a list")
        out.append(_store_image(imp, config_bytes, blobs, _tags_from(repo_tags, src.path), what))
    return out


def _blob_name(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64:
        raise InvalidImage(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexpart}"


def _read_blob_json(src: _Source, desc: dict, what: str) -> tuple[dict, bytes]:
    if not isinstance(desc, dict) or "digest" not in desc:
        raise InvalidImage(f"{what}: descriptor without digest")
    obj, data = src.read_json(_blob_name(desc["digest"]))
    if sha256_bytes(data) != desc["digest"]:
        raise InvalidImage(f"{what}: blob {desc['digest']} does not match its digest")
    if "size" in desc and desc["size"] != len(data):
        raise InvalidImage(f"{what}: blob {desc['digest']} has the wrong size")
    return obj, data


def _load_oci(src: _Source, imp: _Import) -> list[Loaded]:
    index, _ = src.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidImage(f"{src.path}: index.json has no manifests")
    out = []
    for desc in index["manifests"]:
        annotations = desc.get("annotations") or {}
        names = []
        full = annotations.get("io.containerd.image.name")
        ref_name = annotations.get("org.opencontainers.image.ref.name", "")
        if full:
            names.append(full)
        elif "/" in ref_name or ":" in ref_name:
            names.append(ref_name)
        manifest_desc = desc
        manifest, mdata = _read_blob_json(src, desc, src.path)
        if manifest.get("mediaType") in manifest_types.INDEXES or "manifests" in manifest:
            entry = manifest_types.choose(manifest_types.index_entries(manifest, src.path),
                                          manifest_types.host_platform(), src.path)
            manifest_desc = {"digest": entry.digest, "size": entry.size}
            manifest, mdata = _read_blob_json(src, manifest_desc, src.path)
        if not isinstance(manifest.get("config"), dict) or not isinstance(manifest.get("layers"), list):
            raise InvalidImage(f"{src.path}: manifest {desc['digest']} lacks config or layers")
        _, config_bytes = _read_blob_json(src, manifest["config"], src.path)
        what = f"image {sha256_bytes(config_bytes)[7:19]}"
        blobs = []
        for i, ldesc in enumerate(manifest["layers"]):
            with src.open(_blob_name(ldesc.get("digest", ""))) as f:
                digest, _ = imp.put(f, ldesc["digest"], ldesc.get("size"), what=f"{what} layer {i + 1}")
            blobs.append((digest, ldesc.get("mediaType", MT_LAYER_TAR)))
        out.append(_store_image(imp, config_bytes, blobs, _tags_from(names, src.path), what,
                                manifest_digest=manifest_desc["digest"]))
    return out


def import_rootfs(store: ImageStore, path: str, tag: str | None, changes: dict | None = None) -> Loaded:
    """``rootless import TARBALL [NAME[:TAG]]``: a rootfs tarball becomes a one-layer image."""
    from layers.unpack import HashingReader, open_decompressed
    tags = _tags_from([tag], "import") if tag else []
    imp = _Import(store)
    try:
        try:
            raw = open(path, "rb")
        except OSError as e:
            raise UsageError(f"open {path}: {e.strerror}") from None
        with raw:
            reader = HashingReader(open_decompressed(io.BufferedReader(raw)))
            blob, _ = imp.put(reader, what=f"import {path}")
        os_name, arch, _variant = manifest_types.host_platform()
        created = now_iso()
        config = {
            "architecture": arch, "os": os_name, "created": created,
            "config": changes or {},
            "rootfs": {"type": "layers", "diff_ids": [blob]},
            "history": [{"created": created, "created_by": f"rootless import {os.path.basename(path)}"}],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        return _store_image(imp, config_bytes, [(blob, MT_LAYER_TAR)], tags, f"import {path}")
    except BaseException:
        imp.rollback()
        raise
