"""One copy of each layer (issue 25): an uncompressed layer is kept as its unpacked tree and a
small recipe (``blobs/sha256/HEX.tarsplit``), never as a tar beside the tree, and ``save``,
``push`` and the API's ``GET /images/{name}/get`` re-create its tar byte for byte (the same
digests); a tree changed after its unpacking is an error, never a different tar."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Rootless, one_error

pytestmark = pytest.mark.userns

CACHED_DEBIAN = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rootless-tests" \
    / "debian-bookworm-minbase.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def blobs_of(rl: Rootless) -> dict[str, int]:
    d = rl.root / "blobs" / "sha256"
    return {p.name: p.stat().st_size for p in d.iterdir()}


def saved_blobs(rl: Rootless, ref: str, tmp: Path, fmt: str = "docker-archive") -> dict[str, bytes]:
    out = tmp / f"saved-{fmt}.tar"
    rl("save", "--format", fmt, "-o", str(out), ref)
    with tarfile.open(out) as tf:
        return {m.name.rsplit("/", 1)[1]: tf.extractfile(m).read() for m in tf if m.isfile()
                and m.name.startswith("blobs/sha256/")}


def diff_ids(rl: Rootless, ref: str) -> list[str]:
    return json.loads(rl("inspect", "-f", "{{json .RootFS.Layers}}", ref).out)


def docker_archive(layers: list[bytes], tag: str = "odd:1") -> bytes:
    """A docker-archive of one image whose uncompressed layers are ``layers``, as given."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layers]}}).encode()
    files = {f"blobs/sha256/{sha(config)[7:]}": config}
    files.update({f"blobs/sha256/{sha(t)[7:]}": t for t in layers})
    files["manifest.json"] = json.dumps([{"Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": [tag],
                                          "Layers": [f"blobs/sha256/{sha(t)[7:]}" for t in layers]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def member(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
           uid: int = 0, gid: int = 0, linkname: str = "", pax: dict | None = None, **attrs) -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname = kind, mode, uid, gid, linkname
    info.mtime = 1767225600.5 if pax else 1767225600
    if pax:
        info.pax_headers = pax
    for k, v in attrs.items():
        setattr(info, k, v)
    if kind == tarfile.REGTYPE:
        info.size = len(data or b"")
    return info, data


def tar_of(members: list[tuple], fmt: int = tarfile.PAX_FORMAT, tail: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue() + tail


def odd_layers() -> dict[str, bytes]:
    """Layer tars a splitter could get wrong, each unpackable."""
    long_dir = "d" * 90 + "/" + "e" * 80
    return {
        "duplicates": tar_of([member("etc", kind=tarfile.DIRTYPE, mode=0o755),
                              member("etc/a", b"first\n"), member("etc/b", b"same size 1"),
                              member("etc/a", b"second, longer\n"), member("etc/b", b"same size 2"),
                              member("etc", kind=tarfile.DIRTYPE, mode=0o700)]),
        "hardlinks": tar_of([member("x", b"one\n", mode=0o4755, uid=1000, gid=1000),
                             member("y", kind=tarfile.LNKTYPE, linkname="x"),
                             member("x", b"two\n"),  # y keeps the first inode
                             member("z", kind=tarfile.LNKTYPE, linkname="y"),
                             member("w", b"one\n", uid=65534, gid=65534)]),
        "whiteouts": tar_of([member("gone", b"soon gone"), member(".wh.gone", b"data a whiteout should not have"),
                             member("dir", kind=tarfile.DIRTYPE, mode=0o755),
                             member("dir/.wh..wh..opq", b""), member("dir/kept", b"kept\n"),
                             member("dev0", kind=tarfile.CHRTYPE, devmajor=0, devminor=0),
                             member("null", kind=tarfile.CHRTYPE, devmajor=1, devminor=3),
                             member("null-link", kind=tarfile.LNKTYPE, linkname="null"),
                             member("fifo", kind=tarfile.FIFOTYPE), member("empty", b""),
                             member("sym", kind=tarfile.SYMTYPE, linkname="/etc/passwd")]),
        "pax": tar_of([member(long_dir, kind=tarfile.DIRTYPE, mode=0o755, pax={"comment": "a long name"}),
                       member(long_dir + "/" + "f" * 120, b"long\n" * 1000,
                              pax={"SCHILY.xattr.user.note": "kept", "uname": "nobody"}),
                       member("caf\u00e9-\u00fcnicode", b"utf-8 names\n", pax={"mtime": "1767225600.25"}),
                       member("big-uid", b"owner\n", uid=3000000, gid=3000000, pax={"uid": "3000000"})]),
        "gnu": tar_of([member("g" * 150, b"gnu long name\n"),
                       member("h" * 150, kind=tarfile.SYMTYPE, linkname="t" * 150)], fmt=tarfile.GNU_FORMAT,
                      tail=b"\0" * 10240 + b"trailing bytes after the end blocks"),
    }


def test_a_loaded_layer_is_kept_once_and_saved_byte_identical(rl, images, tmp_path):
    """busybox and layered (owners, special modes, hard links, symlinks, whiteouts, an opaque
    directory): no layer tar beside its tree; both archive formats give the very tars loaded."""
    for name in ("busybox", "layered"):
        rl.load(images, name)
    loaded = {}
    for name in ("busybox", "layered"):
        with tarfile.open(images / f"{name}.tar") as tf:
            for m in tf:
                if m.isfile():
                    data = tf.extractfile(m).read()
                    loaded[sha(data)[7:]] = data
    layers = set(diff_ids(rl, "busybox")) | set(diff_ids(rl, "layered"))
    kept = blobs_of(rl)
    for d in layers:
        assert d[7:] not in kept, "an uncompressed layer tar is kept beside its tree"
        assert d[7:] + ".tarsplit" in kept
        assert kept[d[7:] + ".tarsplit"] < 64 * 1024
    for fmt in ("docker-archive", "oci-archive"):
        saved = saved_blobs(rl, "layered", tmp_path, fmt)
        for d in diff_ids(rl, "layered"):
            assert sha(saved[d[7:]]) == d
            assert saved[d[7:]] == loaded[d[7:]]
    assert rl("run", "--rm", "layered", "cat", "/etc/passwd").code == 0
    rl.load(images, "layered")  # again: its layers are there, no second copy of them is written
    assert blobs_of(rl) == kept
    assert rl.leftovers() == []


def test_disk_use_of_a_layer_is_about_its_tar_not_twice(rl, images):
    """The store holds a loaded image's layers once: what it keeps besides the trees is a few
    per cent of the tars, and the whole store stays under 1.1x the tars it was given."""
    rl.load(images, "busybox")
    with tarfile.open(images / "busybox.tar") as tf:
        tars = sum(m.size for m in tf if m.isfile() and m.size > 100_000)  # the layer (a config is small)
    layer = diff_ids(rl, "busybox")[0][7:]
    beside = sum(s for n, s in blobs_of(rl).items() if n.startswith(layer))
    assert beside <= 0.05 * tars
    du = rl("unshare", "du", "-s", "--block-size=1", str(rl.root / "layers"), str(rl.root / "blobs")).out
    stored = sum(int(line.split()[0]) for line in du.splitlines())
    assert stored <= 1.1 * tars, (stored, tars)


@pytest.mark.parametrize("case", sorted(odd_layers()))
def test_odd_layer_tars_are_re_created_byte_for_byte(rl, tmp_path, case):
    layer = odd_layers()[case]
    archive = tmp_path / "odd.tar"
    archive.write_bytes(docker_archive([layer]))
    rl("load", "-i", str(archive))
    assert sha(layer)[7:] not in blobs_of(rl)
    assert saved_blobs(rl, "odd:1", tmp_path)[sha(layer)[7:]] == layer


def test_a_sparse_member_is_re_created_byte_for_byte(rl, tmp_path):
    """GNU tar's sparse members (old GNU and pax 1.0 forms): their data stays in the recipe."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(1 << 20)
        f.write(b"tail")
    (src / "plain").write_bytes(os.urandom(5000))
    for fmt in ("gnu", "pax"):
        tar = tmp_path / f"{fmt}.tar"
        subprocess.run(["tar", "--sparse", f"--format={fmt}", "--owner=0", "--group=0", "-C", str(src),
                        "-cf", str(tar), "sparse", "plain"], check=True)
        layer = tar.read_bytes()
        archive = tmp_path / f"{fmt}-image.tar"
        archive.write_bytes(docker_archive([layer], f"sparse:{fmt}"))
        rl("load", "-i", str(archive))
        assert sha(layer)[7:] not in blobs_of(rl)
        assert saved_blobs(rl, f"sparse:{fmt}", tmp_path)[sha(layer)[7:]] == layer
        r = rl("run", "--rm", f"sparse:{fmt}", "/sparse", expect=None)  # not a program: only its size matters
        assert r.code in (126, 127)


def test_a_changed_tree_fails_save_and_push_and_leaves_nothing(rl, images, registry, tmp_path):
    rl.load(images, "busybox")
    rl.configure(insecure=(registry.host,))
    layer = diff_ids(rl, "busybox")[0]
    passwd = rl.root / "layers" / layer[7:] / "etc" / "passwd"
    rl("unshare", "sh", "-c", f"printf X | dd of={passwd} bs=1 seek=2 conv=notrunc 2>/dev/null")  # same size
    out = tmp_path / "out.tar"
    r = rl("save", "-o", str(out), "busybox", expect=125)
    assert "changed since the layer was unpacked" in one_error(r) and "Traceback" not in r.err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tar")]
    r = rl("push", "busybox", f"{registry.host}/rt/changed:1", expect=125)
    assert "changed since the layer was unpacked" in r.err and "Traceback" not in r.err
    assert not registry.blob_path(layer).exists()
    rl("unshare", "sh", "-c", f"echo more >> {passwd}")  # another size: found before anything is written
    r = rl("save", "busybox", expect=125)
    assert "/etc/passwd is gone or changed size" in r.err and len(r.out) < 8192  # no byte of the layer


def test_push_and_pull_keep_the_digests(rl, images, registry):
    """A pushed layer kept as its tree: the registry gets the tar of the same digest (it checks
    it), and a pull of it gives the same image."""
    rl.load(images, "layered")
    rl.configure(insecure=(registry.host,))
    ref = f"{registry.host}/rt/split:1"
    image = rl("inspect", "-f", "{{.Id}}", "layered").out.strip()
    assert not set(blobs_of(rl)) & {d[7:] for d in diff_ids(rl, "layered")}  # no tar is kept
    rl("push", "layered", ref)
    for d in diff_ids(rl, "layered"):
        assert file_sha(registry.blob_path(d)) == d
    rl("rmi", "layered")
    rl("pull", ref)
    assert rl("inspect", "-f", "{{.Id}}", ref).out.strip() == image


def test_built_and_committed_layers_are_kept_once(rl, images, tmp_path):
    """A RUN step's layer, a COPY's and a commit's: kept as tree and recipe, saved byte-identical."""
    rl.load(images, "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN mkdir -p /srv && echo built > /srv/built && "
                                    "chmod 4755 /srv/built\nCOPY hello.txt /srv/\n")
    rl("build", "-q", "-t", "built:1", str(ctx))
    rl("run", "--name", "c1", "busybox", "sh", "-c", "echo committed > /committed")
    rl("commit", "c1", "committed:1")
    for ref in ("built:1", "committed:1"):
        kept = blobs_of(rl)
        saved = saved_blobs(rl, ref, tmp_path)
        for d in diff_ids(rl, ref):
            assert d[7:] not in kept and d[7:] + ".tarsplit" in kept
            assert sha(saved[d[7:]]) == d


def test_api_df_layers_size_is_what_is_on_disk(api, images):
    api.rl.load(images, "layered")  # shares busybox's layer
    files = api.rl("unshare", "find", str(api.rl.root / "layers"), str(api.rl.root / "blobs"), "-type", "f",
                   "-printf", "%s\\n").out.split()
    on_disk = sum(int(n) for n in files)
    status, body = api.request("GET", "/system/df")
    assert status == 200 and 0.99 * on_disk <= body["LayersSize"] <= 1.01 * on_disk, (body["LayersSize"], on_disk)


def test_api_get_of_an_image_gives_the_same_digests(api, tmp_path):
    assert not [n for n in blobs_of(api.rl) if len(n) == 64 and blobs_of(api.rl)[n] > 100_000]  # no tar kept
    out = tmp_path / "api.tar"
    api.docker("save", "-o", str(out), "busybox")
    with tarfile.open(out) as tf:
        doc = json.loads(tf.extractfile("manifest.json").read())
        for name in doc[0]["Layers"]:
            assert sha(tf.extractfile(name).read()) == "sha256:" + name.rsplit("/", 1)[1]


@pytest.fixture
def debian_rootfs(request) -> Path:
    """The real Debian minbase tarball: the cached one, else made by tests/e2e/conftest.py."""
    if CACHED_DEBIAN.exists():
        return CACHED_DEBIAN
    return request.getfixturevalue("debian_tar")


def test_a_real_debian_layer_is_kept_once_and_saved_byte_identical(rl, debian_rootfs, tmp_path):
    """Device nodes (skipped when unpacked), hard links, setuid programs, many owners and
    long names: the tar saved is the very tarball imported, and the store is about its size."""
    rl("import", str(debian_rootfs), "debian:split", timeout=300)
    layer = diff_ids(rl, "debian:split")[0]
    assert layer == file_sha(debian_rootfs)
    recipe = blobs_of(rl)[layer[7:] + ".tarsplit"]
    size = debian_rootfs.stat().st_size
    assert layer[7:] not in blobs_of(rl) and recipe < 0.05 * size
    du = rl("unshare", "du", "-s", "--block-size=1", str(rl.root / "layers"), str(rl.root / "blobs")).out
    assert sum(int(line.split()[0]) for line in du.splitlines()) <= 1.1 * size
    out = tmp_path / "debian.tar"
    rl("save", "-o", str(out), "debian:split", timeout=300)
    with tarfile.open(out) as tf:
        m = tf.getmember(f"blobs/sha256/{layer[7:]}")
        f = tf.extractfile(m)
        h = hashlib.sha256()
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert "sha256:" + h.hexdigest() == layer and m.size == size


def _bytes(human: str) -> float:
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    num = human.rstrip("kMGB")
    return float(num) * units[human[len(num):]]


def test_system_df_shows_what_is_on_disk(rl, images):
    """Images' SIZE is the bytes kept: a layer two images share counts once, the recipes and
    configs count, no tar is counted that is not there; the unused image's share is reclaimable."""
    rl.load(images, "busybox")
    rl.load(images, "layered")  # its first layer is busybox's
    rl("create", "--name", "user", "busybox", "true")
    files = rl("unshare", "find", str(rl.root / "layers"), str(rl.root / "blobs"), "-type", "f",
               "-printf", "%s\\n").out.split()
    on_disk = sum(int(n) for n in files)
    row = [ln.split() for ln in rl("system", "df").out.splitlines() if ln.startswith("Images")][0]
    assert row[1:3] == ["2", "1"]
    assert 0.99 * on_disk <= _bytes(row[3]) <= 1.01 * on_disk, (row, on_disk)
    reclaimable = _bytes(row[4])
    assert 0 < reclaimable < 0.1 * on_disk  # layered's own two small layers and config, not busybox's


def test_a_recipe_no_image_names_is_a_leftover_pruned(rl, images):
    """A load killed after it split a layer leaves a recipe: `system check` names it, `system
    prune` removes it; the recipes of images stay."""
    rl.load(images, "busybox")
    stray = rl.root / "blobs" / "sha256" / ("ab" * 32 + ".tarsplit")
    stray.write_bytes(b"RLSPLIT1" + bytes(8))
    problems = rl("system", "check", expect=1).out
    assert str(stray) in problems and "no image uses" in problems
    out = rl("system", "prune", "-f").out
    assert str(stray) in out and not stray.exists()
    layer = diff_ids(rl, "busybox")[0]
    assert (rl.root / "blobs" / "sha256" / f"{layer[7:]}.tarsplit").exists()
    assert "is consistent" in rl("system", "check").out


def test_a_store_with_both_copies_keeps_one_after_the_next_run(rl, images, tmp_path):
    """A store written before recipes (the tar beside its tree): the next run keeps the tree and a
    recipe, and the tar saved is the same."""
    rl.load(images, "busybox")
    layer = diff_ids(rl, "busybox")[0]
    blobs = rl.root / "blobs" / "sha256"
    tar = saved_blobs(rl, "busybox", tmp_path)[layer[7:]]
    (blobs / layer[7:]).write_bytes(tar)  # as the old store had it
    (blobs / f"{layer[7:]}.tarsplit").unlink()
    assert rl("run", "--rm", "busybox", "true").code == 0
    assert layer[7:] not in blobs_of(rl) and f"{layer[7:]}.tarsplit" in blobs_of(rl)
    assert saved_blobs(rl, "busybox", tmp_path)[layer[7:]] == tar
