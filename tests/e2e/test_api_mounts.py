"""Mounts through the Engine API as docker-py sends them: a bind's propagation in ``Binds`` and
``BindOptions``, a volume's ``VolumeOptions.Subpath`` and ``NoCopy``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.userns


def _run(api, name: str, host_config: dict, cmd: list[str]) -> str:
    status, made = api.request("POST", f"/containers/create?name={name}",
                               {"Image": "busybox", "Cmd": cmd, "HostConfig": {"NetworkMode": "none", **host_config}})
    assert status == 201, made
    assert api.request("POST", f"/containers/{name}/start")[0] == 204
    assert api.request("POST", f"/containers/{name}/wait")[1]["StatusCode"] == 0
    return api.docker("logs", name).out


def test_bind_propagation_from_binds_and_mounts(api, tmp_path):
    _run(api, "shared", {"Binds": [f"{tmp_path}:/mnt:rw,rshared"]}, ["touch", "/mnt/made"])
    assert (tmp_path / "made").exists()
    (m,) = api.request("GET", "/containers/shared/json")[1]["Mounts"]
    assert (m["Source"], m["RW"], m["Propagation"]) == (str(tmp_path), True, "rshared")
    _run(api, "slave", {"Mounts": [{"Type": "bind", "Source": str(tmp_path), "Target": "/mnt", "ReadOnly": True,
                                    "BindOptions": {"Propagation": "rslave"}}]}, ["ls", "/mnt"])
    (m,) = api.request("GET", "/containers/slave/json")[1]["Mounts"]
    assert (m["RW"], m["Propagation"]) == (False, "rslave")
    status, answer = api.request("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"Binds": [f"{tmp_path}:/mnt:rw,sideways"]}})
    assert status == 400 and "invalid mode 'rw,sideways'" in answer["message"], answer


def test_volume_subpath(api):
    api.docker("volume", "create", "src")
    _run(api, "setup", {"Binds": ["src:/vol"]}, ["sh", "-c", "mkdir -p /vol/subdir && echo test > /vol/subdir/f"])
    out = _run(api, "sub", {"Mounts": [{"Type": "volume", "Source": "src", "Target": "/mnt", "ReadOnly": True,
                                        "VolumeOptions": {"Subpath": "subdir"}}]}, ["cat", "/mnt/f"])
    assert out == "test\n"
    status, answer = api.request("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"Mounts": [{"Type": "volume", "Source": "src", "Target": "/mnt",
                                                       "VolumeOptions": {"Subpath": "../x"}}]}})
    assert status == 400 and "must be a relative path inside the volume" in answer["message"], answer


def test_archive_endpoints_see_the_volumes_of_a_stopped_container(api, tmp_path):
    """docker-py's ArchiveTest: GET/HEAD/PUT .../archive of a path in a volume (an anonymous one, a
    bind, a volume's subpath) of a container that never ran or has stopped."""
    import io
    import tarfile
    api.docker("volume", "create", "src")
    _run(api, "setup", {"Binds": ["src:/vol"]}, ["sh", "-c", "mkdir -p /vol/sub && echo in-sub > /vol/sub/f"])
    status, made = api.request("POST", "/containers/create?name=arch", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo data > /vol1/data.txt; cat /vol1/put.txt"],
        "Volumes": {"/vol1": {}}, "HostConfig": {"NetworkMode": "none", "Binds": [f"{tmp_path}:/b"], "Mounts": [
            {"Type": "volume", "Source": "src", "Target": "/s", "VolumeOptions": {"Subpath": "sub"}}]}})
    assert status == 201, made
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("put.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"put\n"))
    status, answer = api.request("PUT", "/containers/arch/archive?path=/vol1", buf.getvalue(),
                                 {"Content-Type": "application/x-tar"})
    assert status == 200, answer
    assert _run_started(api, "arch") == "put\n"
    for path, content in (("/vol1/data.txt", b"data\n"), ("/s/f", b"in-sub\n")):
        status, body = api.request("GET", f"/containers/arch/archive?path={path}")
        assert status == 200, body
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            assert tar.extractfile(tar.getmembers()[0]).read() == content
    (tmp_path / "host.txt").write_text("from the host\n")
    status, body = api.request("GET", "/containers/arch/archive?path=/b/host.txt")
    assert status == 200, body


def _run_started(api, name: str) -> str:
    assert api.request("POST", f"/containers/{name}/start")[0] == 204
    assert api.request("POST", f"/containers/{name}/wait")[1]["StatusCode"] == 0
    return api.docker("logs", name).out
