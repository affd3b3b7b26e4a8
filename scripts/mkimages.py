#!/usr/bin/env python3
"""Build deterministic container test images from the host's static busybox.

Usage::

    python3 scripts/mkimages.py --out DIR [--busybox /bin/busybox]
                                [--only busybox,layered,demo,rootfs]

Images (the image name used in tags is given in parentheses):

* ``busybox`` (``busybox:latest``): one layer with busybox, its applet
  symlinks in /bin, /etc/passwd, /etc/group and a small directory skeleton.
* ``layered`` (``layered:latest``): the busybox layer plus two layers that
  exercise ownership, special modes, hardlinks, symlinks, whiteouts, an
  opaque directory and a full set of config fields.
* ``demo`` (``rootless-demo:latest``): the busybox layer plus a friendly
  ``/usr/local/bin/demo`` script and ``/etc/motd``.
* ``rootfs``: ``busybox-rootfs.tar``, a plain rootfs tarball with the same
  tree as the busybox layer (for ``rootless import``).

For each image NAME the following outputs are written into DIR:

* ``NAME.oci/``    an OCI image layout directory (gzip layers),
* ``NAME-oci.tar`` the same OCI layout as an uncompressed tar,
* ``NAME.tar``     a classic ``docker save`` archive (uncompressed layers),
* ``NAME.dir/``    the ``docker save`` archive unpacked as a directory,

plus ``digests.json`` mapping each image built in this run to its config
digest, manifest digest and diff_ids.

Every output is reproducible: the same busybox binary gives byte-identical
files (fixed timestamps, sorted entries, no user/group names, gzip without
mtime or file name, canonical JSON). Outputs are written to a temporary
name and renamed into place, so a failed run never leaves a half-written
output behind.

The module is importable; see :func:`build_all`.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

MTIME = 1767225600  # 2026-01-01T00:00:00Z
CREATED = "2026-01-01T00:00:00Z"

DEFAULT_BUSYBOX = "/bin/busybox"
ALL_TARGETS = ("busybox", "layered", "demo", "rootfs")
IMAGE_TARGETS = ("busybox", "layered", "demo")
ROOTFS_NAME = "busybox-rootfs.tar"
DIGESTS_NAME = "digests.json"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"

ARCH_MAP = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nusers:x:100:app\napp:x:1000:\nnogroup:x:65534:\n"

# The demo image's files live beside its Dockerfile (examples/demo), which `just embed-demo`
# builds with `rootless build`; the test image "demo" here carries the same two files.
_EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "demo")
with open(os.path.join(_EXAMPLES, "motd")) as _f:
    MOTD = _f.read()
with open(os.path.join(_EXAMPLES, "demo.sh")) as _f:
    DEMO_SCRIPT = _f.read()


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def json_bytes(obj) -> bytes:
    """Canonical JSON encoding used for every JSON document we write."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` reproducibly (no mtime, no file name)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def host_architecture() -> str:
    machine = platform.machine().lower()
    return ARCH_MAP.get(machine, machine)


def list_applets(busybox: str) -> list[str]:
    """Applet names printed by ``busybox --list``, sorted, without "busybox"."""
    out = subprocess.run(
        [busybox, "--list"], check=True, capture_output=True, text=True
    ).stdout
    names = {line.strip() for line in out.splitlines()}
    names.discard("")
    names.discard("busybox")
    return sorted(names)


# --------------------------------------------------------------------------
# Filesystem entries and layer tarballs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tar member of a layer: a directory, file, symlink or hardlink."""

    path: str
    kind: str  # "dir" | "file" | "symlink" | "hardlink"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""  # link target for symlinks and hardlinks


def dir_entry(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, "dir", mode, uid, gid)


def file_entry(path: str, data: bytes | str, mode: int = 0o644,
               uid: int = 0, gid: int = 0) -> Entry:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return Entry(path, "file", mode, uid, gid, data=data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", 0o777, target=target)


def hardlink(path: str, target: str, mode: int = 0o644) -> Entry:
    return Entry(path, "hardlink", mode, target=target)


def with_parents(entries: list[Entry]) -> list[Entry]:
    """Add a default (0755 root) directory entry for every missing parent."""
    by_path = {e.path: e for e in entries}
    for e in entries:
        parts = e.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            by_path.setdefault(parent, dir_entry(parent))
    return list(by_path.values())


def entry_sort_key(e: Entry):
    """Sorted by path components; hardlinks go last so targets come first."""
    return (e.kind == "hardlink", e.path.split("/"))


def tarinfo_for(e: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(e.path)
    info.mode = e.mode
    info.uid, info.gid = e.uid, e.gid
    info.uname = info.gname = ""
    info.mtime = MTIME
    if e.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif e.kind == "file":
        info.type = tarfile.REGTYPE
        info.size = len(e.data)
    elif e.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = e.target
    elif e.kind == "hardlink":
        info.type = tarfile.LNKTYPE
        info.linkname = e.target
    else:
        raise ValueError(f"unknown entry kind {e.kind!r} for {e.path}")
    return info


def tar_bytes(entries: list[Entry]) -> bytes:
    """Serialize entries, in the given order, as a GNU tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for e in entries:
            fileobj = io.BytesIO(e.data) if e.kind == "file" else None
            tar.addfile(tarinfo_for(e), fileobj)
    return buf.getvalue()


def make_layer_tar(entries: list[Entry]) -> bytes:
    """A layer tar: entries plus their parent directories, in a fixed order."""
    return tar_bytes(sorted(with_parents(entries), key=entry_sort_key))


# --------------------------------------------------------------------------
# Layer contents
# --------------------------------------------------------------------------


def busybox_entries(busybox: str) -> list[Entry]:
    with open(busybox, "rb") as fh:
        binary = fh.read()
    entries = [
        dir_entry(p)
        for p in ("bin", "etc", "home", "root", "var", "usr", "usr/bin",
                  "usr/sbin", "sbin", "dev", "proc", "sys")
    ]
    entries += [
        dir_entry("tmp", 0o1777),
        dir_entry("home/app", 0o755, 1000, 1000),
        file_entry("bin/busybox", binary, 0o755),
        file_entry("etc/passwd", PASSWD),
        file_entry("etc/group", GROUP),
    ]
    entries += [symlink(f"bin/{name}", "busybox") for name in list_applets(busybox)]
    return entries


def layered_layer2_entries() -> list[Entry]:
    return [
        dir_entry("home/app", 0o755, 1000, 1000),
        file_entry("home/app/owned-by-app.txt", "app\n", 0o644, 1000, 1000),
        file_entry("data/keep.txt", "keep\n"),
        file_entry("data/delete-me.txt", "bye\n"),
        file_entry("data/opaque/old.txt", "old\n"),
        file_entry("data/opaque/sub/x.txt", "x\n"),
        file_entry("data/nobody.txt", "nobody\n", 0o640, 65534, 65534),
        file_entry("usr/local/bin/suid-tool", "#!/bin/sh\necho suid\n", 0o4755),
        file_entry("data/hardlink-src.txt", "linked\n"),
        hardlink("data/hardlink-dst.txt", "data/hardlink-src.txt"),
        symlink("data/rel-link", "keep.txt"),
        symlink("data/abs-link", "/data/keep.txt"),
        dir_entry("data/empty-dir", 0o700),
        file_entry("data/vol/seed.txt", "seed\n"),
    ]


def layered_layer3_entries() -> list[Entry]:
    return [
        dir_entry("data"),
        file_entry("data/.wh.delete-me.txt", b""),
        dir_entry("data/opaque"),
        file_entry("data/opaque/.wh..wh..opq", b""),
        file_entry("data/opaque/new.txt", "new\n"),
        file_entry("data/added-in-layer3.txt", "three\n"),
    ]


def demo_layer_entries() -> list[Entry]:
    return [
        file_entry("etc/motd", MOTD),
        file_entry("usr/local/bin/demo", DEMO_SCRIPT, 0o755),
    ]


# --------------------------------------------------------------------------
# Images: layers, config, OCI manifest/index
# --------------------------------------------------------------------------


@dataclass
class Layer:
    tar: bytes
    created_by: str
    gz: bytes = field(init=False, repr=False)

    def __post_init__(self):
        self.gz = gzip_bytes(self.tar)

    @property
    def diff_id(self) -> str:
        return "sha256:" + sha256_hex(self.tar)


@dataclass
class Image:
    key: str  # output file stem: busybox, layered, demo
    repo: str  # repository name in tags: busybox, layered, rootless-demo
    layers: list[Layer]
    runtime_config: dict

    @property
    def tag(self) -> str:
        return f"{self.repo}:latest"


def make_config(image: Image) -> bytes:
    return json_bytes({
        "architecture": host_architecture(),
        "os": "linux",
        "created": CREATED,
        "config": image.runtime_config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in image.layers]},
        "history": [{"created": CREATED, "created_by": layer.created_by} for layer in image.layers],
    })


def descriptor(media_type: str, data: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + sha256_hex(data),
            "size": len(data), **extra}


def make_manifest(image: Image, config: bytes) -> bytes:
    return json_bytes({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": descriptor(MT_CONFIG, config),
        "layers": [descriptor(MT_LAYER_GZIP, layer.gz) for layer in image.layers],
    })


def make_index(image: Image, manifest: bytes) -> bytes:
    annotations = {
        "org.opencontainers.image.ref.name": "latest",
        "io.containerd.image.name": f"docker.io/library/{image.tag}",
    }
    platform_ = {"architecture": host_architecture(), "os": "linux"}
    return json_bytes({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [descriptor(MT_MANIFEST, manifest, annotations=annotations,
                                 platform=platform_)],
    })


def define_images(busybox: str) -> dict[str, Image]:
    base = Layer(make_layer_tar(busybox_entries(busybox)),
                 "mkimages: busybox base layer (busybox, applet links, /etc/passwd, /etc/group)")
    layer2 = Layer(make_layer_tar(layered_layer2_entries()),
                   "mkimages: layered test files (owners, modes, links, volume seed)")
    layer3 = Layer(make_layer_tar(layered_layer3_entries()),
                   "mkimages: layered whiteout, opaque dir and new file")
    demo = Layer(make_layer_tar(demo_layer_entries()),
                 "mkimages: demo script /usr/local/bin/demo and /etc/motd")
    return {
        "busybox": Image("busybox", "busybox", [base],
                         {"Env": [DEFAULT_PATH], "Cmd": ["sh"]}),
        "layered": Image("layered", "layered", [base, layer2, layer3], {
            "Env": [DEFAULT_PATH, "LAYERED=yes", "GREETING=hello world"],
            "Entrypoint": ["/bin/echo", "entry:"],
            "Cmd": ["default-cmd"],
            "WorkingDir": "/data",
            "User": "app",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Volumes": {"/data/vol": {}},
            "Labels": {"org.example.test": "layered", "maintainer": "rootless tests"},
            "StopSignal": "SIGTERM",
        }),
        "demo": Image("demo", "rootless-demo", [base, demo], {
            "Env": [DEFAULT_PATH],
            "Cmd": ["/usr/local/bin/demo"],
            "Labels": {"org.opencontainers.image.title": "rootless demo"},
        }),
    }


# --------------------------------------------------------------------------
# Archive file listings: ordered (relative path, bytes or None for a dir)
# --------------------------------------------------------------------------

Listing = list[tuple[str, bytes | None]]


def oci_listing(image: Image) -> Listing:
    config = make_config(image)
    manifest = make_manifest(image, config)
    blobs = {sha256_hex(b): b for b in [layer.gz for layer in image.layers] + [config, manifest]}
    listing: Listing = [
        ("oci-layout", json_bytes({"imageLayoutVersion": "1.0.0"})),
        ("index.json", make_index(image, manifest)),
        ("blobs", None),
        ("blobs/sha256", None),
    ]
    listing += [(f"blobs/sha256/{h}", blobs[h]) for h in sorted(blobs)]
    return listing


def docker_listing(image: Image) -> Listing:
    config = make_config(image)
    config_name = sha256_hex(config) + ".json"
    layer_ids = [sha256_hex(layer.tar) for layer in image.layers]
    files: dict[str, bytes | None] = {
        config_name: config,
        "manifest.json": json_bytes([{
            "Config": config_name,
            "RepoTags": [image.tag],
            "Layers": [f"{h}/layer.tar" for h in layer_ids],
        }]),
        "repositories": json_bytes({image.repo: {"latest": layer_ids[-1]}}),
    }
    for h, layer in zip(layer_ids, image.layers, strict=True):
        files[h] = None
        files[f"{h}/VERSION"] = b"1.0"
        files[f"{h}/json"] = json_bytes({"id": h})
        files[f"{h}/layer.tar"] = layer.tar
    return [(p, files[p]) for p in sorted(files, key=lambda p: p.split("/"))]


def listing_to_tar(listing: Listing) -> bytes:
    """An uncompressed tar of a listing, keeping the listing's own order."""
    return tar_bytes([dir_entry(p) if data is None else file_entry(p, data)
                      for p, data in listing])


def image_digests(image: Image) -> dict:
    config = make_config(image)
    manifest = make_manifest(image, config)
    return {
        "config": "sha256:" + sha256_hex(config),
        "manifest": "sha256:" + sha256_hex(manifest),
        "diff_ids": [layer.diff_id for layer in image.layers],
    }


# --------------------------------------------------------------------------
# Atomic output writers
# --------------------------------------------------------------------------


def write_file_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path),
                               prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.utime(tmp, (MTIME, MTIME))
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def populate_dir(root: str, listing: Listing) -> None:
    for rel, data in listing:
        target = os.path.join(root, rel)
        if data is None:
            os.makedirs(target, mode=0o755, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
        os.chmod(target, 0o644)
        os.utime(target, (MTIME, MTIME))
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        os.utime(dirpath, (MTIME, MTIME))


def replace_dir(tmp: str, path: str) -> None:
    """Move the finished directory ``tmp`` to ``path``, replacing any old one."""
    if os.path.isdir(path) and not os.path.islink(path):
        aside = tempfile.mkdtemp(dir=os.path.dirname(path),
                                 prefix=f".{os.path.basename(path)}.", suffix=".old")
        os.rmdir(aside)
        os.rename(path, aside)
        os.rename(tmp, path)
        shutil.rmtree(aside)
    else:
        if os.path.lexists(path):
            os.unlink(path)
        os.rename(tmp, path)


def write_dir_atomic(path: str, listing: Listing) -> None:
    tmp = tempfile.mkdtemp(dir=os.path.dirname(path),
                           prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o755)
        populate_dir(tmp, listing)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def write_image(out_dir: str, image: Image) -> dict[str, str]:
    """Write the four outputs of one image; return name -> path."""
    oci, docker = oci_listing(image), docker_listing(image)
    outputs = {
        f"{image.key}.oci": lambda p: write_dir_atomic(p, oci),
        f"{image.key}-oci.tar": lambda p: write_file_atomic(p, listing_to_tar(oci)),
        f"{image.key}.tar": lambda p: write_file_atomic(p, listing_to_tar(docker)),
        f"{image.key}.dir": lambda p: write_dir_atomic(p, docker),
    }
    written = {}
    for name, writer in outputs.items():
        path = os.path.join(out_dir, name)
        writer(path)
        written[name] = path
    return written


def normalize_only(only) -> set[str]:
    if only is None:
        return set(ALL_TARGETS)
    only = set(only)
    unknown = only - set(ALL_TARGETS)
    if unknown:
        raise ValueError(f"unknown target(s): {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(ALL_TARGETS)}")
    return only


def build_all(out_dir: str, busybox: str = DEFAULT_BUSYBOX,
              only: set[str] | None = None) -> dict[str, str]:
    """Build the selected targets into ``out_dir``; return output name -> path.

    ``only`` is a subset of {"busybox", "layered", "demo", "rootfs"} (all when
    None). ``digests.json`` lists the images built in this call and is not
    written when no image is selected.
    """
    targets = normalize_only(only)
    if not os.path.isfile(busybox):
        raise FileNotFoundError(f"busybox binary not found: {busybox}")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    images = define_images(busybox)
    written: dict[str, str] = {}
    digests = {}
    for key in IMAGE_TARGETS:
        if key in targets:
            written.update(write_image(out_dir, images[key]))
            digests[key] = image_digests(images[key])
    if "rootfs" in targets:
        path = os.path.join(out_dir, ROOTFS_NAME)
        write_file_atomic(path, images["busybox"].layers[0].tar)
        written[ROOTFS_NAME] = path
    if digests:
        path = os.path.join(out_dir, DIGESTS_NAME)
        write_file_atomic(path, json_bytes(digests))
        written[DIGESTS_NAME] = path
    return written


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--busybox", default=DEFAULT_BUSYBOX,
                        help=f"static busybox binary (default {DEFAULT_BUSYBOX})")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {','.join(ALL_TARGETS)}")
    args = parser.parse_args(argv)
    if args.only is not None:
        args.only = {t.strip() for t in args.only.split(",") if t.strip()}
        try:
            normalize_only(args.only)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.out:
        print("mkimages: error: give --out DIR", file=sys.stderr)
        return 2
    try:
        written = build_all(args.out, args.busybox, args.only)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"mkimages: error: {exc}", file=sys.stderr)
        return 1
    for name in sorted(written):
        print(written[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
