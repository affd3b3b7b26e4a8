"""Issue 22, archives into and out of containers: a tar sent to ``PUT /containers/ID/archive`` or
to ``rootless cp - C:DIR`` is unpacked inside the container's root by the layer unpacker's rules
and never touches the user's files (items 2); ``cp`` to or from a stopped container sees its
volumes and binds (item 9); a device node is copied as its header, a missing ``path`` is a 400.

Each hostile archive aims at a stand-in for the user's home (``tests/hostile_tars.py``), which
must be unchanged afterwards; a refused archive writes nothing at all.
"""

from __future__ import annotations

import base64
import io
import json
import stat
import tarfile
import urllib.parse

import pytest

from tests import hostile_tars
from tests.apiservice import ApiService
from tests.conftest import one_error
from tests.hostile_tars import REFUSED

pytestmark = pytest.mark.userns


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return {m.name: m for m in tf.getmembers()}


def dirs_tar(*names: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
    return buf.getvalue()


def q(path: str) -> str:
    return urllib.parse.quote(path, safe="")


@pytest.fixture
def containers(busybox):
    """``run1``: running; ``stop1``: created, never started."""
    busybox("run", "-d", "--name", "run1", "busybox", "sleep", "1000")
    busybox("create", "--name", "stop1", "busybox", "true")
    return busybox


@pytest.mark.parametrize("container", ["run1", "stop1"])
def test_put_archive_unpacks_hostile_tars_inside_the_container(containers, tmp_path, container):
    rl = containers
    home = tmp_path / "home"
    before = hostile_tars.home_with_victims(home)
    cases = hostile_tars.hostile(home)
    svc = ApiService(rl)
    try:
        status, body = svc.request("PUT", f"/containers/{container}/archive?path=/tmp", dirs_tar(*cases))
        assert status == 200, body
        for name, (data, outcome, member) in cases.items():
            status, body = svc.request("PUT", f"/containers/{container}/archive?path={q('/tmp/' + name)}", data)
            assert status == (400 if outcome == REFUSED else 200), (name, status, body)
            if outcome == REFUSED:
                assert "\n" not in body["message"].strip() and "internal error" not in body["message"], body
            assert hostile_tars.snapshot(home) == before, name
            status, listing = svc.request("GET", f"/containers/{container}/archive?path={q('/tmp/' + name)}")
            assert status == 200, listing
            got = members(listing)
            if outcome == REFUSED:
                assert sorted(got) == [name], (name, sorted(got))  # nothing of it was written
            else:
                m = got[f"{name}/{member}"]
                assert m.isfile() or m.isdir(), (name, m.type)  # the link was replaced, not followed
        assert hostile_tars.snapshot(home) == before
    finally:
        svc.stop()


def test_put_archive_statuses_and_device_nodes(containers):
    rl = containers
    svc = ApiService(rl)
    try:
        status, body = svc.request("PUT", "/containers/run1/archive?path=/no/such/dir", dirs_tar("x"))
        assert status == 404 and "/no/such/dir" in body["message"], body
        status, body = svc.request("PUT", "/containers/stop1/archive?path=/etc/passwd", dirs_tar("x"))
        assert status == 400 and "not a directory" in body["message"], body
        status, body = svc.request("PUT", "/containers/stop1/archive?path=/tmp", b"this is no tar at all" * 50)
        assert status == 400, body
        status, _ = svc.request("HEAD", "/containers/run1/archive")
        assert status == 400
        status, body = svc.request("GET", "/containers/run1/archive")
        assert status == 400 and "path" in body["message"], body
        status, _ = svc.request("HEAD", "/containers/run1/archive?path=/no/such/file")
        assert status == 404

        status, data = svc.request("GET", "/containers/run1/archive?path=/dev/zero")
        assert status == 200
        got = members(data)
        assert list(got) == ["zero"] and got["zero"].ischr(), got
        assert (got["zero"].devmajor, got["zero"].devminor) == (1, 5)

        conn_status, headers = _head(svc, "/containers/run1/archive?path=/dev/zero")
        assert conn_status == 200
        info = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
        assert info["name"] == "zero" and info["mode"] & (1 << 21), info  # Go's ModeCharDevice
    finally:
        svc.stop()


def _head(svc: ApiService, path: str):
    from tests.apiservice import UnixHTTPConnection
    conn = UnixHTTPConnection(str(svc.socket))
    try:
        conn.request("HEAD", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


def test_cp_from_stdin_unpacks_hostile_tars_inside_the_container(containers, tmp_path):
    rl = containers
    home = tmp_path / "home"
    before = hostile_tars.home_with_victims(home)
    cases = hostile_tars.hostile(home)
    rl("cp", "-", "stop1:/tmp", input=dirs_tar(*cases))
    for name, (data, outcome, _member) in cases.items():
        r = rl("cp", "-", f"stop1:/tmp/{name}", input=data, expect=None)
        if outcome == REFUSED:
            assert r.code == 1, (name, r)
            one_error(r)
        else:
            assert r.code == 0, (name, r)
        assert hostile_tars.snapshot(home) == before, name
    out = tmp_path / "out"
    out.mkdir()
    rl("cp", "stop1:/tmp", out)
    for name, (_data, outcome, member) in cases.items():
        got = sorted(p.name for p in (out / "tmp" / name).iterdir())
        if outcome == REFUSED:
            assert got == [], (name, got)
        else:
            assert got == [member] and not (out / "tmp" / name / member).is_symlink(), name
    one_error(rl("cp", "-", "stop1:/no/such/dir", input=dirs_tar("x"), expect=1), "Could not find")
    one_error(rl("cp", "-", "stop1:/etc/passwd", input=dirs_tar("x"), expect=1), "not a directory")
    assert hostile_tars.snapshot(home) == before
    assert rl.leftovers() == []


def test_cp_of_a_device_node(containers, tmp_path):
    rl = containers
    got = members(_raw_stdout(rl, "cp", "run1:/dev/zero", "-"))
    assert list(got) == ["zero"] and got["zero"].ischr()
    one_error(rl("cp", "run1:/dev/zero", tmp_path / "x", expect=1, timeout=60), "device")
    assert not (tmp_path / "x").exists()


def _raw_stdout(rl, *args: str) -> bytes:
    import subprocess

    from tests.conftest import rootless_argv
    cp = subprocess.run(rootless_argv() + list(args), env=rl.env, capture_output=True, timeout=60,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def test_cp_with_a_stopped_container_sees_its_volumes_and_binds(busybox, tmp_path):
    rl = busybox
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "from-host").write_text("host\n")
    rl("run", "--name", "vols", "-v", "vol9:/data", "-v", f"{bind}:/bind", "busybox", "true")
    src = tmp_path / "f.txt"
    src.write_text("copied\n")
    rl("cp", src, "vols:/data/")
    rl("cp", src, "vols:/bind/")
    assert (bind / "f.txt").read_text() == "copied\n"  # in the bind's source, not hidden under it
    assert rl("run", "--rm", "-v", "vol9:/data", "busybox", "cat", "/data/f.txt").out == "copied\n"
    out = tmp_path / "out"
    out.mkdir()
    rl("cp", "vols:/bind/from-host", out)
    assert (out / "from-host").read_text() == "host\n"
    rl("run", "--rm", "-v", "vol9:/data", "busybox", "sh", "-c", "echo in-volume > /data/v")
    rl("cp", "vols:/data/v", out)
    assert (out / "v").read_text() == "in-volume\n"
    rl("export", "-o", tmp_path / "export.tar", "vols")  # export leaves volumes and binds out, as Docker
    exported = members((tmp_path / "export.tar").read_bytes())
    assert "bin/busybox" in exported and "data" in exported and "bind" in exported, sorted(exported)[:20]
    assert not {"data/v", "data/f.txt", "bind/f.txt", "bind/from-host"} & set(exported), sorted(exported)

    svc = ApiService(rl)
    try:
        status, body = svc.request("PUT", "/containers/vols/archive?path=/bind", dirs_tar("api-dir"))
        assert status == 200, body
        assert (bind / "api-dir").is_dir()
        status, data = svc.request("GET", "/containers/vols/archive?path=/data/v")
        assert status == 200 and "v" in members(data)
        status, headers = _head(svc, "/containers/vols/archive?path=/bind/from-host")
        assert status == 200
        info = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
        assert info["size"] == 5 and stat.S_IMODE(info["mode"]) == 0o644, info
    finally:
        svc.stop()
    with open("/proc/self/mountinfo") as f:
        assert str(rl.root) not in f.read()  # mounted for each copy only


def test_put_archive_keeps_a_sparse_file_sparse(containers, tmp_path):
    rl = containers
    data = hostile_tars.sparse_tar(tmp_path / "sparse")
    rl("cp", "-", "run1:/tmp", input=data)
    blocks, size = rl("exec", "run1", "stat", "-c", "%b %s", "/tmp/sparse").out.split()
    assert int(size) == hostile_tars.SPARSE_SIZE
    assert int(blocks) * 512 < 8 << 20, blocks


def test_docker_cp_with_hostile_tars_and_directories(api, tmp_path):
    """Debian's docker client (``docker cp - C:DIR``, ``docker cp C:DIR/. HOST``) against the service."""
    home = tmp_path / "home"
    before = hostile_tars.home_with_victims(home)
    cases = hostile_tars.hostile(home)
    api.docker("run", "-d", "--name", "dc", "busybox", "sleep", "300")
    api.docker("cp", "-", "dc:/tmp", input=dirs_tar(*cases))
    for name, (data, outcome, member) in cases.items():
        r = api.docker("cp", "-", f"dc:/tmp/{name}", input=data, expect=None)
        assert r.code == (1 if outcome == REFUSED else 0), (name, r)
        assert "internal error" not in r.err, r.err
        assert hostile_tars.snapshot(home) == before, name
        listing = api.docker("exec", "dc", "ls", "-A", f"/tmp/{name}").out.split()
        assert listing == ([] if outcome == REFUSED else [member]), (name, listing)
    out = tmp_path / "out"
    api.docker("cp", "dc:/tmp/symlink-then-file/.", str(out))
    assert (out / "link").read_text() == "pwned\n" and not (out / "link").is_symlink()
    assert hostile_tars.snapshot(home) == before


def test_cp_into_a_read_only_bind_of_a_stopped_container_is_refused(busybox, tmp_path):
    rl = busybox
    ro = tmp_path / "ro"
    ro.mkdir()
    rl("run", "--name", "rov", "-v", f"{ro}:/ro:ro", "busybox", "true")
    src = tmp_path / "f.txt"
    src.write_text("copied\n")
    one_error(rl("cp", src, "rov:/ro/", expect=1), "read-only")
    one_error(rl("cp", src, "rov:/ro/new-name", expect=1), "read-only")
    one_error(rl("cp", "-", "rov:/ro", input=dirs_tar("x"), expect=1), "read-only")
    svc = ApiService(rl)
    try:
        status, body = svc.request("PUT", "/containers/rov/archive?path=/ro", dirs_tar("y"))
        assert status == 403 and "read-only" in body["message"], body
    finally:
        svc.stop()
    assert list(ro.iterdir()) == []


def test_put_archive_takes_compressed_tars_and_refuses_garbage(containers):
    import gzip
    import lzma
    rl = containers
    svc = ApiService(rl)
    try:
        for name, pack in (("gz", gzip.compress), ("xz", lzma.compress)):
            status, body = svc.request("PUT", "/containers/stop1/archive?path=/tmp", pack(dirs_tar(f"from-{name}")))
            assert status == 200, (name, body)
        status, data = svc.request("GET", "/containers/stop1/archive?path=/tmp")
        assert {"tmp/from-gz", "tmp/from-xz"} <= set(members(data))
        for garbage in (b"\x1f\x8b" + b"not gzip" * 100, b"\xfd7zXZ\x00" + b"x" * 600, b"x" * 1024):
            status, body = svc.request("PUT", "/containers/stop1/archive?path=/tmp", garbage)
            assert status == 400 and "internal error" not in body["message"], body
    finally:
        svc.stop()


def test_cp_sees_the_volumes_of_a_stopped_container_with_each_rootfs_method(rl_method, images, tmp_path):
    rl = rl_method
    rl.load(images, "busybox")
    bind = tmp_path / "bind-m"
    bind.mkdir()
    rl("run", "--name", "volm", "-v", "volm:/data", "-v", f"{bind}:/bind", "busybox", "true")
    src = tmp_path / "g.txt"
    src.write_text("method\n")
    rl("cp", src, "volm:/data/")
    rl("cp", src, "volm:/bind/")
    assert (bind / "g.txt").read_text() == "method\n"
    out = tmp_path / "out-m"
    out.mkdir()
    rl("cp", "volm:/data/g.txt", out)
    assert (out / "g.txt").read_text() == "method\n"
    assert rl("start", "-a", "volm", expect=0).out == ""
    assert rl("run", "--rm", "-v", "volm:/data", "busybox", "cat", "/data/g.txt").out == "method\n"
    rl("rm", "-f", "volm")
