"""What the API's inspect objects carry, against Docker API 1.41's schema (``tests/dockerschema.py``)
and the values docker-py's integration tests read back: the HostConfig settings as asked,
Config.Env as sent, GroupAdd, StopTimeout, limits this host cannot enforce (discarded with a
warning on the API, refused on the command line), prune's SpaceReclaimed, a commit's Parent, the
default network's one name."""

from __future__ import annotations

import time

import pytest

from tests import dockerschema as schema

pytestmark = pytest.mark.userns


def _create(api, body: dict, name: str | None = None) -> dict:
    status, out = api.request("POST", "/containers/create" + (f"?name={name}" if name else ""),
                              {"Image": "busybox", **body})
    assert status == 201, out
    return out


def _inspect(api, cid: str) -> dict:
    status, out = api.request("GET", f"/containers/{cid}/json")
    assert status == 200, out
    return out


def _limits_enforceable() -> bool:
    from rootless.base.errors import HostError
    from rootless.runtime import cgroups
    try:
        cgroups.check(cgroups.detect(), {"memory": 64 << 20, "cpu_shares": 512, "cpuset_cpus": "0"})
    except HostError:
        return False
    return True


def test_every_object_has_dockers_fields_and_types(api, tmp_path):
    """Walk Docker's schema over each object the API answers with."""
    assert api.request("POST", "/volumes/create", {"Name": "data", "Labels": {"k": "v"}})[0] == 201
    assert api.request("POST", "/networks/create", {"Name": "app"})[0] == 201
    created = _create(api, {"Cmd": ["sleep", "60"], "Env": ["A=1", "B"], "Labels": {"l": "1"},
                            "ExposedPorts": {"80/tcp": {}},
                            "HostConfig": {"Binds": ["data:/data"], "PortBindings": {"80/tcp": [{"HostPort": ""}]},
                                           "Tmpfs": {"/scratch": "size=1m"}}}, "walk")
    assert not schema.problems(created, schema.CREATE_RESPONSE)
    on_net = _create(api, {"Cmd": ["true"], "HostConfig": {"NetworkMode": "app"}}, "member")
    assert api.request("POST", "/containers/walk/start")[0] == 204
    status, ex = api.request("POST", "/containers/walk/exec", {"Cmd": ["true"], "AttachStdout": True})
    assert status == 201
    checks = [
        (f"/containers/{created['Id']}/json", schema.CONTAINER_INSPECT),
        (f"/containers/{on_net['Id']}/json", schema.CONTAINER_INSPECT),
        ("/containers/json?all=1", [schema.CONTAINER_SUMMARY]),
        ("/images/busybox/json", schema.IMAGE_INSPECT),
        ("/images/json", [schema.IMAGE_SUMMARY]),
        ("/volumes/data", schema.VOLUME),
        ("/networks/app", schema.NETWORK),
        ("/networks/bridge", schema.NETWORK),
        (f"/exec/{ex['Id']}/json", schema.EXEC_INSPECT),
        ("/info", schema.INFO),
        ("/version", schema.VERSION),
        ("/system/df", schema.SYSTEM_DF),
    ]
    found = {}
    for path, shape in checks:
        status, out = api.request("GET", path)
        assert status == 200, (path, out)
        found[path] = schema.problems(out, shape)
    status, out = api.request("GET", "/volumes")
    assert status == 200
    found["/volumes"] = [p for v in out["Volumes"] for p in schema.problems(v, schema.VOLUME)]
    status, out = api.request("GET", "/networks")
    found["/networks"] = [p for n in out for p in schema.problems(n, schema.NETWORK)]
    bad = [f"{path} {p}" for path, ps in found.items() for p in ps]
    assert not bad, "\n".join(bad)


def test_host_config_settings_are_shown_as_asked(api):
    api.docker("create", "--name", "src", "busybox", "true")
    cid = _create(api, {"Cmd": ["true"], "StopTimeout": 25, "HostConfig": {
        "VolumesFrom": ["src"], "Tmpfs": {"/tmp1": "size=3M"}, "CgroupnsMode": "private", "UTSMode": "host",
        "Isolation": "default", "Runtime": "runc", "DeviceCgroupRules": ["c 7:128 rwm"], "MemorySwappiness": 40,
        "GroupAdd": ["1000"], "VolumeDriver": "local"}})["Id"]
    got = _inspect(api, cid)
    hc = got["HostConfig"]
    assert hc["VolumesFrom"] == ["src"] and hc["Tmpfs"] == {"/tmp1": "size=3M"}
    assert (hc["CgroupnsMode"], hc["UTSMode"], hc["Isolation"], hc["Runtime"]) == ("private", "host", "default", "runc")
    assert hc["DeviceCgroupRules"] == ["c 7:128 rwm"] and hc["GroupAdd"] == ["1000"]
    assert "MemorySwappiness" in hc and hc["VolumeDriver"] == "local"
    assert got["Config"]["StopTimeout"] == 25
    plain = _inspect(api, _create(api, {"Cmd": ["true"]})["Id"])
    default_runtime = api.request("GET", "/info")[1]["DefaultRuntime"]
    assert (plain["HostConfig"]["Runtime"], plain["HostConfig"]["VolumesFrom"], plain["HostConfig"]["PidMode"]) == (
        default_runtime, None, "")
    assert "StopTimeout" not in plain["Config"]  # Docker leaves it out when not asked


def test_settings_rootless_cannot_have_are_refused_in_one_line(api):
    for hc, word in (({"Runtime": "kata"}, "runtime"), ({"Isolation": "hyperv"}, "isolation"),
                     ({"MemorySwappiness": 101}, "swappiness")):
        status, out = api.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc})
        assert status == 400 and word in out["message"].lower() and "\n" not in out["message"], out


def test_uts_mode_host_shares_the_hosts_name(api):
    import socket
    cid = _create(api, {"Cmd": ["hostname"], "HostConfig": {"UTSMode": "host", "NetworkMode": "none"}})["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    api.docker("wait", cid)
    assert api.docker("logs", cid).out.strip() == socket.gethostname()


def test_log_config_shows_what_was_asked_not_the_defaults(api):
    asked = _inspect(api, _create(api, {"Cmd": ["true"], "HostConfig": {
        "LogConfig": {"Type": "json-file", "Config": {"max-file": "100"}}}})["Id"])
    assert asked["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "100"}}
    none = _inspect(api, _create(api, {"Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "json-file"}}})["Id"])
    assert none["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    no_type = _inspect(api, _create(api, {"Cmd": ["true"], "HostConfig": {
        "LogConfig": {"Type": "", "Config": {"max-file": "100"}}}})["Id"])
    assert no_type["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "100"}}


def test_env_is_kept_as_the_client_sent_it(api):
    got = _inspect(api, _create(api, {"Cmd": ["env"], "Env": ["Foo", "Other=one", "Blank="]})["Id"])
    env = got["Config"]["Env"]
    assert "Foo" in env and "Other=one" in env and "Blank=" in env
    assert not any(e.startswith("Foo=") for e in env)  # not looked up in the service's environment


def test_group_add_gives_supplementary_groups(api, busybox):
    cid = _create(api, {"Cmd": ["id", "-G"], "HostConfig": {"GroupAdd": ["1000", "1001"]}})["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    api.docker("wait", cid)
    assert {"1000", "1001"} <= set(api.docker("logs", cid).out.split())
    assert _inspect(api, cid)["HostConfig"]["GroupAdd"] == ["1000", "1001"]
    out = busybox("run", "--rm", "--group-add", "1002", "--group-add", "users", "busybox", "id", "-G").out.split()
    assert "1002" in out and "100" in out  # the test image's /etc/group: users is 100
    r = busybox("run", "--rm", "--group-add", "nosuchgroup", "busybox", "true", expect=None)
    assert r.code != 0 and "nosuchgroup" in r.err


def test_api_exec_has_the_containers_group_add(api):
    cid = _create(api, {"Cmd": ["sleep", "60"], "HostConfig": {"GroupAdd": ["1234"]}})["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    assert "1234" in api.docker("exec", cid, "id", "-G").out.split()
    assert sorted(api.docker("exec", "-u", "1000:1000", cid, "id", "-G").out.split()) == ["1000", "1234"]
    api.docker("rm", "-f", cid)


def test_stop_timeout_is_stops_default(api, busybox):
    busybox("run", "-d", "--name", "slow", "--stop-timeout", "1", "busybox", "sh", "-c",
            "trap '' TERM; while :; do sleep 0.1; done")
    assert busybox("inspect", "-f", "{{.Config.StopTimeout}}", "slow").out.strip() == "1"
    began = time.monotonic()
    busybox("stop", "slow")
    assert time.monotonic() - began < 6  # not the 10 s default


def test_limits_the_host_cannot_enforce_are_discarded_with_a_warning_on_the_api(api, busybox):
    if _limits_enforceable():
        pytest.skip("this host enforces memory limits (the cgroup v2 guest tests them)")
    status, out = api.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sleep", "60"],
        "HostConfig": {"Memory": 400 * 1024 * 1024, "MemorySwap": 1 << 30, "CpuShares": 512, "CpusetCpus": "0"}})
    assert status == 201 and out["Warnings"], out
    assert all("\n" not in w for w in out["Warnings"]) and any("Memory" in w for w in out["Warnings"])
    cid = out["Id"]
    hc = _inspect(api, cid)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"], hc["CpusetCpus"]) == (400 << 20, 1 << 30, 512, "0")
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204  # runs, without the limits
    status, out = api.request("POST", f"/containers/{cid}/update", {"Memory": 300 * 1024 * 1024, "CpuShares": 3})
    assert status == 200 and out["Warnings"], out
    hc = _inspect(api, cid)["HostConfig"]
    assert (hc["Memory"], hc["CpuShares"]) == (300 << 20, 3)
    assert "WARNING" in api.docker("create", "-m", "64m", "busybox", "true").err  # the docker CLI says them
    r = busybox("create", "-m", "64m", "busybox", "true", expect=None)  # our own CLI refuses
    assert r.code == 125 and "--memory" in r.err


def test_cfs_quota_memory_nodes_and_device_operations_on_the_api(api, busybox):
    """CpuQuota/CpuPeriod, CpusetMems and the per-device io fields are limits too: enforced where
    the host can (the cgroup v2 guest's tests), else discarded with a warning and shown as given."""
    if _limits_enforceable():
        pytest.skip("this host enforces limits (the cgroup v2 guest tests them)")
    status, out = api.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["true"],
        "HostConfig": {"CpuQuota": 20000, "CpuPeriod": 50000, "CpusetMems": "0"}})
    assert status == 201 and any("CpuQuota" in w for w in out["Warnings"]), out
    hc = _inspect(api, out["Id"])["HostConfig"]
    assert (hc["CpuQuota"], hc["CpuPeriod"], hc["CpusetMems"]) == (20000, 50000, "0")
    status, out = api.request("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"NanoCpus": 10 ** 9, "CpuQuota": 20000}})
    assert status == 400 and "Nano CPUs and CPU Quota cannot both be set" in out["message"], out
    status, out = api.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"CpuPeriod": 10}})
    assert status == 400 and "CPU cfs period" in out["message"], out


def test_prune_says_the_space_it_reclaimed(api):
    cid = _create(api, {"Cmd": ["sh", "-c", "head -c 100000 /dev/zero > /data.bin"]})["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    api.docker("wait", cid)
    from urllib.parse import quote
    status, out = api.request("POST", "/containers/prune?filters=" + quote('{"label": ["nobody-has-it"]}'))
    assert status == 200 and out["ContainersDeleted"] is None, out  # the filter chose none
    status, out = api.request("POST", "/containers/prune")
    assert status == 200 and cid in out["ContainersDeleted"] and out["SpaceReclaimed"] >= 100000, out
    assert api.request("POST", "/volumes/create", {"Name": "full"})[0] == 201
    api.docker("run", "--rm", "-v", "full:/v", "busybox", "sh", "-c", "head -c 50000 /dev/zero > /v/f")
    status, out = api.request("POST", "/volumes/prune")
    assert status == 200 and out["VolumesDeleted"] == ["full"] and out["SpaceReclaimed"] >= 50000, out


def test_a_commits_parent_is_its_image(api):
    cid = _create(api, {"Cmd": ["touch", "/test"]})["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    api.docker("wait", cid)
    status, out = api.request("POST", f"/commit?container={cid}")
    assert status == 201
    parent = api.request("GET", "/images/busybox/json")[1]["Id"]
    assert api.request("GET", f"/images/{out['Id']}/json")[1]["Parent"] == parent
    assert api.request("GET", "/images/busybox/json")[1]["Parent"] == ""


def test_the_default_network_has_one_name(api):
    cid = _create(api, {"Cmd": ["true"]})["Id"]
    got = _inspect(api, cid)
    names = [n["Name"] for n in api.request("GET", "/networks")[1]]
    [(key, endpoint)] = got["NetworkSettings"]["Networks"].items()
    assert key == "bridge" and key in names and got["HostConfig"]["NetworkMode"] == "bridge"
    assert endpoint["NetworkID"] == api.request("GET", "/networks/bridge")[1]["Id"]
    listed = [c for c in api.request("GET", "/containers/json?all=1")[1] if c["Id"] == cid][0]
    assert list(listed["NetworkSettings"]["Networks"]) == ["bridge"]


def test_the_command_lines_inspect_has_the_same_shape(busybox):
    import json
    busybox("run", "-d", "--name", "c", "--group-add", "100", "--tmpfs", "/t", "-p", "8080", "busybox", "sleep", "60")
    busybox("create", "--name", "n", "--network", "none", "--stop-timeout", "2", "busybox", "true")
    for name in ("c", "n"):
        [doc] = json.loads(busybox("inspect", name).out)
        assert schema.problems(doc, schema.CONTAINER_INSPECT) == [], name
    [doc] = json.loads(busybox("inspect", "c").out)
    assert (doc["HostConfig"]["GroupAdd"], doc["HostConfig"]["Tmpfs"]) == (["100"], {"/t": ""})


def test_namespace_modes_rootless_has_not_are_refused_naming_the_field(api):
    for hc in ({"PidMode": "container:x"}, {"CgroupnsMode": "host"}, {"UTSMode": "container:x"},
               {"VolumeDriver": "nfs", "Binds": ["data:/data"]}):
        status, out = api.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc})
        key = next(iter(hc))
        assert status == 400 and key in out["message"] and "\n" not in out["message"], out
    assert api.request("GET", "/containers/json?all=1")[1] == []  # nothing made
    assert api.request("GET", "/volumes")[1]["Volumes"] == []


def test_a_volume_driver_is_refused_only_when_a_volume_would_use_it(api):
    """Docker takes any driver's name and fails only when a volume is made with it (docker-py's
    test_create_with_volume_driver)."""
    status, out = api.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"VolumeDriver": "foo"}})
    assert status == 201, out
    assert api.request("GET", f"/containers/{out['Id']}/json")[1]["HostConfig"]["VolumeDriver"] == "foo"
    for body in ({"Volumes": {"/v": {}}}, {"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/v"}]}}):
        hc = {"VolumeDriver": "foo", **body.get("HostConfig", {})}
        status, out = api.request("POST", "/containers/create", {"Image": "busybox", **body, "HostConfig": hc})
        assert status == 400 and "plugin" in out["message"], out
