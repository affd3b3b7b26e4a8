"""End to end: load, import, list and remove images, and what their layers look like inside.

Runs the installed CLI as an unprivileged user with real user namespaces.
"""

from __future__ import annotations

import gzip
import json
import os
import pwd
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.userns

FORMATS = ["tar", "dir", "oci", "oci-tar"]
HEADER = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
HEX64 = re.compile(r"[0-9a-f]{64}")


# ---- helpers ---------------------------------------------------------------------------
def config_id(images: Path, key: str) -> str:
    """The 12-char image id of a test image: its config digest, from mkimages' digests.json."""
    digests = json.loads((images / "digests.json").read_text())
    return digests[key]["config"].removeprefix("sha256:")[:12]


def table(out: str) -> tuple[list[str], list[list[str]]]:
    """`rootless images` output as (header columns, rows), columns split on 2+ spaces."""
    lines = [line for line in out.splitlines() if line.strip()]
    split = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return split[0], split[1:]


def layer_dirs(rl) -> list[Path]:
    d = rl.root / "layers"
    return sorted(p for p in d.iterdir() if p.is_dir() and HEX64.fullmatch(p.name)) if d.is_dir() else []


def blob_files(rl) -> list[Path]:
    d = rl.root / "blobs" / "sha256"
    return sorted(d.iterdir()) if d.is_dir() else []


def image_ids(rl) -> list[str]:
    return rl("images", "-q").out.split()


def subid_start(path: str) -> int:
    """Where this user's first range in /etc/subuid or /etc/subgid starts (container id 1 maps there)."""
    uid = os.getuid()
    name = pwd.getpwuid(uid).pw_name
    with open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in (name, str(uid)):
                return int(parts[1])
    pytest.fail(f"no {path} range for {name}")


def sh(rl, script: str, *, user: str | None = None) -> list[str]:
    """Run a shell script in the layered image; its stdout lines."""
    args = ["run", "--rm"] + (["-u", user] if user else []) + ["--entrypoint", "/bin/sh", "layered",
                                                                "-c", script]
    return rl(*args).out.splitlines()


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("rootless: error:")]


# ---- load --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_load_each_format(rl, images, fmt):
    path = images / {"tar": "busybox.tar", "dir": "busybox.dir", "oci": "busybox.oci",
                     "oci-tar": "busybox-oci.tar"}[fmt]
    res = rl("load", "-i", path)
    assert res.out == "Loaded image: busybox:latest\n"
    assert rl.leftovers() == []

    header, rows = table(rl("images").out)
    assert header == HEADER
    want_id = config_id(images, "busybox")
    assert len(rows) == 1
    repo, tag, image_id, _created, _size = rows[0]
    assert (repo, tag, image_id) == ("busybox", "latest", want_id)
    assert rl("images", "-q").out == want_id + "\n"


def test_load_is_idempotent(rl, images):
    rl.load(images, "busybox")
    blobs = blob_files(rl)
    layers = layer_dirs(rl)
    res = rl("load", "-i", images / "busybox.tar")
    assert res.out == "Loaded image: busybox:latest\n"
    assert rl.leftovers() == []
    assert image_ids(rl) == [config_id(images, "busybox")]
    assert blob_files(rl) == blobs
    assert layer_dirs(rl) == layers
    assert len(layers) == 1


def test_layered_shares_base_layer(rl, images):
    rl.load(images, "busybox")
    assert len(layer_dirs(rl)) == 1
    rl.load(images, "layered", "oci")
    assert rl.leftovers() == []
    assert len(layer_dirs(rl)) == 3  # base layer stored once, not 4 dirs
    assert sorted(image_ids(rl)) == sorted([config_id(images, "busybox"), config_id(images, "layered")])


# ---- import ------------------------------------------------------------------------------
def test_import_with_name_and_run(rl, images):
    res = rl("import", images / "busybox-rootfs.tar", "myfs:1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", res.out)
    assert rl.leftovers() == []
    _, rows = table(rl("images").out)
    assert [r[:3] for r in rows] == [["myfs", "1", res.out[7:19]]]
    assert rl("run", "--rm", "myfs:1", "/bin/busybox", "echo", "hi").out == "hi\n"


def test_import_without_name(rl, images):
    res = rl("import", images / "busybox-rootfs.tar")
    image_id = res.out.strip()
    assert image_id.startswith("sha256:")
    _, rows = table(rl("images").out)
    assert [r[:3] for r in rows] == [["<none>", "<none>", image_id[7:19]]]
    assert image_ids(rl) == [image_id[7:19]]


def test_run_imported_image_without_command(rl, images):
    rl("import", images / "busybox-rootfs.tar", "myfs:1")
    res = rl("run", "--rm", "myfs:1", expect=125)
    assert "no command specified" in res.err
    assert len(error_lines(res.err)) == 1


def test_inspect_of_an_imported_image_has_dockers_config_fields(rl, images):
    """An imported image's config is empty; inspect shows the fields Docker's image Config always
    has (Env, Cmd, Entrypoint null), and a template reads them as Docker's typed fields."""
    rl("import", images / "busybox-rootfs.tar", "myfs:1")
    config = json.loads(rl("image", "inspect", "myfs:1").out)[0]["Config"]
    assert {k: config[k] for k in ("Env", "Cmd", "Entrypoint", "Labels", "WorkingDir", "User")} == {
        "Env": None, "Cmd": None, "Entrypoint": None, "Labels": None, "WorkingDir": "", "User": ""}
    out = rl("image", "inspect", "-f", "{{.Config.Env}} {{.Config.Cmd}} {{.Config.Labels}} {{json .Config.Env}}",
             "myfs:1").out
    assert out == "[] [] map[] null\n"
    assert rl("inspect", "-f", "{{.Config.Entrypoint}}", "myfs:1").out == "[]\n"


def test_import_gzip_tarball(rl, images, tmp_path):
    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress((images / "busybox-rootfs.tar").read_bytes()))
    res = rl("import", gz, "gz:1")
    assert res.out.startswith("sha256:")
    assert rl.leftovers() == []
    assert rl("run", "--rm", "gz:1", "/bin/busybox", "echo", "from gzip").out == "from gzip\n"


# ---- rmi ---------------------------------------------------------------------------------
def test_rmi_removes_image_layers_and_blobs(rl, images):
    rl.load(images, "busybox")
    assert layer_dirs(rl) and blob_files(rl)
    digests = json.loads((images / "digests.json").read_text())
    res = rl("rmi", "busybox")
    assert res.out.splitlines() == ["Untagged: busybox:latest", f"Deleted: {digests['busybox']['config']}"]
    assert rl("images", "-q").out == ""
    assert layer_dirs(rl) == []
    assert blob_files(rl) == []
    assert rl.leftovers() == []


def test_rmi_unknown_image(rl, images):
    rl.load(images, "busybox")
    res = rl("rmi", "nosuchimage", expect=125)
    errors = error_lines(res.err)
    assert len(errors) == 1 and "nosuchimage" in errors[0]
    assert image_ids(rl) == [config_id(images, "busybox")]


def test_rmi_image_used_by_stopped_container(rl, images):
    rl.load(images, "busybox")
    rl("run", "--name", "keep", "busybox", "true")
    (cid,) = [p.name for p in (rl.root / "containers").iterdir() if not p.name.startswith(".")]

    res = rl("rmi", "busybox", expect=125)
    errors = error_lines(res.err)
    assert len(errors) == 1
    assert "container" in errors[0] and cid[:12] in errors[0]
    assert image_ids(rl) == [config_id(images, "busybox")]

    res = rl("rmi", "-f", "busybox")
    assert "Untagged: busybox:latest" in res.out.splitlines()
    assert rl("images", "-q").out == ""


# ---- what the layers look like inside the container and on the host ---------------------------
def test_owners_and_modes_kept(rl, images):
    rl.load(images, "layered")
    lines = sh(rl, 'stat -c "%u %g %a %n" /home/app/owned-by-app.txt /data/nobody.txt '
                   "/usr/local/bin/suid-tool")
    assert lines == [
        "1000 1000 644 /home/app/owned-by-app.txt",
        "65534 65534 640 /data/nobody.txt",
        "0 0 4755 /usr/local/bin/suid-tool",
    ]


def test_owner_on_host_is_subordinate_uid(rl, images):
    rl.load(images, "layered")
    (path,) = [p / "home/app/owned-by-app.txt" for p in layer_dirs(rl)
               if (p / "home/app/owned-by-app.txt").exists()]
    st = os.lstat(path)
    # container uid 0 is this user, container uids 1.. start at the subuid range
    assert st.st_uid == subid_start("/etc/subuid") + 1000 - 1
    assert st.st_gid == subid_start("/etc/subgid") + 1000 - 1


def test_whiteout_removes_file(rl, images):
    rl.load(images, "layered")
    assert sh(rl, "test -e /data/delete-me.txt && echo present || echo absent; cat /data/keep.txt") == [
        "absent", "keep"]


def test_opaque_dir_hides_lower_content(rl, images):
    rl.load(images, "layered")
    assert sh(rl, "ls -A /data/opaque") == ["new.txt"]


def test_hardlinks_share_inode(rl, images):
    rl.load(images, "layered")
    src, dst = sh(rl, "stat -c %i /data/hardlink-src.txt /data/hardlink-dst.txt")
    assert src == dst
    assert sh(rl, "cat /data/hardlink-dst.txt") == ["linked"]


def test_absolute_symlink_resolves_inside_container(rl, images):
    rl.load(images, "layered")
    assert sh(rl, "readlink /data/abs-link; cat /data/abs-link") == ["/data/keep.txt", "keep"]


def test_empty_dir_exists_and_is_empty(rl, images):
    rl.load(images, "layered")
    # the directory is 0700 root: look at it as container root, not as the image's user
    assert sh(rl, "test -d /data/empty-dir && echo dir; ls -A /data/empty-dir", user="0") == ["dir"]
