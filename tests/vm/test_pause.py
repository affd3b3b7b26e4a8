"""pause/unpause by the cgroup v2 freezer, for real, in the guest of ../shared/vm (`just vm-test`):
every container has a delegated cgroup of its own there, limits or not. Elsewhere this module
is skipped; the SIGSTOP way is tested on every host (tests/e2e/test_docker_extras.py)."""

from __future__ import annotations

import glob
import os

import pytest

from tests.conftest import inspect

pytestmark = [pytest.mark.userns, pytest.mark.skipif(
    not os.environ.get("ROOTLESS_VM_TEST"),
    reason="needs cgroup v2 with delegated controllers: run by `just vm-test` in the guest of ../shared/vm")]

SERVICE = f"/sys/fs/cgroup/user.slice/user-{os.getuid()}.slice/user@{os.getuid()}.service"


def test_pause_freezes_the_containers_cgroup(busybox):
    cid = busybox("run", "-d", "--network", "none", "--pids-limit", "50", "busybox", "sh", "-c",
                  "sleep 300 & sleep 300").out.strip()
    found = glob.glob(f"{SERVICE}/**/rootless-{cid[:12]}*", recursive=True)
    assert len(found) == 1, found
    ctr = os.path.join(found[0], "ctr")
    busybox("pause", cid)
    with open(os.path.join(ctr, "cgroup.events")) as f:
        assert "frozen 1" in f.read().splitlines()
    assert inspect(busybox, cid)["State"]["Paused"] is True
    assert "cgroup v2 freezer" in busybox("info").out
    busybox("unpause", cid)
    with open(os.path.join(ctr, "cgroup.events")) as f:
        assert "frozen 0" in f.read().splitlines()
    assert busybox("exec", cid, "echo", "thawed").out == "thawed\n"
    busybox("pause", cid)
    busybox("stop", "-t", "2", cid, timeout=60)  # a frozen container stops too
    assert inspect(busybox, cid)["State"]["Status"] == "exited"


def proc_state(pid: str) -> str:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2]


def test_pause_freezes_a_container_without_limits(busybox):
    cid = busybox("run", "-d", "--network", "none", "busybox", "sh", "-c", "sleep 300 & sleep 300").out.strip()
    found = glob.glob(f"{SERVICE}/**/rootless-{cid[:12]}*", recursive=True)
    assert len(found) == 1, found  # a cgroup of its own without any limit, as Podman gives
    ctr = os.path.join(found[0], "ctr")
    with open(os.path.join(ctr, "cgroup.procs")) as f:
        procs = f.read().split()
    assert str(inspect(busybox, cid)["State"]["Pid"]) in procs and len(procs) == 2  # its sleeps, no keeper
    assert busybox("stats", "--no-stream", "--format", "{{.PIDs}}", cid).out.strip() == "2"
    assert os.path.exists(os.path.join(ctr, "memory.current"))  # stats' memory, from its cgroup
    busybox("update", "--pids-limit", "20", cid)  # a running container without limits takes some
    with open(os.path.join(ctr, "pids.max")) as f:
        assert f.read().strip() == "20"
    busybox("pause", cid)
    with open(os.path.join(ctr, "cgroup.events")) as f:
        assert "frozen 1" in f.read().splitlines()
    assert inspect(busybox, cid)["State"]["Paused"] is True
    assert [proc_state(p) for p in procs if proc_state(p) in "Tt"] == []  # frozen, not stopped by a signal
    busybox("unpause", cid)
    with open(os.path.join(ctr, "cgroup.events")) as f:
        assert "frozen 0" in f.read().splitlines()
    assert busybox("exec", cid, "echo", "thawed").out == "thawed\n"
    busybox("rm", "-f", cid, timeout=60)
