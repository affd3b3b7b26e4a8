"""Resource limits on the host the suite runs on: where it cannot enforce them (this team's
machines have hybrid cgroups) every limit flag is refused in one line that names the missing
piece and the fix, never ignored; `stats` still shows what /proc tells. Enforcement itself is
tested in the cgroup v2 guest (tests/vm, `just vm-test`)."""

from __future__ import annotations

import json

import pytest

from rootless.runtime import cgroups
from tests.conftest import Rootless, inspect

pytestmark = pytest.mark.userns

HOST = cgroups.detect()
CAN = set(cgroups.enforceable(HOST))


@pytest.fixture
def bb(busybox) -> Rootless:
    return busybox


@pytest.mark.parametrize("flags", [("--memory", "64m"), ("--cpus", "0.5"), ("--pids-limit", "20"),
                                   ("--cpu-shares", "512"), ("--memory", "64m", "--memory-reservation", "32m"),
                                   ("--cpu-quota", "50000"), ("--cpu-period", "50000"), ("--cpuset-mems", "0")])
def test_a_limit_is_enforced_or_refused_in_one_line(bb, flags):
    if flags[0] in CAN:
        pytest.skip(f"this host enforces {flags[0]} (the guest's tests check it)")
    r = bb("run", "--rm", "--network", "none", *flags, "busybox", "true", expect=125)
    lines = r.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"rootless: error: {flags[0]} needs ")
    assert "Delegate=yes" in lines[1]
    assert bb("ps", "-aq").out == ""  # nothing was created
    r = bb("create", *flags, "busybox", "true", expect=125)
    assert bb("ps", "-aq").out == ""


@pytest.mark.parametrize("flags, message", [
    (("--memory", "1k"), "minimum memory limit allowed is 6MB"),
    (("--cpus", "0"), "range of CPUs is from 0.01"),
    (("--memory-swap", "1g"), "you should always set the memory limit when using memoryswap limit"),
    (("--blkio-weight", "5"), "range of blkio weight is from 10 to 1000"),
    (("--cpus", "1", "--cpu-quota", "50000"), "conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (("--cpu-period", "10"), "CPU cfs period can not be less than 1ms"),
    (("--memory-swappiness", "101"), "invalid value: 101, valid memory swappiness range is 0-100"),
    (("--gpus", "all"), "--gpus all: rootless has no GPU device driver"),
    (("--storage-opt", "size=1G"), "--storage-opt is not supported by rootless"),
    (("--cgroupns", "host"), "--cgroupns 'host' is not supported by rootless"),
    (("--runtime", "kata"), "unknown or invalid runtime name: kata"),
    (("--isolation", "hyperv"), "invalid isolation 'hyperv'"),
    (("--volume-driver", "nfs", "-v", "data:/data"), "error looking up volume plugin nfs"),
    (("--disable-content-trust=false",), "content trust is not supported by rootless"),
    (("--kernel-memory", "lots"), 'invalid argument \'lots\' for "--kernel-memory" flag'),
])
def test_bad_limit_flags_are_usage_errors(bb, flags, message):
    r = bb("run", "--rm", *flags, "busybox", "true", expect=125)
    assert message in r.err and "Traceback" not in r.err


def test_info_says_which_limits_are_enforced(bb):
    checks = {c["name"]: c for c in json.loads(bb("info", "--format", "json").out)}
    action = checks["cgroups"]["action"]
    if CAN:
        assert action.startswith("enforces ") or "enforces " in action
    else:
        assert "refused" in action and "ignored" not in action


def test_update_without_a_cgroup_is_refused_and_stats_reads_proc(bb):
    cid = bb("run", "-d", "--network", "none", "busybox", "sh", "-c", "while :; do :; done").out.strip()
    row = json.loads(bb("stats", "--no-stream", "--format", "{{json .}}", cid).out)
    assert row["ID"] == cid[:12] and row["PIDs"] == "1"
    assert float(row["CPUPerc"].rstrip("%")) > 20  # a busy loop
    assert inspect(bb, cid)["HostConfig"]["Memory"] == 0
    if "--pids-limit" not in CAN:
        r = bb("update", "--pids-limit", "5", cid, expect=1)
        assert "--pids-limit needs" in r.err
    assert bb("update", cid, expect=125).err.startswith("rootless: error: you must provide one or more flags")


def test_dockers_flags_of_no_effect_here_are_kept_or_discarded_as_docker_does(bb):
    """Flags Docker on a cgroup v2 host accepts: shown by inspect as given (--runtime, --cgroupns,
    --isolation, --volume-driver, --device-cgroup-rule), or discarded with a warning
    (--memory-swappiness, --oom-kill-disable); the container runs either way."""
    r = bb("run", "--name", "docker-flags", "--network", "none", "--runtime", "runc", "--cgroupns", "private",
           "--isolation", "default", "--volume-driver", "local", "--device-cgroup-rule", "c 1:3 rwm",
           "--memory-swappiness", "10", "--oom-kill-disable", "--kernel-memory", "64m", "--disable-content-trust",
           "busybox", "echo", "ran")
    assert r.out == "ran\n"
    assert "--memory-swappiness discarded" in r.err and "--oom-kill-disable discarded" in r.err
    assert "--kernel-memory discarded" in r.err
    hc = inspect(bb, "docker-flags")["HostConfig"]
    assert (hc["Runtime"], hc["CgroupnsMode"], hc["Isolation"], hc["VolumeDriver"]) == \
        ("runc", "private", "default", "local")
    assert hc["DeviceCgroupRules"] == ["c 1:3 rwm"]
    assert hc["MemorySwappiness"] is None and hc["OomKillDisable"] is None  # discarded, as Docker shows them
    bb("rm", "docker-flags")
    # a driver serves volumes only: binds and tmpfs mounts do not ask for it (Docker's rule)
    bb("create", "--name", "bound", "--volume-driver", "nfs", "-v", "/tmp:/host", "--mount",
       "type=tmpfs,dst=/t", "busybox", "true")
    r = bb("create", "--name", "quiet", "--memory-swappiness", "-1", "busybox", "true")
    assert "discarded" not in r.err  # -1 is Docker's default: nothing to discard
