"""An OCI bundle's ``linux.resources`` for real (issue 26): `rootless oci` puts the container in a
cgroup of its own with the config's limits, as `run --memory/--pids-limit` do, where a cgroup v2
subtree is delegated. Runs in the guest of ../shared/vm (`just vm-test`); elsewhere skipped, saying
why (the refusal and the one-line warning of a host without delegation: tests/e2e/test_oci_runtime.py)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import Rootless, rootless_argv, wait_for

pytestmark = [pytest.mark.userns, pytest.mark.skipif(
    not os.environ.get("ROOTLESS_VM_TEST"),
    reason="needs cgroup v2 with delegated controllers: run by `just vm-test` in the guest of ../shared/vm")]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_an_oci_bundles_linux_resources_are_its_cgroups_limits(busybox: Rootless, tmp_path):
    bundle, state = tmp_path / "bundle", tmp_path / "oci-state"
    busybox("bundle", "busybox", bundle, "sleep", "300")
    try:
        config = json.loads((bundle / "config.json").read_text())
        config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50},
                                        "cpu": {"quota": 50000, "period": 100000}}
        (bundle / "config.json").write_text(json.dumps(config))
        pid_file, out = tmp_path / "pid", tmp_path / "out"
        with open(out, "wb") as f:  # runc's pass-through: the container keeps the caller's stdio (not a pipe here)
            r = subprocess.run(rootless_argv() + ["oci", "--root", str(state), "run", "-d", "--bundle", str(bundle),
                                                  "--pid-file", str(pid_file), "c1"],
                               stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=busybox.env, timeout=120)
        assert r.returncode == 0, out.read_text()
        assert "warning" not in out.read_text(), out.read_text()  # delegated: applied, not warned about
        pid = int(pid_file.read_text())
        cgroup = "/sys/fs/cgroup" + read(f"/proc/{pid}/cgroup").split("::", 1)[1]  # the host's view of it
        assert read(f"{cgroup}/memory.max") == str(64 << 20)
        assert read(f"{cgroup}/pids.max") == "50"
        assert read(f"{cgroup}/cpu.max") == "50000 100000"
        assert read(f"{cgroup}/cgroup.procs").split() == [str(pid)]  # the keeper is elsewhere
    finally:
        busybox("oci", "--root", state, "delete", "--force", "c1", expect=None)
        busybox("unshare", "rm", "-rf", bundle, expect=None)
    r = busybox("oci", "--root", state, "state", "c1", expect=None)
    assert r.code == 1 and "does not exist" in r.err
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the container gone")
