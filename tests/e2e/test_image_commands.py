"""Image commands beyond load/run: images (digests, filters, formats), history, save/load round trips,
tag, image prune, system df, the `image` group, rmi while a container uses the image."""

from __future__ import annotations

import json
import re
import tarfile

import pytest

from tests.conftest import Rootless

pytestmark = pytest.mark.userns


@pytest.fixture
def two(rl, images) -> Rootless:
    rl.load(images, "busybox")
    rl.load(images, "layered")
    return rl


def ids(rl: Rootless, *args: str) -> list[str]:
    return rl("images", "-q", *args).out.split()


def image_id(rl: Rootless, ref: str) -> str:
    return rl("inspect", "-f", "{{.Id}}", ref).out.strip()


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_rmi_load_round_trip(two, tmp_path, fmt):
    before = {ref: (image_id(two, ref), two("inspect", "-f", "{{json .RootFS}}", ref).out)
              for ref in ("busybox", "layered")}
    out = tmp_path / "images.tar"
    two("save", "--format", fmt, "-o", out, "busybox", "layered")
    with tarfile.open(out) as t:
        names = t.getnames()
    assert ("manifest.json" in names) == (fmt == "docker-archive")
    assert ("index.json" in names and "oci-layout" in names) == (fmt == "oci-archive")
    two("rmi", "busybox", "layered")
    assert ids(two) == []
    loaded = two("load", "-i", out).out
    assert "busybox:latest" in loaded and "layered:latest" in loaded
    for ref, (iid, rootfs) in before.items():
        assert image_id(two, ref) == iid
        assert two("inspect", "-f", "{{json .RootFS}}", ref).out == rootfs
    assert two("run", "--rm", "layered", "true").code == 0


def test_save_refuses_bad_input_and_leaves_nothing(two, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = two("save", "--format", "zip", "-o", out / "x.tar", "busybox", expect=125)
    assert "unknown --format" in r.err
    r = two("save", "-o", out / "y.tar", "busybox", "nosuch", expect=125)
    assert "nosuch" in r.err
    assert list(out.iterdir()) == []  # no archive, no temporary file


def test_images_filters_and_formats(two):
    two("tag", "busybox", "example.com/team/tool:2")
    rows = two("images", "--format", "{{.Repository}}:{{.Tag}}").out.split()
    assert sorted(rows) == ["busybox:latest", "example.com/team/tool:2", "layered:latest"]
    assert two("images", "--filter", "reference=busy*", "--format", "{{.Repository}}").out.split() == ["busybox"]
    assert two("images", "-f", "reference=example.com/*/*", "--format", "{{.Tag}}").out.split() == ["2"]
    assert two("images", "-f", "dangling=true", "-q").out == ""
    assert len(set(ids(two, "-f", "dangling=false"))) == 2
    table = two("images", "--digests").out.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    r = two("images", "-f", "color=blue", expect=125)
    assert "invalid filter 'color'" in r.err


def test_tag_moves_and_image_group(two):
    two("tag", "busybox", "mine:1")
    assert image_id(two, "mine:1") == image_id(two, "busybox")
    two("tag", "layered", "mine:1")  # a tag names one image at a time
    assert image_id(two, "mine:1") == image_id(two, "layered")
    assert two("image", "ls", "-q").out == two("images", "-q").out
    assert json.loads(two("image", "inspect", "busybox").out)[0]["RepoTags"] == ["busybox:latest"]
    assert "Untagged: mine:1" in two("image", "rm", "mine:1").out


def test_history(two):
    lines = two("history", "layered").out.splitlines()
    assert lines[0].split()[:2] == ["IMAGE", "CREATED"]
    assert lines[1].startswith(image_id(two, "layered")[7:19])
    assert all(ln.startswith("<missing>") for ln in lines[2:])
    assert len(two("history", "-q", "layered").out.split()) == len(lines) - 1


def test_rmi_refused_while_used_then_prune(two):
    two("create", "--name", "user", "--network", "none", "busybox", "true")
    r = two("rmi", "busybox", expect=125)
    assert "used by container" in r.err
    two("tag", "layered", "spare:1")
    two("rmi", "layered")  # untags only: spare:1 still names it
    assert "Total reclaimed space: 0B" in two("image", "prune").out  # nothing dangling
    out = two("image", "prune", "-a", "-f").out
    assert "Deleted Images:" in out and "spare:1" in out
    assert ids(two) == [image_id(two, "busybox")[7:19]]  # the used one stays
    df = two("system", "df").out.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "1"] and df[2].split()[:3] == ["Containers", "1", "0"]


def test_content_trust_flags_are_accepted_or_refused_as_asked(two, tmp_path):
    """Docker's --disable-content-trust (true by default) on pull, push, build, run, create: accepted;
    =false asks for signature checks rootless cannot make, refused in one line before anything."""
    for argv in (("pull", "--disable-content-trust=false", "busybox"), ("push", "--disable-content-trust=false",
                                                                        "busybox", "127.0.0.1:1/x"),
                 ("build", "--disable-content-trust=false", str(tmp_path)),
                 ("create", "--disable-content-trust=false", "busybox")):
        r = two(*argv, expect=125)
        assert "content trust is not supported by rootless" in r.err and len(r.err.splitlines()) == 2, argv
    (tmp_path / "Dockerfile").write_text("FROM busybox\nLABEL trusted=no\n")
    two("build", "--disable-content-trust", "-q", "-t", "untrusted", str(tmp_path))
    assert two("create", "--disable-content-trust", "--name", "c", "untrusted").code == 0
    # BuildKit's --progress, as CI scripts pass it: the output is plain either way, quiet is -q
    r = two("build", "--progress=plain", "-t", "plain", str(tmp_path))
    assert "Step 2/2 : LABEL trusted=no" in r.err or "LABEL trusted=no" in r.err
    r = two("build", "--progress", "quiet", "-t", "quiet", str(tmp_path))
    assert r.err == "" and r.out.startswith("sha256:")
    assert "invalid progress mode 'fancy'" in two("build", "--progress", "fancy", str(tmp_path), expect=125).err


def test_save_piped_into_load_through_stdin(two, tmp_path):
    """``docker save IMG | docker load`` and ``docker load < image.tar``: load reads stdin without -i
    (kept in the store's temporary directory meanwhile, removed after); garbage is one line."""
    iid = image_id(two, "busybox")
    archive = (tmp_path / "b.tar")
    two("save", "-o", archive, "busybox")
    two("rmi", "busybox")
    r = two("load", "-q", input=archive.read_bytes())
    assert r.out == "Loaded image: busybox:latest\n" and image_id(two, "busybox") == iid
    r = two("load", input=b"not a tar\n", expect=125)
    assert "cannot read the archive from stdin" in r.err and len(r.err.splitlines()) == 2
    assert not any((two.root / "tmp").iterdir())  # nothing of either left


def test_system_df_verbose_and_formats(two):
    """Docker's ``system df -v`` (each image with its shared and unique bytes and containers, each
    container, each volume with its links) and ``--format`` (a template, or json as everywhere)."""
    two("run", "--name", "user", "-v", "kept:/data", "busybox", "sh", "-c", "echo 12345 > /data/f")
    out = two("system", "df", "-v").out
    sections = [s for s in out.split("\n\n") if s.strip()]
    assert sections[0] == "Images space usage:" and "Containers space usage:" in sections
    images = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith(("busybox ", "layered "))}
    assert images["busybox"][-1] == "1" and images["layered"][-1] == "0"  # the containers made from each
    assert images["layered"][-3] != "0B"  # layered is built on busybox: they share its layer
    assert re.search(r"^\w{12}\s+busybox\s+.*\s1\s+\S+\s+.*\suser$", out, re.M), out  # one local volume
    assert re.search(r"^kept\s+1\s+6B$", out, re.M) and out.rstrip().endswith("Build cache usage: 0B")
    assert two("system", "df", "--format", "{{.Type}}={{.TotalCount}}").out.splitlines()[:3] == [
        "Images=2", "Containers=1", "Local Volumes=1"]
    rows = [json.loads(line) for line in two("system", "df", "--format", "json").out.splitlines()]
    assert rows[0]["Type"] == "Images" and set(rows[0]) == {"Type", "TotalCount", "Active", "Size", "Reclaimable"}
    assert json.loads(two("ps", "-a", "--format", "json").out)["Names"] == "user"  # json: Docker's {{json .}}
