"""Resource limits: Docker's flags as cgroup v2 files, and the refusals of a host that cannot
enforce them (a limit is never silently ignored)."""

from __future__ import annotations

import os

import pytest

from rootless.base.errors import HostError, UsageError
from rootless.runtime import cgroups
from rootless.runtime.cgroups import LimitOptions


@pytest.mark.parametrize("opts, limits, files", [
    (LimitOptions(memory="512m"), {"memory": 512 << 20}, {"memory.max": str(512 << 20)}),
    (LimitOptions(memory="1g", memory_swap="2g"), {"memory": 1 << 30, "memory_swap": 2 << 30},
     {"memory.max": str(1 << 30), "memory.swap.max": str(1 << 30)}),
    (LimitOptions(memory="64m", memory_swap="-1"), {"memory": 64 << 20, "memory_swap": -1},
     {"memory.max": str(64 << 20), "memory.swap.max": "max"}),
    (LimitOptions(memory="64m", memory_reservation="32m"), {"memory": 64 << 20, "memory_reservation": 32 << 20},
     {"memory.max": str(64 << 20), "memory.low": str(32 << 20)}),
    (LimitOptions(cpus="0.5"), {"nano_cpus": 500_000_000}, {"cpu.max": "50000 100000"}),
    (LimitOptions(cpus="1"), {"nano_cpus": 1_000_000_000}, {"cpu.max": "100000 100000"}),
    (LimitOptions(cpu_shares="1024"), {"cpu_shares": 1024}, {"cpu.weight": "39"}),
    (LimitOptions(cpu_shares="2"), {"cpu_shares": 2}, {"cpu.weight": "1"}),
    (LimitOptions(cpu_shares="262144"), {"cpu_shares": 262144}, {"cpu.weight": "10000"}),
    (LimitOptions(cpuset_cpus="0"), {"cpuset_cpus": "0"}, {"cpuset.cpus": "0"}),
    (LimitOptions(pids_limit="64"), {"pids_limit": 64}, {"pids.max": "64"}),
    (LimitOptions(pids_limit="-1"), {}, {}),  # Docker: -1 and 0 are unlimited
    (LimitOptions(pids_limit="0"), {}, {}),
    (LimitOptions(blkio_weight="500"), {"blkio_weight": 500}, {"io.weight": "default 4950"}),
    # --cpu-quota/--cpu-period: cpu.max as runc writes it (-1: no quota; the period 100 ms unless given)
    (LimitOptions(cpu_quota="50000"), {"cpu_quota": 50000}, {"cpu.max": "50000 100000"}),
    (LimitOptions(cpu_quota="25000", cpu_period="50000"), {"cpu_quota": 25000, "cpu_period": 50000},
     {"cpu.max": "25000 50000"}),
    (LimitOptions(cpu_period="50000"), {"cpu_period": 50000}, {"cpu.max": "max 50000"}),
    (LimitOptions(cpu_quota="-1"), {"cpu_quota": -1}, {"cpu.max": "max 100000"}),
    (LimitOptions(cpu_quota="0", cpu_period="0"), {}, {}),  # Docker's "not set"
    (LimitOptions(cpuset_mems="0"), {"cpuset_mems": "0"}, {"cpuset.mems": "0"}),
])
def test_flags_to_limits_to_files(opts, limits, files):
    assert cgroups.parse(opts) == limits
    assert cgroups.files(limits) == files


def test_device_rates(tmp_path):
    dev = next((p for p in ("/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1") if os.path.exists(p)), None)
    if dev is None:
        pytest.skip("no block device node to name")
    st = os.stat(dev)
    limits = cgroups.parse(LimitOptions(device_read_bps=(f"{dev}:1mb",), device_write_bps=(f"{dev}:2m",)))
    assert cgroups.files(limits) == {"io.max": f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)} "
                                               f"rbps={1 << 20} wbps={2 << 20}"}
    assert cgroups.host_config(limits)["BlkioDeviceReadBps"] == [{"Path": dev, "Rate": 1 << 20}]


def _block_device() -> str:
    dev = next((p for p in ("/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1") if os.path.exists(p)), None)
    if dev is None:
        pytest.skip("no block device node to name")
    return dev


def test_device_operations_and_weights():
    dev = _block_device()
    st = os.stat(dev)
    node = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    limits = cgroups.parse(LimitOptions(device_read_iops=(f"{dev}:1000",), device_write_iops=(f"{dev}:500",),
                                        device_read_bps=(f"{dev}:1mb",), blkio_weight="500",
                                        blkio_weight_device=(f"{dev}:200",)))
    assert cgroups.files(limits) == {"io.max": f"{node} rbps={1 << 20} riops=1000 wiops=500",
                                     "io.weight": f"default 4950\n{node} 1920"}
    hc = cgroups.host_config(limits)
    assert hc["BlkioDeviceReadIOps"] == [{"Path": dev, "Rate": 1000}]
    assert hc["BlkioDeviceWriteIOps"] == [{"Path": dev, "Rate": 500}]
    assert hc["BlkioWeightDevice"] == [{"Path": dev, "Weight": 200}]


@pytest.mark.parametrize("flags, message", [
    (dict(device_read_iops=("{dev}:1mb",)), 'invalid argument \'1mb\' for "--device-read-iops" flag: not a number'),
    (dict(blkio_weight_device=("{dev}:5",)), 'for "--blkio-weight-device" flag: out of range (10 to 1000)'),
    (dict(blkio_weight_device=("sda:500",)), "use /dev/DEVICE:WEIGHT"),
])
def test_bad_device_flags(flags, message):
    dev = _block_device()
    with pytest.raises(UsageError) as e:
        cgroups.parse(LimitOptions(**{k: tuple(x.format(dev=dev) for x in v) for k, v in flags.items()}))
    assert message in e.value.message


def test_update_replaces_cpus_and_the_quota_by_each_other():
    assert cgroups.merge({"nano_cpus": 10 ** 9, "memory": 1 << 30}, {"cpu_quota": 20000}) == \
        {"cpu_quota": 20000, "memory": 1 << 30}
    assert cgroups.merge({"cpu_quota": 20000, "cpu_period": 50000}, {"nano_cpus": 5 * 10 ** 8}) == \
        {"nano_cpus": 5 * 10 ** 8}
    assert cgroups.merge({"cpu_quota": 20000, "cpu_period": 50000}, {"cpu_quota": 30000}) == \
        {"cpu_quota": 30000, "cpu_period": 50000}


@pytest.mark.parametrize("opts, message", [
    (LimitOptions(memory="1k"), "minimum memory limit allowed is 6MB"),
    (LimitOptions(memory="lots"), 'invalid argument \'lots\' for "--memory" flag'),
    (LimitOptions(memory_swap="1g"), "you should always set the memory limit when using memoryswap limit"),
    (LimitOptions(memory="1g", memory_swap="512m"), "minimum memoryswap limit should be larger than memory limit"),
    (LimitOptions(memory="64m", memory_reservation="128m"), "can not be less than memory reservation"),
    (LimitOptions(cpus="0"), "range of CPUs is from 0.01"),
    (LimitOptions(cpus="1000"), "range of CPUs is from 0.01"),
    (LimitOptions(cpus="nan"), "range of CPUs is from 0.01"),
    (LimitOptions(cpus="inf"), "range of CPUs is from 0.01"),
    (LimitOptions(cpus="0.001"), "range of CPUs is from 0.01"),
    (LimitOptions(cpus="two"), 'invalid argument \'two\' for "--cpus" flag'),
    (LimitOptions(cpu_shares="1"), "out of range"),
    (LimitOptions(cpuset_cpus="999"), "requested CPUs are not available"),
    (LimitOptions(cpuset_cpus="a-b"), "invalid value 'a-b' for cpuset cpus"),
    (LimitOptions(pids_limit="many"), "not a number"),
    (LimitOptions(blkio_weight="5"), "range of blkio weight is from 10 to 1000"),
    (LimitOptions(device_read_bps=("sda:1mb",)), "use /dev/DEVICE:RATE"),
    (LimitOptions(device_read_bps=("/dev/null:1mb",)), "is not a block device"),
    (LimitOptions(cpus="1", cpu_quota="50000"), "conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (LimitOptions(cpus="1", cpu_period="50000"), "conflicting options: Nano CPUs and CPU Period cannot both be set"),
    (LimitOptions(cpu_period="999"), "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s"),
    (LimitOptions(cpu_period="1000001"), "CPU cfs period can not be less than 1ms"),
    (LimitOptions(cpu_quota="999"), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (LimitOptions(cpu_quota="-2"), "out of range"),
    (LimitOptions(cpuset_mems="64"), "requested memory nodes are not available - requested 64, available: 0"),
    (LimitOptions(cpuset_mems="x"), "invalid value 'x' for cpuset mems"),
])
def test_bad_flags(opts, message):
    with pytest.raises(UsageError) as e:
        cgroups.parse(opts)
    assert message in e.value.message


def test_host_config_of_no_limits():
    hc = cgroups.host_config({})
    assert hc["Memory"] == 0 and hc["NanoCpus"] == 0 and hc["PidsLimit"] is None


@pytest.mark.parametrize("host, limits, needle", [
    (cgroups.Host("hybrid", "/", None, ()), {"memory": 1 << 30}, "--memory needs cgroup v2 with delegated "
                                                                     "controllers; this host has hybrid cgroups"),
    (cgroups.Host("v1", None, None, ()), {"pids_limit": 5}, "this host has cgroup v1 only"),
    (cgroups.Host("v2", "/user.slice/user-1000.slice/session-1.scope", None, ()), {"nano_cpus": 10 ** 9},
     "--cpus needs a cgroup delegated to you; none is writable above /user.slice"),
    (cgroups.Host("v2", "/x", "/sys/fs/cgroup/x", ("memory", "pids")), {"nano_cpus": 10 ** 9, "memory": 1 << 30},
     "--cpus needs the cpu controller, which is not delegated to you"),
])
def test_a_host_that_cannot_enforce_a_limit_refuses_it(host, limits, needle):
    with pytest.raises(HostError) as e:
        cgroups.check(host, limits)
    assert needle in e.value.message and "\n" not in e.value.message
    assert "Delegate=yes" in e.value.hint


def test_a_host_that_can_enforce_says_nothing():
    host = cgroups.Host("v2", "/x", "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service",
                        ("cpu", "memory", "pids"))
    cgroups.check(host, {"memory": 1 << 30, "nano_cpus": 10 ** 9, "pids_limit": 10})
    cgroups.check(cgroups.Host("hybrid", "/", None, ()), {})  # no limits: nothing to refuse
    assert cgroups.enforceable(host) == ["--memory", "--memory-reservation", "--memory-swap", "--cpus",
                                         "--cpu-shares", "--cpu-quota", "--cpu-period", "--pids-limit"]
    assert cgroups.enforceable(cgroups.Host("hybrid", "/", None, ())) == []


def test_the_apis_rule_discards_what_the_host_cannot_enforce_and_says_it():
    limits = {"memory": 1 << 30, "memory_swap": 2 << 30, "cpu_shares": 512, "pids_limit": 10}
    kept, dropped, warnings = cgroups.split_enforceable(cgroups.Host("hybrid", "/", None, ()), limits)
    assert (kept, dropped) == ({}, limits)
    assert [w.split(" ", 1)[0] for w in warnings] == ["CpuShares", "Memory", "MemorySwap", "PidsLimit"]
    assert all("limit discarded: " in w and "\n" not in w for w in warnings)
    partial = cgroups.Host("v2", "/x", "/sys/fs/cgroup/x", ("pids", "cpu"))
    kept, dropped, warnings = cgroups.split_enforceable(partial, limits)
    assert kept == {"cpu_shares": 512, "pids_limit": 10}
    assert dropped == {"memory": 1 << 30, "memory_swap": 2 << 30} and len(warnings) == 2
    full = cgroups.Host("v2", "/x", "/sys/fs/cgroup/x", ("pids", "cpu", "memory"))
    assert cgroups.split_enforceable(full, limits) == (limits, {}, [])


# ---- a cgroup for every container where one is delegated ------------------------------------------------
DELEGATED = cgroups.Host("v2", "/user.slice/user-1000.slice/session-1.scope",
                         "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service", ("cpu", "memory", "pids"))


@pytest.mark.parametrize("host, limits, own", [
    (DELEGATED, {}, True),  # every container, limits or not, as Podman's
    (DELEGATED, {"pids_limit": 5}, True),
    (cgroups.Host("hybrid", "/", None, ()), {}, False),  # this host: SIGSTOP for pause, /proc for stats
    (cgroups.Host("v2", "/user.slice/user-1000.slice/session-1.scope", None, ()), {}, False),  # nothing delegated
    (cgroups.Host("v1", None, None, ()), {}, False),
])
def test_a_container_gets_a_cgroup_of_its_own_where_one_is_delegated(host, limits, own):
    assert cgroups.wants_own(host, limits) is own


def test_without_cgroup_v2_a_container_without_limits_costs_one_stat(tmp_path, monkeypatch):
    def detect(root):
        raise AssertionError("detect read the host")
    monkeypatch.setattr(cgroups, "detect", detect)
    assert cgroups.placement("a" * 64, {}, root=str(tmp_path)) is None  # no cgroup.controllers: v1 or hybrid
    monkeypatch.setattr(cgroups, "detect", lambda root: DELEGATED)
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    p = cgroups.placement("a" * 64, {}, root=str(tmp_path))
    assert isinstance(p, cgroups.Placement) and p.limits == {}
    monkeypatch.setattr(cgroups, "detect", lambda root: cgroups.Host("v2", "/x", None, ()))
    assert cgroups.placement("a" * 64, {}, root=str(tmp_path)) is None
    assert isinstance(cgroups.placement("a" * 64, {"pids_limit": 5}, root=str(tmp_path)), cgroups.Placement)


def fake_delegated(tmp_path, cid, offered="memory pids"):
    """A delegated directory as the kernel shows it, with the container's cgroup files made ahead."""
    scope = tmp_path / f"rootless-{cid[:12]}"
    for d in (scope / "ctr", scope / "keeper"):
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
    (scope / "cgroup.controllers").write_text(offered + "\n")
    (scope / "cgroup.subtree_control").write_text("")
    return scope


def test_a_container_without_limits_is_placed_with_accounting(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "_user_bus_env", lambda: None)  # no systemd: a plain directory
    cid = "b" * 64
    scope = fake_delegated(tmp_path, cid)
    p = cgroups.Placement(cgroups.Host("v2", "/x", str(tmp_path), ("memory", "pids")), cid, {}, str(tmp_path))
    assert p.adopt(4242) == str(scope / "ctr")
    assert p.scope == str(scope)
    assert (scope / "ctr" / "cgroup.procs").read_text() == "4242"
    assert (scope / "cgroup.subtree_control").read_text() == "+memory +pids"  # stats' memory and processes


def test_a_failed_placement_without_limits_is_no_error_but_with_limits_is_one(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "_user_bus_env", lambda: None)
    host = cgroups.Host("v2", "/x", str(tmp_path / "gone"), ("memory", "pids"))
    p = cgroups.Placement(host, "c" * 64, {}, str(tmp_path))
    assert p.adopt(4242) is None and p.scope is None  # the container runs without a cgroup of its own
    p.settle(4242)  # nothing to settle
    assert not (tmp_path / "gone").exists() or not os.listdir(tmp_path / "gone")
    with pytest.raises(HostError) as e:
        cgroups.Placement(host, "c" * 64, {"pids_limit": 5}, str(tmp_path)).adopt(4242)
    assert "cannot" in e.value.message and "\n" not in e.value.message


def test_the_keeper_keeps_the_containers_cgroup_for_its_probes(tmp_path, monkeypatch):
    cid = "d" * 64
    scope = fake_delegated(tmp_path, cid)
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", str(tmp_path))
    real_read = cgroups._read
    monkeypatch.setattr(cgroups, "_read", lambda path: "0::/user.slice/other/ctr\n"
                        if path == "/proc/self/cgroup" else real_read(path))
    assert cgroups.open_own_procs(cid) is None  # not the container's: the keeper is not in a cgroup of its own
    monkeypatch.setattr(cgroups, "_read", lambda path: f"0::/rootless-{cid[:12]}/ctr\n"
                        if path == "/proc/self/cgroup" else real_read(path))
    fd = cgroups.open_own_procs(cid)
    assert fd is not None
    try:
        assert cgroups.join_by(fd) is True
    finally:
        os.close(fd)
    assert (scope / "ctr" / "cgroup.procs").read_text() == "0"  # the kernel reads 0 as the writer
    assert cgroups.open_own_procs("e" * 64) is None


def test_this_process_has_no_container_cgroup_to_keep():
    assert cgroups.open_own_procs("f" * 64) is None


def test_each_start_asks_for_a_scope_of_its_own_name(tmp_path, monkeypatch):
    """systemd may still be collecting the previous start's scope when a quick restart asks for
    the next one: the same name would be refused ("already exists"), so a start's scope is named
    by its keeper too, and the keeper still finds its container's cgroup under that name."""
    cid = "a" * 64
    placement = cgroups.Placement(cgroups.Host(2, "/x", "/sys/fs/cgroup/x", ("memory",)), cid, {})
    first, second = placement.unit(1000), placement.unit(1001)
    assert first != second and first.startswith(f"rootless-{cid[:12]}-") and second.endswith(".scope")
    scope = tmp_path / "user.slice" / first
    (scope / "ctr").mkdir(parents=True)
    (scope / "ctr" / "cgroup.procs").write_text("")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", str(tmp_path))
    real_read = cgroups._read
    monkeypatch.setattr(cgroups, "_read", lambda path: f"0::/user.slice/{first}/ctr\n"
                        if path == "/proc/self/cgroup" else real_read(path))
    fd = cgroups.open_own_procs(cid)
    assert fd is not None
    os.close(fd)
    assert cgroups.open_own_procs("b" * 64) is None


ODD_IDS = ["node1.1000.12.0.0", "node1.1000.12.0.1", "_x+y", "a/b", "../../..", "x" * 300, "ABCDEF0123456789",
           "abc", "0123456789ab/../x", "a b", "€uro"]


def test_a_hex_ids_cgroup_keeps_its_name():
    """``run``'s and ``build``'s ids (64 hex digits): the names of before, so that a container
    started before an upgrade is still found."""
    cid = "0123456789abcdef" * 4
    assert cgroups.cgroup_name(cid) == "rootless-0123456789ab"
    p = cgroups.Placement(cgroups.Host("v2", "/x", "/sys/fs/cgroup/x", ()), cid, {})
    assert p.unit(77) == "rootless-0123456789ab-77.scope"


def test_any_id_gets_a_safe_cgroup_name_of_its_own(tmp_path, monkeypatch):
    """An OCI caller's id (any characters but those the face refuses, alike in the first 12): a
    name that is one path component and a unit name, and no other id's, the hex ids' included."""
    import re
    ids = ODD_IDS + ["0123456789ab" + "0" * 52, "0123456789ab"]
    names = [cgroups.cgroup_name(cid) for cid in ids]
    assert len(set(names)) == len(names) - 1  # the two hex ids share their first 12 digits, as before
    for cid, name in zip(ids, names, strict=True):
        assert re.fullmatch(r"rootless-[0-9a-z]{12,17}", name), (cid, name)
    monkeypatch.setattr(cgroups, "_user_bus_env", lambda: None)  # no systemd: a plain directory
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", str(tmp_path))
    base = tmp_path / "deleg"
    base.mkdir()
    for cid in ODD_IDS:
        scope = base / cgroups.cgroup_name(cid)  # the files the kernel would show in it
        for d in (scope / "ctr", scope / "keeper"):
            d.mkdir(parents=True)
            (d / "cgroup.procs").write_text("")
        (scope / "cgroup.controllers").write_text("\n")
        p = cgroups.Placement(cgroups.Host("v2", "/x", str(base), ()), cid, {}, str(tmp_path))
        assert "/" not in p.unit(5)
        ctr = p.adopt(4242)
        assert ctr is not None and os.path.dirname(os.path.dirname(ctr)) == str(base), (cid, ctr)
        own = "/" + os.path.relpath(ctr, tmp_path)
        real_read = cgroups._read
        monkeypatch.setattr(cgroups, "_read", lambda path, own=own, real=real_read: f"0::{own}\n"
                            if path == "/proc/self/cgroup" else real(path))
        fd = cgroups.open_own_procs(cid)  # the keeper finds its container's cgroup by that name
        assert fd is not None, cid
        os.close(fd)
        assert all(cgroups.open_own_procs(other) is None for other in ODD_IDS if other != cid)
        monkeypatch.setattr(cgroups, "_read", real_read)
    assert sorted(os.listdir(base)) == sorted(cgroups.cgroup_name(c) for c in ODD_IDS)
