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
