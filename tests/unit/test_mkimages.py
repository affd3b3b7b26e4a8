"""Tests for scripts/mkimages.py: reproducibility and image format validity."""

import gzip
import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).parents[2]
SCRIPT = REPO_ROOT / "scripts" / "mkimages.py"
BUSYBOX = "/bin/busybox"
IMAGES = ("busybox", "layered", "demo")
REPOS = {"busybox": "busybox", "layered": "layered", "demo": "rootless-demo"}
MTIME = 1767225600

pytestmark = pytest.mark.skipif(
    not Path(BUSYBOX).is_file(), reason=f"{BUSYBOX} (busybox-static) is not installed"
)


def load_mkimages():
    spec = importlib.util.spec_from_file_location("mkimages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mkimages"] = module
    spec.loader.exec_module(module)
    return module


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def tar_read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(name).read()


@pytest.fixture(scope="module")
def mkimages():
    return load_mkimages()


@pytest.fixture(scope="module")
def builds(mkimages, tmp_path_factory):
    """Two independent builds of every output."""
    dirs = [tmp_path_factory.mktemp(f"images{i}") for i in range(2)]
    results = [mkimages.build_all(str(d), BUSYBOX) for d in dirs]
    return dirs, results


@pytest.fixture(scope="module")
def out(builds) -> Path:
    return builds[0][0]


# --------------------------------------------------------------------------
# Outputs and reproducibility
# --------------------------------------------------------------------------


def test_build_all_returns_every_output(builds):
    (out_dir, _), (result, _) = builds
    expected = {"busybox-rootfs.tar", "digests.json"}
    for name in IMAGES:
        expected |= {f"{name}.oci", f"{name}-oci.tar", f"{name}.tar", f"{name}.dir"}
    assert set(result) == expected
    for name, path in result.items():
        assert Path(path) == out_dir / name
        assert Path(path).exists()
    leftovers = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_outputs_are_byte_identical(builds):
    (dir_a, dir_b), _ = builds
    assert json.loads((dir_a / "digests.json").read_bytes()) == json.loads(
        (dir_b / "digests.json").read_bytes()
    )
    names = ["digests.json", "busybox-rootfs.tar"]
    names += [f"{n}{suffix}" for n in IMAGES for suffix in (".tar", "-oci.tar")]
    for name in names:
        assert (dir_a / name).read_bytes() == (dir_b / name).read_bytes(), name
    for name in IMAGES:
        for tree in (f"{name}.oci", f"{name}.dir"):
            files_a = {p.relative_to(dir_a): p.read_bytes()
                       for p in (dir_a / tree).rglob("*") if p.is_file()}
            files_b = {p.relative_to(dir_b): p.read_bytes()
                       for p in (dir_b / tree).rglob("*") if p.is_file()}
            assert files_a == files_b, tree


def test_rebuild_in_place_and_only(mkimages, out, tmp_path):
    result = mkimages.build_all(str(tmp_path), BUSYBOX, only={"busybox", "rootfs"})
    assert set(result) == {"busybox.oci", "busybox-oci.tar", "busybox.tar",
                           "busybox.dir", "busybox-rootfs.tar", "digests.json"}
    again = mkimages.build_all(str(tmp_path), BUSYBOX, only={"busybox"})
    assert "busybox-rootfs.tar" not in again
    assert (tmp_path / "busybox.tar").read_bytes() == (out / "busybox.tar").read_bytes()
    digests = json.loads((tmp_path / "digests.json").read_bytes())
    assert set(digests) == {"busybox"}
    with pytest.raises(ValueError):
        mkimages.build_all(str(tmp_path), BUSYBOX, only={"nope"})


def test_tar_entries_are_normalized(out):
    for name in ["busybox-rootfs.tar", "layered.tar", "layered-oci.tar"]:
        with tarfile.open(out / name) as tar:
            members = tar.getmembers()
        assert members
        for m in members:
            assert m.mtime == MTIME, (name, m.name)
            assert m.uname == "" and m.gname == "", (name, m.name)
            assert not m.name.startswith(("/", "./")), (name, m.name)


def test_oci_tar_matches_oci_directory(out):
    for name in IMAGES:
        data = (out / f"{name}-oci.tar").read_bytes()
        members = tar_members(data)
        assert list(members)[:4] == ["oci-layout", "index.json", "blobs", "blobs/sha256"]
        tree = out / f"{name}.oci"
        files = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}
        assert files == {n for n, m in members.items() if m.isfile()}
        for rel in files:
            assert tar_read(data, rel) == (tree / rel).read_bytes()


# --------------------------------------------------------------------------
# OCI layout
# --------------------------------------------------------------------------


def read_blob(layout: Path, desc: dict) -> bytes:
    algo, hexdigest = desc["digest"].split(":")
    blob = (layout / "blobs" / algo / hexdigest).read_bytes()
    assert sha256(blob) == desc["digest"]
    assert len(blob) == desc["size"]
    return blob


def oci_image(out: Path, name: str):
    layout = out / f"{name}.oci"
    index = json.loads((layout / "index.json").read_bytes())
    (desc,) = index["manifests"]
    manifest = json.loads(read_blob(layout, desc))
    config = json.loads(read_blob(layout, manifest["config"]))
    return layout, index, desc, manifest, config


def oci_layers(out: Path, name: str) -> list[bytes]:
    layout, _, _, manifest, _ = oci_image(out, name)
    return [gzip.decompress(read_blob(layout, d)) for d in manifest["layers"]]


@pytest.mark.parametrize("name", IMAGES)
def test_oci_layout(out, mkimages, name):
    layout, index, desc, manifest, config = oci_image(out, name)
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert index["schemaVersion"] == 2
    assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert desc["annotations"] == {
        "org.opencontainers.image.ref.name": "latest",
        "io.containerd.image.name": f"docker.io/library/{REPOS[name]}:latest",
    }
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    diff_ids = [sha256(t) for t in oci_layers(out, name)]
    assert diff_ids == config["rootfs"]["diff_ids"]
    assert config["rootfs"]["type"] == "layers"
    assert config["os"] == "linux"
    assert config["architecture"] == mkimages.host_architecture()
    assert config["created"] == "2026-01-01T00:00:00Z"
    assert len(config["history"]) == len(diff_ids)

    digests = json.loads((out / "digests.json").read_bytes())[name]
    assert digests["manifest"] == desc["digest"]
    assert digests["config"] == manifest["config"]["digest"]
    assert digests["diff_ids"] == diff_ids


# --------------------------------------------------------------------------
# docker save archive
# --------------------------------------------------------------------------


def docker_image(out: Path, name: str):
    data = (out / f"{name}.tar").read_bytes()
    (manifest,) = json.loads(tar_read(data, "manifest.json"))
    config_bytes = tar_read(data, manifest["Config"])
    layers = [tar_read(data, path) for path in manifest["Layers"]]
    return data, manifest, config_bytes, layers


@pytest.mark.parametrize("name", IMAGES)
def test_docker_archive(out, name):
    data, manifest, config_bytes, layers = docker_image(out, name)
    config = json.loads(config_bytes)
    assert manifest["Config"] == sha256(config_bytes).split(":")[1] + ".json"
    assert manifest["RepoTags"] == [f"{REPOS[name]}:latest"]
    diff_ids = [sha256(layer) for layer in layers]
    assert diff_ids == config["rootfs"]["diff_ids"]
    for path, diff_id in zip(manifest["Layers"], diff_ids, strict=True):
        hexid = diff_id.split(":")[1]
        assert path == f"{hexid}/layer.tar"
        assert tar_read(data, f"{hexid}/VERSION") == b"1.0"
        assert json.loads(tar_read(data, f"{hexid}/json"))["id"] == hexid
    repositories = json.loads(tar_read(data, "repositories"))
    assert repositories == {REPOS[name]: {"latest": diff_ids[-1].split(":")[1]}}

    # Same config bytes (hence the same image ID) as the OCI layout.
    _, _, _, oci_manifest, _ = oci_image(out, name)
    assert oci_manifest["config"]["digest"] == sha256(config_bytes)
    # The unpacked directory holds exactly the archive's files.
    tree = out / f"{name}.dir"
    for member in tar_members(data).values():
        if member.isfile():
            assert (tree / member.name).read_bytes() == tar_read(data, member.name)


# --------------------------------------------------------------------------
# Image contents
# --------------------------------------------------------------------------


def test_busybox_layer(out, mkimages):
    (layer,) = oci_layers(out, "busybox")
    members = tar_members(layer)
    assert (out / "busybox-rootfs.tar").read_bytes() == layer
    busybox = members["bin/busybox"]
    assert busybox.isfile() and busybox.mode == 0o755
    assert busybox.size == Path(BUSYBOX).stat().st_size
    for applet in mkimages.list_applets(BUSYBOX):
        link = members[f"bin/{applet}"]
        assert link.issym() and link.linkname == "busybox", applet
    assert "sh" in mkimages.list_applets(BUSYBOX)
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    for d in ["bin", "etc", "home", "root", "var", "usr", "usr/bin", "usr/sbin",
              "sbin", "dev", "proc", "sys"]:
        assert members[d].isdir() and members[d].mode == 0o755, d
    home = members["home/app"]
    assert home.isdir() and (home.uid, home.gid) == (1000, 1000)
    passwd = tar_read(layer, "etc/passwd").decode()
    assert passwd.endswith("\n")
    assert "app:x:1000:1000:app:/home/app:/bin/sh" in passwd.splitlines()
    assert "users:x:100:app" in tar_read(layer, "etc/group").decode().splitlines()

    _, _, _, _, config = oci_image(out, "busybox")
    assert config["config"]["Cmd"] == ["sh"]
    assert config["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ]


def test_shared_base_layer(out):
    base = oci_layers(out, "busybox")[0]
    assert oci_layers(out, "layered")[0] == base
    assert oci_layers(out, "demo")[0] == base


def test_layered_layer2(out):
    layer2 = oci_layers(out, "layered")[1]
    members = tar_members(layer2)
    names = list(members)
    for parent in ["data", "data/opaque", "data/opaque/sub", "usr", "usr/local",
                   "usr/local/bin", "home", "home/app", "data/vol"]:
        assert members[parent].isdir(), parent

    owned = members["home/app/owned-by-app.txt"]
    assert (owned.uid, owned.gid, owned.mode) == (1000, 1000, 0o644)
    nobody = members["data/nobody.txt"]
    assert (nobody.uid, nobody.gid, nobody.mode) == (65534, 65534, 0o640)
    suid = members["usr/local/bin/suid-tool"]
    assert (suid.uid, suid.mode) == (0, 0o4755)
    assert tar_read(layer2, "usr/local/bin/suid-tool") == b"#!/bin/sh\necho suid\n"

    link = members["data/hardlink-dst.txt"]
    assert link.islnk() and link.linkname == "data/hardlink-src.txt"
    assert names.index("data/hardlink-src.txt") < names.index("data/hardlink-dst.txt")
    assert tar_read(layer2, "data/hardlink-src.txt") == b"linked\n"

    rel, absl = members["data/rel-link"], members["data/abs-link"]
    assert rel.issym() and rel.linkname == "keep.txt"
    assert absl.issym() and absl.linkname == "/data/keep.txt"
    assert members["data/empty-dir"].isdir() and members["data/empty-dir"].mode == 0o700
    assert tar_read(layer2, "data/vol/seed.txt") == b"seed\n"
    assert tar_read(layer2, "data/keep.txt") == b"keep\n"
    assert tar_read(layer2, "data/delete-me.txt") == b"bye\n"


def test_layered_layer3(out):
    layer3 = oci_layers(out, "layered")[2]
    members = tar_members(layer3)
    assert set(members) == {
        "data", "data/.wh.delete-me.txt", "data/opaque", "data/opaque/.wh..wh..opq",
        "data/opaque/new.txt", "data/added-in-layer3.txt",
    }
    for marker in ["data/.wh.delete-me.txt", "data/opaque/.wh..wh..opq"]:
        assert members[marker].isfile() and members[marker].size == 0
    assert tar_read(layer3, "data/opaque/new.txt") == b"new\n"
    assert tar_read(layer3, "data/added-in-layer3.txt") == b"three\n"


def test_layered_config(out):
    _, _, _, _, config = oci_image(out, "layered")
    cfg = config["config"]
    assert cfg["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LAYERED=yes",
        "GREETING=hello world",
    ]
    assert cfg["Entrypoint"] == ["/bin/echo", "entry:"]
    assert cfg["Cmd"] == ["default-cmd"]
    assert cfg["WorkingDir"] == "/data"
    assert cfg["User"] == "app"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data/vol": {}}
    assert cfg["Labels"] == {"org.example.test": "layered", "maintainer": "rootless tests"}
    assert cfg["StopSignal"] == "SIGTERM"
    assert len(config["history"]) == 3


def test_demo_image(out):
    layer = oci_layers(out, "demo")[1]
    members = tar_members(layer)
    assert members["usr/local/bin/demo"].mode == 0o755
    script = tar_read(layer, "usr/local/bin/demo").decode()
    assert script.startswith("#!/bin/sh\n")
    for needle in ["/etc/motd", "id", "hostname", "/proc/[0-9]*", "uname -sr"]:
        assert needle in script
    assert "Hello from a rootless container!" in tar_read(layer, "etc/motd").decode()
    _, _, _, _, config = oci_image(out, "demo")
    assert config["config"]["Cmd"] == ["/usr/local/bin/demo"]
    assert config["config"]["Labels"] == {"org.opencontainers.image.title": "rootless demo"}


def test_cli(tmp_path, out):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--only", "rootfs"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "busybox-rootfs.tar").read_bytes() == (
        out / "busybox-rootfs.tar"
    ).read_bytes()
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--only", "bogus"],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode != 0
