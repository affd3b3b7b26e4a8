"""Resource limits for real, in a guest with pure cgroup v2 and a delegated user subtree (this
host has hybrid cgroups): `just vm-test` boots ../shared/vm's guest and runs this module there as
its unprivileged user. Elsewhere the module is skipped, saying why; the refusals a host without
delegation gives are tested on every host (tests/unit/test_cgroups.py, tests/e2e/test_limits.py)."""

from __future__ import annotations

import glob
import json
import os
import re

import pytest

from tests.conftest import Rootless, inspect, wait_for

pytestmark = [pytest.mark.userns, pytest.mark.skipif(
    not os.environ.get("ROOTLESS_VM_TEST"),
    reason="needs cgroup v2 with delegated controllers: run by `just vm-test` in the guest of ../shared/vm")]

SERVICE = f"/sys/fs/cgroup/user.slice/user-{os.getuid()}.slice/user@{os.getuid()}.service"


@pytest.fixture
def bb(busybox) -> Rootless:
    return busybox


def scope_of(cid: str) -> str:
    found = glob.glob(f"{SERVICE}/**/rootless-{cid[:12]}*", recursive=True)
    assert len(found) == 1, found
    return found[0]


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_the_container_and_its_keeper_have_cgroups_of_their_own(bb):
    cid = bb("run", "-d", "--network", "none", "--pids-limit", "50", "--memory", "64m", "--cpus", "0.5",
             "busybox", "sleep", "300").out.strip()
    scope = scope_of(cid)
    pid = inspect(bb, cid)["State"]["Pid"]
    assert read(f"{scope}/ctr/cgroup.procs").split() == [str(pid)]  # the keeper and helpers are elsewhere
    assert read(f"{scope}/keeper/cgroup.procs").split()
    assert read(f"{scope}/ctr/pids.max").strip() == "50"
    assert read(f"{scope}/ctr/memory.max").strip() == str(64 << 20)
    assert read(f"{scope}/ctr/cpu.max").strip() == "50000 100000"
    inside = bb("exec", cid, "sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/pids.max").out.split()
    assert inside == ["0::/", "50"]  # its own cgroup namespace, its limits at its root
    hc = inspect(bb, cid)["HostConfig"]
    assert (hc["PidsLimit"], hc["Memory"], hc["NanoCpus"]) == (50, 64 << 20, 500_000_000)


def test_a_pids_limit_stops_a_fork_bomb(bb):
    r = bb("run", "--rm", "--network", "none", "--pids-limit", "10", "busybox", "sh", "-c",
           "for i in $(seq 40); do sleep 5 & done; wait", expect=None)
    assert r.code != 0 and "can't fork" in r.err


def test_a_memory_limit_oom_kills_and_inspect_says_so(bb):
    r = bb("run", "--name", "oom", "--network", "none", "--memory", "32m", "--memory-swap", "32m", "busybox",
           "sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived", expect=137)
    assert "survived" not in r.out
    st = inspect(bb, "oom")["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137
    assert "Exited (137)" in bb("ps", "-a", "--filter", "name=oom").out
    bb("run", "--name", "fine", "--network", "none", "--memory", "32m", "busybox", "true")
    assert inspect(bb, "fine")["State"]["OOMKilled"] is False


def test_a_cpu_quota_throttles(bb):
    cid = bb("run", "-d", "--network", "none", "--cpus", "0.2", "busybox", "sh", "-c",
             "while :; do :; done").out.strip()
    scope = scope_of(cid)

    def throttled():
        stat = dict(line.split() for line in read(f"{scope}/ctr/cpu.stat").splitlines())
        return int(stat["nr_throttled"]) > 3 and stat
    stat = wait_for(throttled, 60, "cpu.stat to count throttled periods")
    assert int(stat["throttled_usec"]) > 0
    cpu = float(bb("stats", "--no-stream", "--format", "{{.CPUPerc}}", cid).out.strip().rstrip("%"))
    assert 5 < cpu < 35, cpu  # 20% of one CPU, give or take the emulated machine's noise


def test_cpu_quota_and_period_are_cpu_max_and_update_keeps_the_other(bb):
    cid = bb("run", "-d", "--network", "none", "--cpu-quota", "20000", "--cpu-period", "50000", "busybox",
             "sleep", "300").out.strip()
    ctr = f"{scope_of(cid)}/ctr"
    assert read(f"{ctr}/cpu.max").strip() == "20000 50000"
    hc = inspect(bb, cid)["HostConfig"]
    assert (hc["CpuQuota"], hc["CpuPeriod"], hc["NanoCpus"]) == (20000, 50000, 0)
    bb("update", "--cpu-quota", "30000", cid)  # the period stays
    assert read(f"{ctr}/cpu.max").strip() == "30000 50000"
    bb("update", "--cpus", "0.5", cid)  # --cpus replaces both
    assert read(f"{ctr}/cpu.max").strip() == "50000 100000"
    hc = inspect(bb, cid)["HostConfig"]
    assert (hc["CpuQuota"], hc["CpuPeriod"], hc["NanoCpus"]) == (0, 0, 500_000_000)
    r = bb("run", "--rm", "--network", "none", "--cpus", "1", "--cpu-quota", "50000", "busybox", "true", expect=125)
    assert "Nano CPUs and CPU Quota cannot both be set" in r.err


def test_update_changes_a_running_limit_and_stats_shows_usage(bb):
    cid = bb("run", "-d", "--network", "none", "--pids-limit", "50", "--memory", "64m", "busybox",
             "sleep", "300").out.strip()
    scope = scope_of(cid)
    assert bb("update", "--pids-limit", "7", "--memory", "48m", cid).out.strip() == cid
    assert read(f"{scope}/ctr/pids.max").strip() == "7"
    assert read(f"{scope}/ctr/memory.max").strip() == str(48 << 20)
    hc = inspect(bb, cid)["HostConfig"]
    assert (hc["PidsLimit"], hc["Memory"]) == (7, 48 << 20)
    row = json.loads(bb("stats", "--no-stream", "--format", "{{json .}}", cid).out)
    assert row["MemUsage"].endswith("/ 48MiB") and row["PIDs"] == "1"
    assert re.fullmatch(r"\d+\.\d\d%", row["CPUPerc"])


def test_no_cgroup_is_left_after_rm(bb):
    cid = bb("run", "-d", "--network", "none", "--pids-limit", "20", "busybox", "sleep", "300").out.strip()
    assert scope_of(cid)
    bb("rm", "-f", cid)
    wait_for(lambda: not glob.glob(f"{SERVICE}/**/rootless-{cid[:12]}*", recursive=True), 30,
             "the container's scope to go")
    bb("run", "--rm", "--network", "none", "--memory", "64m", "busybox", "true")
    wait_for(lambda: not glob.glob(f"{SERVICE}/**/rootless-*", recursive=True), 30, "every scope to go")


def _disk_of(path) -> tuple[str, str]:
    """The whole disk under ``path``'s filesystem: (/dev/NAME, "MAJ:MIN")."""
    st = os.stat(path)
    sys_dir = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if os.path.exists(f"{sys_dir}/partition"):
        sys_dir = os.path.dirname(sys_dir)
    uevent = dict(line.split("=", 1) for line in read(f"{sys_dir}/uevent").split())
    return f"/dev/{uevent['DEVNAME']}", f"{uevent['MAJOR']}:{uevent['MINOR']}"


def _timed_write(bb, flags, data_dir) -> tuple[float, str]:
    import time
    cid = bb("run", "-d", "--network", "none", "-v", f"{data_dir}:/data", *flags, "busybox", "sleep", "300").out.strip()
    start = time.monotonic()
    bb("exec", cid, "dd", "if=/dev/zero", "of=/data/f", "bs=64k", "count=48", "oflag=direct")
    return time.monotonic() - start, cid


def test_io_limits_are_refused_until_io_is_delegated_then_they_hold(bb, tmp_path):
    """Last here: it changes the guest. Stock systemd delegates cpu, memory and pids, not io, so
    an io limit is refused in one line naming the Delegate= fix; once an administrator applies
    that fix (the drop-in the message names, a reload, the user manager re-executed) the same
    flags hold: io.max carries the rate and a direct write is held to it."""
    import subprocess
    dev, majmin = _disk_of(tmp_path)
    r = bb("run", "--rm", "--network", "none", "--device-write-bps", f"{dev}:1mb", "busybox", "true", expect=125)
    assert "needs the io controller" in r.err and "Delegate=" in r.err and len(r.err.splitlines()) <= 2
    if subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("the guest's user cannot sudo: the Delegate= fix cannot be applied here")
    fix = ("mkdir -p /etc/systemd/system/user@.service.d "
           "&& printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' "
           "> /etc/systemd/system/user@.service.d/io.conf && systemctl daemon-reload")
    subprocess.run(["sudo", "-n", "sh", "-c", fix], check=True)
    subprocess.run(["systemctl", "--user", "daemon-reexec"], check=True)
    assert "--device-write-bps" in bb("info", "--format", "json").out  # info now lists the io limits
    free, _ = _timed_write(bb, (), tmp_path)
    held, cid = _timed_write(bb, ("--device-write-bps", f"{dev}:1mb", "--blkio-weight", "300"), tmp_path)
    ctr = f"{scope_of(cid)}/ctr"
    assert f"{majmin} rbps=max wbps=1048576" in read(f"{ctr}/io.max")
    assert held >= 2.0 and held > 2 * free, (held, free)  # 3 MiB at 1 MiB/s (the kernel's throttle, not ours)
    blk = bb("stats", "--no-stream", "--format", "{{.BlockIO}}", cid).out
    assert re.search(r"/ 3(\.\d+)?MB", blk), blk
    # operations a second, memory nodes (cpuset, delegated by the same fix)
    cid = bb("run", "-d", "--network", "none", "--device-read-iops", f"{dev}:100", "--device-write-iops",
             f"{dev}:50", "--cpuset-mems", "0", "busybox", "sleep", "300").out.strip()
    ctr = f"{scope_of(cid)}/ctr"
    assert f"{majmin} rbps=max wbps=max riops=100 wiops=50" in read(f"{ctr}/io.max")
    assert read(f"{ctr}/cpuset.mems").strip() == "0"
    hc = inspect(bb, cid)["HostConfig"]
    assert hc["BlkioDeviceWriteIOps"] == [{"Path": dev, "Rate": 50}] and hc["CpusetMems"] == "0"
    # a device's own weight: io.weight takes it where the device has BFQ or io.cost, else one line says so
    scheduler = read(f"/sys/dev/block/{majmin}/queue/scheduler") if os.path.exists(
        f"/sys/dev/block/{majmin}/queue/scheduler") else ""
    r = bb("run", "-d", "--network", "none", "--blkio-weight-device", f"{dev}:200", "busybox", "sleep", "300",
           expect=None)
    if r.code == 0:
        assert f"{majmin} 1920" in read(f"{scope_of(r.out.strip())}/ctr/io.weight")
        assert inspect(bb, r.out.strip())["HostConfig"]["BlkioWeightDevice"] == [{"Path": dev, "Weight": 200}]
    else:
        assert r.code == 125 and "cannot set io.weight of the container's cgroup" in r.err, (r, scheduler)
        assert "BFQ" in r.err and len(r.err.splitlines()) == 2


def test_a_health_probe_runs_in_the_containers_cgroup_and_counts_against_its_limits(bb):
    for limits in ((), ("--memory", "64m")):  # every container has a cgroup here, limits or not
        cid = bb("run", "-d", "--network", "none", *limits, "--health-cmd",
                 "cat /proc/self/cgroup > /tmp/probe; exit 0", "--health-interval", "1s", "busybox", "sleep",
                 "300").out.strip()
        wait_for(lambda c=cid: inspect(bb, c)["State"]["Health"]["Status"] == "healthy", timeout=60)
        # the container's cgroup, its namespace's root (in the keeper's: 0::/../keeper)
        assert bb("exec", cid, "cat", "/tmp/probe").out == "0::/\n"
        assert "rootless-" in scope_of(cid)
    # PID 1 and the probe's shell fill --pids-limit 2: the shell's fork fails, as under Docker
    cid = bb("run", "-d", "--network", "none", "--pids-limit", "2", "--health-cmd", "true & wait",
             "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "300").out.strip()
    wait_for(lambda: inspect(bb, cid)["State"]["Health"]["Status"] == "unhealthy", timeout=60)
    assert "fork" in inspect(bb, cid)["State"]["Health"]["Log"][-1]["Output"]
