"""End to end: hostile and malformed archives are refused and leave nothing behind.

Every hostile archive is otherwise well formed (its config's diff ids match its
layers), so a refusal really comes from the hostile content. The attacks aim at
a sentinel directory next to the store, which must be unchanged afterwards.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.userns

Member = tuple[tarfile.TarInfo, bytes]


# ---- building archives ---------------------------------------------------------------------
def entry(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, linkname: str = "",
          mode: int = 0o644, dev: tuple[int, int] = (0, 0)) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    info.mtime = 1767225600
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def file(name: str, data: bytes = b"pwned\n") -> Member:
    return entry(name, data)


def directory(name: str) -> Member:
    return entry(name, kind=tarfile.DIRTYPE, mode=0o755)


def symlink(name: str, target: str) -> Member:
    return entry(name, kind=tarfile.SYMTYPE, linkname=target, mode=0o777)


def hardlink(name: str, target: str) -> Member:
    return entry(name, kind=tarfile.LNKTYPE, linkname=target)


def tar_bytes(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(diff_ids: list[str]) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()


def docker_archive(path: Path, layers: list[bytes], *, diff_ids: list | None = None,
                   manifest: bytes | None = None, config: bytes | None = None,
                   extra: list[Member] = ()) -> Path:
    """A ``docker save`` tar of ``layers``; the config's diff ids match them unless given."""
    if config is None:
        config = image_config([sha256(layer) for layer in layers] if diff_ids is None else diff_ids)
    config_name = sha256(config)[7:] + ".json"
    layer_names = [f"layer{i}/layer.tar" for i in range(len(layers))]
    if manifest is None:
        manifest = json.dumps([{"Config": config_name, "RepoTags": ["hostile:latest"],
                                "Layers": layer_names}]).encode()
    members = [file(config_name, config), file("manifest.json", manifest)]
    members += [file(name, layer) for name, layer in zip(layer_names, layers, strict=True)]
    path.write_bytes(tar_bytes(members + list(extra)))
    return path


def oci_layout(path: Path, layers: list[bytes], *, corrupt_layer: bool = False,
               drop_manifest: bool = False) -> Path:
    """An OCI image layout directory with gzip layers."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes, media_type: str) -> dict:
        blobs[sha256(data)] = data
        return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}

    gz_layers = [gzip.compress(layer, mtime=0) for layer in layers]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": add(image_config([sha256(layer) for layer in layers]),
                      "application/vnd.oci.image.config.v1+json"),
        "layers": [add(gz, "application/vnd.oci.image.layer.v1.tar+gzip") for gz in gz_layers],
    }).encode()
    mdesc = add(manifest, "application/vnd.oci.image.manifest.v1+json")
    mdesc["annotations"] = {"io.containerd.image.name": "docker.io/library/hostile:latest"}
    if corrupt_layer:  # same name and size, other content
        data = bytearray(blobs[sha256(gz_layers[0])])
        data[len(data) // 2] ^= 0xFF
        blobs[sha256(gz_layers[0])] = bytes(data)
    if drop_manifest:
        del blobs[mdesc["digest"]]
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    for digest, data in blobs.items():
        (path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return path


# ---- what must hold after a refused load -----------------------------------------------------
def snapshot(top: Path) -> dict:
    """Everything about a directory tree that an escaped write or link would change."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            content = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            found[str(p.relative_to(top))] = (st.st_mode, st.st_uid, st.st_nlink, st.st_size,
                                              st.st_mtime_ns, content)
    return found


def assert_one_error(err: str) -> None:
    assert "Traceback" not in err
    assert "internal error" not in err
    lines = [line for line in err.splitlines() if not line.startswith("rootless: warning:")]
    assert len([x for x in lines if x.startswith("rootless: error:")]) == 1, err
    assert len([x for x in lines if x.startswith("rootless: hint:")]) <= 1, err
    assert all(x.startswith(("rootless: error:", "rootless: hint:")) for x in lines), err


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def assert_store_empty(rl) -> None:
    assert rl("images", "-q").out == ""
    assert rl.leftovers() == []
    assert listing(rl.root / "layers") == []
    assert listing(rl.root / "blobs" / "sha256") == []
    assert listing(rl.root / "tmp") == []


@pytest.fixture
def outside(tmp_path) -> Path:
    """The sentinel directory the attacks aim at, next to the store."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("secret\n")
    (d / "sub").mkdir()
    return d


@pytest.fixture
def escape(rl, outside) -> str:
    """``outside`` relative to a layer being unpacked (``<root>/layers/<dir>``)."""
    return os.path.relpath(outside, rl.root / "layers" / "some-layer")


def refuse_load(rl, path: Path, outside: Path, reason: str = "") -> str:
    """``load -i path`` fails (for ``reason``), and neither the store nor ``outside`` changed."""
    before = snapshot(outside)
    res = rl("load", "-i", path, expect=125)
    assert_one_error(res.err)
    assert reason in res.err
    assert_store_empty(rl)
    assert snapshot(outside) == before
    return res.err


# ---- hostile layer contents -------------------------------------------------------------------
def hostile_layers(outside: Path, escape: str) -> dict[str, list[Member]]:
    return {
        "absolute-path": [file(str(outside / "pwned"))],
        "dotdot": [file(f"{escape}/pwned")],
        "dotdot-inside-name": [directory("etc"), file(f"etc/../{escape}/pwned")],
        "symlink-escape-absolute": [symlink("evil", str(outside)), file("evil/pwned")],
        "symlink-escape-relative": [symlink("evil", escape), file("evil/pwned")],
        "symlink-escape-nested": [directory("a"), symlink("a/evil", str(outside)),
                                  directory("a/evil/sub"), file("a/evil/sub/pwned")],
        "hardlink-escape-relative": [hardlink("stolen", f"{escape}/secret")],
        "hardlink-escape-absolute": [hardlink("stolen", str(outside / "secret"))],
        "symlink-then-hardlink": [symlink("evil", str(outside)), hardlink("stolen", "evil/secret")],
        "bad-whiteout-dot": [directory("data"), file("data/.wh..", b"")],
        "bad-whiteout-dotdot": [directory("data"), file("data/.wh...", b"")],
    }


# what the error says for each case (so we know the right check refused it)
HOSTILE_REASONS = {
    "absolute-path": "absolute path",
    "dotdot": "escapes the archive root",
    "dotdot-inside-name": "escapes the archive root",
    "symlink-escape-absolute": "goes through a symlink",
    "symlink-escape-relative": "goes through a symlink",
    "symlink-escape-nested": "goes through a symlink",
    "hardlink-escape-relative": "escapes the archive root",
    "hardlink-escape-absolute": "absolute path",
    "symlink-then-hardlink": "goes through a symlink",
    "bad-whiteout-dot": "bad whiteout",
    "bad-whiteout-dotdot": "bad whiteout",
}


@pytest.mark.parametrize("case", list(HOSTILE_REASONS))
def test_hostile_layer_refused(rl, tmp_path, outside, escape, case):
    layer = tar_bytes([directory("etc"), file("etc/hostname", b"x\n")] +
                      hostile_layers(outside, escape)[case])
    refuse_load(rl, docker_archive(tmp_path / "hostile.tar", [layer]), outside, HOSTILE_REASONS[case])


@pytest.mark.parametrize("case", ["absolute-path", "dotdot", "symlink-escape-absolute",
                                  "symlink-then-hardlink", "hardlink-escape-absolute"])
def test_hostile_rootfs_import_refused(rl, tmp_path, outside, escape, case):
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(tar_bytes([directory("etc")] + hostile_layers(outside, escape)[case]))
    before = snapshot(outside)
    res = rl("import", tarball, "hostile:1", expect=125)
    assert_one_error(res.err)
    assert HOSTILE_REASONS[case] in res.err
    assert_store_empty(rl)
    assert snapshot(outside) == before


def test_device_nodes_are_skipped_not_refused(rl, images, tmp_path):
    """Real root filesystems (mmdebstrap, docker export) carry /dev nodes: a user namespace cannot
    make them and the container gets its own /dev, so they are left out, as Docker and Podman do
    rootless; the rest of the layer is there."""
    rl.load(images, "busybox")
    base = (images / "busybox-rootfs.tar").read_bytes()
    devices = tar_bytes([directory("dev"), entry("dev/mem", kind=tarfile.CHRTYPE, dev=(1, 1)),
                         entry("dev/sda", kind=tarfile.BLKTYPE, dev=(8, 0)),
                         hardlink("dev/mem-again", "dev/mem"), file("etc/kept", b"kept\n")])
    rl("load", "-i", docker_archive(tmp_path / "devices.tar", [base, devices]))
    out = rl("run", "--rm", "--network", "none", "hostile", "sh", "-c",
             "cat /etc/kept; ls /dev/mem /dev/sda /dev/mem-again 2>&1; test -c /dev/null && echo null").out
    assert out.startswith("kept\n") and out.count("No such file") == 3 and out.endswith("null\n"), out
    tarball = tmp_path / "rootfs.tar"  # busybox's tree plus dev/console, as `rootless import` gets it
    with tarfile.open(fileobj=io.BytesIO(base)) as src, tarfile.open(tarball, "w") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        console = tarfile.TarInfo("dev/console")
        console.type, console.devmajor, console.devminor = tarfile.CHRTYPE, 5, 1
        dst.addfile(console)
    rl("import", tarball, "imported:1")
    assert rl("run", "--rm", "--network", "none", "imported:1", "true").code == 0


def test_hostile_second_layer_keeps_existing_image(rl, images, tmp_path, outside, escape):
    """A refused load rolls back only what it added: a shared base layer stays."""
    rl.load(images, "busybox")
    layers = listing(rl.root / "layers")
    blobs = listing(rl.root / "blobs" / "sha256")
    base = (images / "busybox-rootfs.tar").read_bytes()  # the same bytes as busybox's layer
    hostile = tar_bytes([symlink("evil", str(outside)), file("evil/pwned")])
    before = snapshot(outside)
    res = rl("load", "-i", docker_archive(tmp_path / "h.tar", [base, hostile]), expect=125)
    assert_one_error(res.err)
    assert "goes through a symlink" in res.err
    assert snapshot(outside) == before
    assert rl.leftovers() == []
    assert listing(rl.root / "layers") == layers
    assert listing(rl.root / "blobs" / "sha256") == blobs
    assert rl("run", "--rm", "busybox", "echo", "still here").out == "still here\n"


def test_file_replacing_symlink_does_not_write_through(rl, tmp_path, outside):
    """A later regular file over a symlink replaces the link; it never writes to its target."""
    layer = tar_bytes([symlink("evil", str(outside / "secret")), file("evil", b"overwritten\n")])
    before = snapshot(outside)
    rl("load", "-i", docker_archive(tmp_path / "ok.tar", [layer]))
    assert snapshot(outside) == before
    assert rl.leftovers() == []
    (unpacked,) = [p for p in (rl.root / "layers").iterdir()]
    assert not (unpacked / "evil").is_symlink()
    assert (unpacked / "evil").read_bytes() == b"overwritten\n"


# ---- malformed archives -----------------------------------------------------------------------
GOOD_LAYER = tar_bytes([directory("etc"), file("etc/hostname", b"x\n")])


def _truncated_archive(tmp_path: Path, images: Path, outside: Path) -> Path:
    data = (images / "busybox.tar").read_bytes()
    path = tmp_path / "half.tar"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_gzip_layer(tmp_path: Path, images: Path, outside: Path) -> Path:
    gz = gzip.compress(GOOD_LAYER + bytes(range(256)) * 64, mtime=0)
    return docker_archive(tmp_path / "a.tar", [gz[: len(gz) // 2]],
                          diff_ids=[sha256(GOOD_LAYER + bytes(range(256)) * 64)])


def _truncated_layer_tar(tmp_path: Path, images: Path, outside: Path) -> Path:
    big = tar_bytes([file("big", bytes(range(256)) * 256)])
    cut = big[: 512 + 1000]  # header plus part of the file's data
    return docker_archive(tmp_path / "a.tar", [cut])  # diff id of the cut bytes: only the tar is bad


def _not_a_tar(tmp_path: Path, images: Path, outside: Path) -> Path:
    path = tmp_path / "random.tar"
    path.write_bytes(random.Random(1).randbytes(8192))
    return path


def _manifest_not_json(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], manifest=b"[{not json")


def _manifest_without_layers(tmp_path: Path, images: Path, outside: Path) -> Path:
    config_name = sha256(image_config([sha256(GOOD_LAYER)]))[7:] + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["hostile:latest"]}]).encode()
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], manifest=manifest)


def _diff_ids_count_mismatch(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER],
                          diff_ids=[sha256(GOOD_LAYER), sha256(b"another layer")])


def _layer_digest_mismatch(tmp_path: Path, images: Path, outside: Path) -> Path:
    other = tar_bytes([file("other", b"other\n")])
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], diff_ids=[sha256(other)])


def _oci_blob_digest_mismatch(tmp_path: Path, images: Path, outside: Path) -> Path:
    return oci_layout(tmp_path / "oci", [GOOD_LAYER], corrupt_layer=True)


def _oci_index_missing_blob(tmp_path: Path, images: Path, outside: Path) -> Path:
    return oci_layout(tmp_path / "oci", [GOOD_LAYER], drop_manifest=True)


def _oci_tar_blob_digest_mismatch(tmp_path: Path, images: Path, outside: Path) -> Path:
    d = oci_layout(tmp_path / "oci", [GOOD_LAYER], corrupt_layer=True)
    members = []
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        members.append(directory(rel) if p.is_dir() else file(rel, p.read_bytes()))
    path = tmp_path / "oci.tar"
    path.write_bytes(tar_bytes(members))
    return path


def _layers_not_strings(tmp_path: Path, images: Path, outside: Path) -> Path:
    config_name = sha256(image_config([sha256(GOOD_LAYER)]))[7:] + ".json"
    manifest = json.dumps([{"Config": config_name, "Layers": [1]}]).encode()
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], manifest=manifest)


def _config_not_object(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], config=b"[]")


def _config_rootfs_not_object(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], config=b'{"rootfs": []}')


def _config_diff_id_not_string(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], diff_ids=[5])


def _oci_index_entry_not_object(tmp_path: Path, images: Path, outside: Path) -> Path:
    d = oci_layout(tmp_path / "oci", [GOOD_LAYER])
    (d / "index.json").write_text('{"schemaVersion": 2, "manifests": ["not a descriptor"]}')
    return d


def _archive_member_absolute(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], extra=[file(str(outside / "pwned"))])


def _archive_member_dotdot(tmp_path: Path, images: Path, outside: Path) -> Path:
    return docker_archive(tmp_path / "a.tar", [GOOD_LAYER], extra=[file("../outside/pwned")])


def _archive_dir_layer_outside(tmp_path: Path, images: Path, outside: Path) -> Path:
    """A docker-archive directory whose manifest names a file outside it."""
    d = tmp_path / "archive.dir"
    shutil.copytree(images / "busybox.dir", d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest[0]["Layers"] = ["../outside/secret"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def _archive_dir_symlinked_layer(tmp_path: Path, images: Path, outside: Path) -> Path:
    """A docker-archive directory whose layer.tar is a symlink to a file outside it."""
    d = tmp_path / "archive.dir"
    shutil.copytree(images / "busybox.dir", d)
    manifest = json.loads((d / "manifest.json").read_text())
    layer = d / manifest[0]["Layers"][0]
    layer.unlink()
    layer.symlink_to(outside / "secret")
    return d


Builder = Callable[[Path, Path, Path], Path]  # (tmp_path, images, outside) -> archive path

MALFORMED: dict[str, tuple[Builder, str]] = {  # case -> (builder, what the error says)
    "truncated-archive": (_truncated_archive, "cannot read archive"),
    "truncated-gzip-layer": (_truncated_gzip_layer, "truncated or corrupt"),
    "truncated-layer-tar": (_truncated_layer_tar, "truncated or corrupt"),
    "not-a-tar": (_not_a_tar, "cannot read archive"),
    "manifest-not-json": (_manifest_not_json, "not valid JSON"),
    "manifest-without-layers": (_manifest_without_layers, "lacks Config or Layers"),
    "diff-ids-count-mismatch": (_diff_ids_count_mismatch, "1 layers but 2 diff ids"),
    "layer-digest-mismatch": (_layer_digest_mismatch, "does not match diff id"),
    "oci-blob-digest-mismatch": (_oci_blob_digest_mismatch, "does not match"),
    "oci-tar-blob-digest-mismatch": (_oci_tar_blob_digest_mismatch, "does not match"),
    "oci-index-missing-blob": (_oci_index_missing_blob, "is missing"),
    "archive-member-absolute": (_archive_member_absolute, "absolute path"),
    "archive-member-dotdot": (_archive_member_dotdot, "escapes the archive root"),
    "archive-dir-layer-outside": (_archive_dir_layer_outside, "escapes the archive root"),
    "archive-dir-symlinked-layer": (_archive_dir_symlinked_layer, "points outside the directory"),
    # JSON of the wrong shape: must be refused like any other broken archive
    "manifest-layers-not-strings": (_layers_not_strings, ""),
    "config-not-object": (_config_not_object, "no rootfs.diff_ids"),
    "config-rootfs-not-object": (_config_rootfs_not_object, ""),
    "config-diff-id-not-string": (_config_diff_id_not_string, ""),
    "oci-index-entry-not-object": (_oci_index_entry_not_object, ""),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_archive_refused(rl, images, tmp_path, outside, case):
    build, reason = MALFORMED[case]
    refuse_load(rl, build(tmp_path, images, outside), outside, reason)


def test_valid_docker_archive_from_helper_loads(rl, tmp_path):
    """The helpers build archives the tool accepts: the refusals above come from the defects."""
    rl("load", "-i", docker_archive(tmp_path / "good.tar", [GOOD_LAYER]))
    assert rl("images", "-q").out.strip() != ""
    assert rl.leftovers() == []


def test_valid_oci_layout_from_helper_loads(rl, tmp_path):
    res = rl("load", "-i", oci_layout(tmp_path / "oci", [GOOD_LAYER]))
    assert res.out == "Loaded image: hostile:latest\n"
    assert rl.leftovers() == []


# ---- the store stays usable --------------------------------------------------------------------
def test_valid_load_after_failed_load(rl, images, tmp_path, outside, escape):
    layer = tar_bytes(hostile_layers(outside, escape)["symlink-escape-absolute"])
    refuse_load(rl, docker_archive(tmp_path / "hostile.tar", [layer]), outside, "symlink")
    refuse_load(rl, _truncated_archive(tmp_path, images, outside), outside, "cannot read archive")
    rl.load(images, "busybox")
    assert rl.leftovers() == []
    assert rl("images", "-q").out.strip() != ""
    assert rl("run", "--rm", "busybox", "echo", "ok").out == "ok\n"


# ---- simple failures ---------------------------------------------------------------------------
def test_run_unknown_image(rl):
    res = rl("run", "--rm", "--pull", "never", "nosuchimage:1", "true", expect=125)
    assert_one_error(res.err)
    assert "No such image: nosuchimage:1" in res.err


def test_run_unknown_image_from_a_blocked_registry(rl):
    """The tests block docker.io: a missing short name is looked for there and refused at once."""
    res = rl("run", "--rm", "nosuchimage:1", "true", expect=125)
    assert res.err.startswith("Unable to find image 'nosuchimage:1' locally\n")
    assert "registry docker.io is blocked by the configuration" in res.err


def test_load_nonexistent_path(rl):
    res = rl("load", "-i", "/nonexistent", expect=125)
    assert_one_error(res.err)
    assert_store_empty(rl)
