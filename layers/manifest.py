"""Image manifests and indexes (OCI and Docker schema 2): media types, parsing, platform choice.

Pure functions: bytes in, checked dicts out; ``InvalidImage`` for anything malformed.
"""

from __future__ import annotations

import json
import platform as _platform

from rootless.base.errors import InvalidImage, UsageError
from rootless.base.valuetype import KeywordRecord, record

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_FOREIGN = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join(MANIFESTS + INDEXES)
LAYERS = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_FOREIGN, DOCKER_LAYER, DOCKER_LAYER_TAR,
          DOCKER_FOREIGN, "application/vnd.oci.image.layer.nondistributable.v1.tar",
          "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")

@record
class Platform(KeywordRecord):
    os: str
    architecture: str
    variant: str = ""


@record
class Descriptor(KeywordRecord):
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None


def _arch() -> Platform:
    m = _platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)
    variant = {"aarch64": "v8", "armv7l": "v7", "armv6l": "v6"}.get(m, "")
    return Platform("linux", arch, variant)


def host_platform() -> Platform:
    return _arch()


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` (``--platform``)."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}", "use os/arch[/variant], for example linux/arm64")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _descriptor(d: object, what: str) -> Descriptor:
    if not isinstance(d, dict):
        raise InvalidImage(f"{what}: a descriptor is not an object")
    digest, size, mt = d.get("digest"), d.get("size"), d.get("mediaType", "")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71 or \
            not all(c in "0123456789abcdef" for c in digest[7:]):
        raise InvalidImage(f"{what}: bad digest {digest!r}")
    if not isinstance(size, int) or size < 0:
        raise InvalidImage(f"{what}: bad size {size!r} for {digest[:19]}")
    plat = d.get("platform")
    p = None
    if isinstance(plat, dict):
        p = Platform(str(plat.get("os", "")), str(plat.get("architecture", "")), str(plat.get("variant", "")))
    urls = d.get("urls") or ()
    return Descriptor(mt, digest, size, tuple(u for u in urls if isinstance(u, str)), p)


def parse(data: bytes, content_type: str = "", what: str = "manifest") -> tuple[str, dict]:
    """(media type, document) of a manifest or index; the type from the document, else the header."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidImage(f"{what}: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidImage(f"{what}: not a JSON object")
    mt = doc.get("mediaType") or content_type.split(";")[0].strip()
    if not mt:
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "layers" in doc else ""
    if doc.get("schemaVersion") == 1 or "schemaVersion" not in doc and "fsLayers" in doc:
        raise InvalidImage(f"{what}: Docker schema 1 manifests are not supported",
                           "push the image again with a current Docker or podman")
    if mt not in MANIFESTS + INDEXES:
        raise InvalidImage(f"{what}: unsupported media type {mt!r}")
    return mt, doc


def index_entries(doc: dict, what: str) -> list[Descriptor]:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidImage(f"{what}: an index without manifests")
    return [_descriptor(d, what) for d in entries]


def platform_matches(have: Platform | None, want: Platform) -> bool:
    """Whether ``have`` serves for ``want`` (a missing variant on either side matches)."""
    if have is None or have.os != want.os or have.architecture != want.architecture:
        return False
    return not want.variant or not have.variant or have.variant == want.variant


def platform_text(p: Platform) -> str:
    return "/".join(x for x in p if x)


def choose(entries: list[Descriptor], want: Platform, what: str) -> Descriptor:
    """The index entry for ``want`` (a missing variant matches; arm64 accepts v8 or none)."""
    found = [e for e in entries if platform_matches(e.platform, want)]
    if want.variant:  # an exact variant wins over an unspecified one
        exact = [e for e in found if e.platform is not None and e.platform.variant == want.variant]
        found = exact or found
    if not found:
        have = ", ".join(sorted({"/".join(x for x in e.platform if x) for e in entries if e.platform})) or "none"
        raise InvalidImage(f"{what}: no image for {'/'.join(x for x in want if x)} (the index has: {have})",
                           "choose one with --platform os/arch[/variant]")
    return found[0]


def image_parts(doc: dict, what: str) -> tuple[Descriptor, list[Descriptor]]:
    """(config, layers) of an image manifest."""
    config = _descriptor(doc.get("config"), f"{what} config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidImage(f"{what}: no layers")
    descs = [_descriptor(d, f"{what} layer") for d in layers]
    for d in descs:
        if d.media_type and d.media_type not in LAYERS:
            raise InvalidImage(f"{what}: unsupported layer media type {d.media_type!r}")
    return config, descs


def is_foreign(d: Descriptor) -> bool:
    return "nondistributable" in d.media_type or "foreign" in d.media_type


def oci_manifest(config_digest: str, config_size: int, layers: list[tuple[str, int, str]]) -> bytes:
    """An OCI image manifest for push: layers as (digest, size, media type)."""
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
           "layers": [{"mediaType": to_oci(mt), "digest": d, "size": s} for d, s, mt in layers]}
    return json.dumps(doc, separators=(",", ":")).encode()


def to_oci(media_type: str) -> str:
    return {DOCKER_LAYER: OCI_LAYER_GZIP, DOCKER_LAYER_TAR: OCI_LAYER, DOCKER_FOREIGN: OCI_LAYER_FOREIGN,
            "": OCI_LAYER}.get(media_type, media_type)
