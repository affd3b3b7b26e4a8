"""Volumes that try to reach out, end to end as the unprivileged user (issue 22): a copy-up raced
by another container on the same volume, ``:U`` through planted links, volumes on /proc, /sys
and /dev, bind sources that cannot be read, and images that hold the same layer more than once."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import _load_mkimages, one_error

pytestmark = pytest.mark.userns

SEED_DIRS = 40


@pytest.fixture(scope="module")
def mk():
    return _load_mkimages()


def _write(mk, out, key: str, layers: list, config: dict) -> str:
    image = mk.Image(key, key, layers, config)
    mk.write_image(str(out), image)
    return str(out / f"{key}.tar")


@pytest.fixture(scope="module")
def made(mk, tmp_path_factory):
    """Test images: ``seed`` (a directory of many directories with files, a VOLUME over it),
    ``procvol``/``devvol``/``sysvol`` (a VOLUME on /proc, /dev, /sys), ``twice`` (the same
    layer twice, the empty layer three times)."""
    out = tmp_path_factory.mktemp("escape-images")
    base = mk.Layer(mk.make_layer_tar(mk.busybox_entries(mk.DEFAULT_BUSYBOX)), "busybox")
    entries = []
    for i in range(SEED_DIRS):
        entries += [mk.dir_entry(f"seed/d{i:02}", 0o755, 1000, 1000),
                    mk.file_entry(f"seed/d{i:02}/.bashrc", "echo pwned\n", 0o644, 1000, 1000)]
        entries += [mk.file_entry(f"seed/d{i:02}/f{j}", f"{i}/{j}\n") for j in range(5)]
    entries.append(mk.file_entry("seed/sbin-tool", "#!/bin/sh\n", 0o4755))
    seed = mk.Layer(mk.make_layer_tar(entries), "seed")
    env = {"Env": [mk.DEFAULT_PATH], "Cmd": ["sh"]}
    paths = {"seed": _write(mk, out, "seed", [base, seed], dict(env, Volumes={"/seed": {}}))}
    for where in ("proc", "dev", "sys"):
        paths[f"{where}vol"] = _write(mk, out, f"{where}vol", [base], dict(env, Volumes={f"/{where}": {}}))
    dev_links = mk.Layer(mk.make_layer_tar([mk.dir_entry("dev", 0o755), mk.symlink("dev/fd", "/proc/self/fd"),
                                            mk.symlink("dev/stdin", "/proc/self/fd/0"),
                                            mk.symlink("dev/stdout", "/proc/self/fd/1"),
                                            mk.symlink("dev/stderr", "/proc/self/fd/2")]), "Debian's /dev links")
    paths["devlinks"] = _write(mk, out, "devlinks", [base, dev_links], dict(env, Volumes={"/dev": {}}))
    into_proc = mk.Layer(mk.make_layer_tar([mk.symlink("x", "/proc")]), "x -> /proc")
    paths["linkproc"] = _write(mk, out, "linkproc", [base, into_proc], env)
    extra = mk.Layer(mk.make_layer_tar([mk.file_entry("extra/f", "extra\n")]), "extra")
    empty = mk.Layer(mk.tar_bytes([]), "empty")
    paths["twice"] = _write(mk, out, "twice", [base, empty, extra, empty, extra, empty], env)
    paths["dup"] = _write(mk, out, "dup", [extra, extra], env)
    return paths


@pytest.fixture
def bb(rl, images):
    rl.load(images, "busybox")
    yield rl
    ids = rl("ps", "-aq", expect=None).out.split()
    if ids:
        rl("rm", "-f", *ids, expect=None)


# ---- item 1: copy-up and :U never follow a link the volume holds -------------------------------
def _home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# the user's own\n")
    (home / "notes").mkdir()
    return home


def _snapshot(home) -> dict:
    out = {}
    for top, dirs, files in os.walk(home):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            out[os.path.relpath(p, home)] = (st.st_mode, st.st_uid, st.st_size,
                                             open(p).read() if os.path.isfile(p) else None)
    return out


def test_copy_up_raced_by_a_container_swapping_directories_for_links_writes_nothing_outside(bb, made, tmp_path):
    home = _home(tmp_path)
    before = _snapshot(home)
    bb("load", "-i", made["seed"])
    # container B: every new directory in the shared volume becomes a link to the user's home
    swapper = (f"while :; do for d in /v/d*; do if [ -d \"$d\" ] && [ ! -L \"$d\" ]; then "
               f"rm -rf \"$d\"; ln -s {home} \"$d\"; fi; done; done")
    for i in range(6):
        vol = f"shared{i}"
        bb("volume", "create", vol)
        bb("run", "-d", "--name", f"swapper{i}", "-v", f"{vol}:/v", "busybox", "sh", "-c", swapper)
        # container A: the image's /seed fills the empty volume (it may fail: B removes what it makes)
        r = bb("run", "--rm", "-v", f"{vol}:/seed", "seed", "true", expect=None)
        assert r.code == 0 or "internal error" not in r.err, r.err
        bb("rm", "-f", f"swapper{i}")
        assert _snapshot(home) == before, f"try {i}: the copy-up wrote through a planted link"


@pytest.mark.parametrize("method", ["kernel", "fuse", "copy"])
def test_copy_up_keeps_owners_modes_and_times_and_copies_from_the_image(bb, made, method):
    bb.configure(overlay=method)
    bb("load", "-i", made["seed"])
    out = bb("run", "--rm", "-v", "kept:/seed", "seed", "sh", "-c",
             "stat -c '%a %u %g %Y' /seed/sbin-tool /seed/d07 /seed/d07/.bashrc; cat /seed/d07/f3").out
    tool, d07, bashrc, f3 = out.splitlines()
    assert tool.split()[:3] == ["4755", "0", "0"]  # setuid survives the chown
    assert d07.split()[:3] == ["755", "1000", "1000"] and bashrc.split()[:3] == ["644", "1000", "1000"]
    assert {tool.split()[3], d07.split()[3], bashrc.split()[3]} == {str(1767225600)}
    assert f3 == "7/3"


def test_chown_of_U_does_not_follow_links_in_the_volume(bb, tmp_path):
    home = _home(tmp_path)
    before = _snapshot(home)
    bb("run", "--rm", "-v", "owned:/v", "busybox", "sh", "-c",
       f"mkdir /v/sub && ln -s {home} /v/link && ln -s {home}/.bashrc /v/sub/file")
    bb("run", "--rm", "-u", "1000:1000", "-v", "owned:/v:U", "busybox", "true")
    assert _snapshot(home) == before
    out = bb("run", "--rm", "-v", "owned:/v", "busybox", "stat", "-c", "%u %n", "/v", "/v/sub", "/v/link",
             "/v/sub/file").out
    assert [line.split()[0] for line in out.splitlines()] == ["1000"] * 4  # the links themselves


# ---- item 5: nothing on /proc; /dev and /sys volumes are filled from the image ---------------------
@pytest.mark.parametrize("args", [
    ["-v", "/proc"], ["-v", "vol:/proc"], ["-v", "vol:/proc/1"], ["--tmpfs", "/proc/sys"],
    ["--mount", "type=volume,dst=/proc/self"], ["-v", "{tmp}:/proc/x"],
])
def test_a_mount_on_or_under_proc_is_refused_before_anything_is_made(bb, tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = bb("run", "--rm", *args, "busybox", "true", expect=125)
    one_error(r, "/proc")
    assert bb("ps", "-aq").out == "" and bb("volume", "ls", "-q").out == ""


def test_an_images_volume_on_proc_is_refused_at_create(bb, made):
    bb("load", "-i", made["procvol"])
    one_error(bb("create", "procvol", expect=125), "/proc", "cannot be mounted")
    assert bb("ps", "-aq").out == "" and bb("volume", "ls", "-q").out == ""


def test_a_destination_that_reaches_proc_through_the_images_links_is_refused_at_start(bb, made):
    bb("load", "-i", made["linkproc"])
    one_error(bb("run", "--rm", "-v", "sneaky:/x/sys", "linkproc", "true", expect=125), "/proc/sys", "inside /proc")
    path = json.loads(bb("volume", "inspect", "sneaky").out)[0]["Mountpoint"]
    assert os.listdir(path) == []


@pytest.mark.parametrize("image", ["devvol", "sysvol", "devlinks"])
def test_an_images_volume_on_dev_or_sys_copies_nothing_live(bb, made, image):
    """``devlinks``: the image's /dev holds Debian's links (``fd -> /proc/self/fd``, ...), copied
    into the volume; the runtime's own links replace them, never following them into /proc."""
    bb("load", "-i", made[image])
    where = "/" + image[:3]
    r = bb("run", "--rm", image, "sh", "-c", f"ls -A {where} | grep -vxE 'null|zero|full|random|urandom|tty|pts|"
           f"shm|mqueue|fd|stdin|stdout|stderr|ptmx|core' | wc -l; echo ok > /dev/null", timeout=60)
    assert r.out.split() == ["0"]


def test_a_volume_under_dev_is_filled_from_the_image_not_from_dev(bb):
    r = bb("run", "--rm", "-v", "devx:/dev/x", "-v", "devpts:/dev/pts", "busybox", "sh", "-c",
           "(ls -A /dev/x; ls -A /dev/pts) | wc -l", timeout=60)
    assert r.out.strip() == "0"
    r = bb("run", "--rm", "-v", "/dev/null:/dev/mynull", "busybox", "sh", "-c", "echo x > /dev/mynull")
    assert r.code == 0


# ---- bind sources that are missing or unreadable: one line, 400 on the API ------------------------
def test_a_bind_source_that_cannot_be_read_is_one_line(bb, tmp_path):
    one_error(bb("run", "--rm", "-v", "/proc/1/root:/x", "busybox", "true", expect=125), "/proc/1/root")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    one_error(bb("run", "--rm", "-v", f"{locked}/sub:/x", "busybox", "true", expect=125), str(locked))
    one_error(bb("run", "--rm", "--mount", f"type=bind,src={tmp_path}/missing,dst=/x", "busybox", "true",
                 expect=125), "bind source path does not exist")
    assert not (tmp_path / "missing").exists()
    assert bb("ps", "-aq").out == ""


def test_the_api_answers_400_for_bad_mounts(bb, tmp_path):
    from tests.apiservice import ApiService
    api = ApiService(bb)
    try:
        for body in ({"Image": "busybox", "HostConfig": {"Binds": ["/proc/1/root:/x"]}},
                     {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": f"{tmp_path}/none",
                                                                      "Target": "/x"}]}},
                     {"Image": "busybox", "Volumes": {"/proc": {}}},
                     {"Image": "busybox", "HostConfig": {"Binds": ["vol:/proc/sys"]}}):
            status, reply = api.request("POST", "/containers/create", body)
            assert status == 400, (body, status, reply)
    finally:
        api.stop()
    assert bb("ps", "-aq").out == ""


# ---- item 11: the same layer more than once ---------------------------------------------------
@pytest.mark.parametrize("method", ["kernel", "fuse", "copy"])
def test_an_image_with_the_same_layer_twice_and_empty_layers_runs(rl, made, method, tmp_path):
    rl.configure(overlay=method)
    rl("load", "-i", made["twice"])
    assert rl("run", "--rm", "twice", "cat", "/extra/f").out == "extra\n"
    rl("run", "--name", "c", "twice", "sh", "-c", "echo changed > /extra/f")
    rl("cp", "c:/extra/f", str(tmp_path / "f"))  # a read-only view of the container's files
    assert (tmp_path / "f").read_text() == "changed\n"
    rl("commit", "c", "twice:changed")
    assert rl("run", "--rm", "twice:changed", "cat", "/extra/f").out == "changed\n"
    rl("rm", "c")


@pytest.mark.parametrize("method", ["kernel", "fuse"])
def test_a_build_with_two_no_op_runs_goes_on(rl, images, tmp_path, method):
    rl.configure(overlay=method)
    rl.load(images, "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\nRUN true\nRUN echo ok > /ok\nRUN true\n"
                                    "COPY Dockerfile /d\nRUN cat /ok\n")
    rl("build", "-q", "-t", "noops", str(ctx))
    assert rl("run", "--rm", "noops", "cat", "/ok").out == "ok\n"


@pytest.mark.parametrize("method", ["kernel", "fuse"])
def test_copy_from_an_image_made_of_one_layer_twice(rl, images, made, tmp_path, method):
    rl.configure(overlay=method)
    rl.load(images, "busybox")
    rl("load", "-i", made["dup"])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY --from=dup /extra/f /f\nRUN cat /f\n")
    rl("build", "-q", "-t", "fromdup", str(ctx))
    assert rl("run", "--rm", "fromdup", "cat", "/f").out == "extra\n"
