"""``rootless run`` as a batch job runs it (issue 26, point 3), on one machine: the host's name
with ``--network host`` (Docker's rule: a job's ranks see their node's name), ``--uts host``,
``--ipc host`` (the host's /dev/shm and IPC namespace, for MPI), the job's private runtime
directory without ``XDG_RUNTIME_DIR``, and the SIGTERM that Slurm's scancel and time limit send
to every process of a step: the keeper stops the container (SIGKILL after its stop timeout) and
cleans up before Slurm's SIGKILL comes. The real cluster's tests are in tests/cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import inspect, one_error, rootless_argv, wait_for

pytestmark = pytest.mark.userns


def test_network_host_takes_the_hosts_name(busybox):
    assert busybox("run", "--rm", "--network", "host", "busybox", "hostname").out.strip() == os.uname().nodename
    # an explicit --hostname still wins, as with Docker
    assert busybox("run", "--rm", "--network", "host", "--hostname", "h1", "busybox", "hostname").out.strip() == "h1"


def test_uts_host_shares_the_hosts_uts_namespace(busybox):
    out = busybox("run", "--rm", "--uts", "host", "--network", "none", "busybox", "sh", "-c",
                  "hostname; readlink /proc/self/ns/uts").out.split()
    assert out == [os.uname().nodename, os.readlink("/proc/self/ns/uts")]
    one_error(busybox("run", "--rm", "--uts", "private", "busybox", "true", expect=125), "--uts")
    assert inspect(busybox, busybox("create", "--uts", "host", "busybox").out.strip())["HostConfig"]["UTSMode"] \
        == "host"


def test_ipc_host_shares_dev_shm_and_the_ipc_namespace(busybox):
    probe = f"/dev/shm/rootless-test-{os.getpid()}"
    with open(probe, "w") as f:
        f.write("from the host\n")
    try:
        out = busybox("run", "--rm", "--ipc", "host", "--network", "host", "busybox", "sh", "-c",
                      f"cat {probe}; echo back > {probe}.back; readlink /proc/self/ns/ipc").out.split("\n")
        assert out[0] == "from the host"
        assert out[1] == os.readlink("/proc/self/ns/ipc")
        with open(probe + ".back") as f:
            assert f.read() == "back\n"
    finally:
        for p in (probe, probe + ".back"):
            if os.path.exists(p):
                os.unlink(p)
    private = busybox("run", "--rm", "--ipc", "private", "busybox", "sh", "-c",
                      "ls /dev/shm; readlink /proc/self/ns/ipc").out.split()
    assert private[-1] != os.readlink("/proc/self/ns/ipc") and probe.rsplit("/", 1)[1] not in private
    cid = busybox("create", "--ipc", "host", "busybox").out.strip()
    assert inspect(busybox, cid)["HostConfig"]["IpcMode"] == "host"


def test_ipc_modes_rootless_cannot_honour_are_refused_in_one_line(busybox):
    for mode in ("none", "container:x", "bogus"):
        one_error(busybox("run", "--rm", "--ipc", mode, "busybox", "true", expect=125), "--ipc")
    assert busybox("ps", "-aq").out == ""


def _keeper_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_sigterm_to_the_keeper_stops_the_container_and_leaves_nothing(busybox):
    """Slurm signals every process of a step: PID 1 (a sleep ignores SIGTERM), the CLI and the
    keeper. The keeper stops the container like ``stop`` (SIGKILL after --stop-timeout), so a --rm
    container is gone, record and runtime files, before Slurm's own SIGKILL (KillWait, 30 s)."""
    cid = busybox("run", "-d", "--rm", "--stop-timeout", "1", "busybox", "sleep", "300").out.strip()
    pid = inspect(busybox, cid)["State"]["Pid"]
    keeper = _keeper_of(pid)
    started = time.monotonic()
    os.kill(keeper, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{keeper}"), 15, "the keeper to end")
    assert time.monotonic() - started < 8
    assert not os.path.exists(f"/proc/{pid}")
    assert busybox("ps", "-aq").out == ""
    assert list((busybox.root / "containers").iterdir()) == []
    assert not any(p.name.startswith(cid) for p in busybox.runtime.rglob("*"))


def test_sigterm_to_the_keeper_of_a_container_that_handles_it_ends_it_at_once(busybox):
    cid = busybox("run", "-d", "--name", "handles", "busybox", "sh", "-c",
                  "trap 'exit 3' TERM; while :; do sleep 0.1; done").out.strip()
    keeper = _keeper_of(inspect(busybox, cid)["State"]["Pid"])
    started = time.monotonic()
    os.kill(keeper, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{keeper}"), 15, "the keeper to end")
    assert time.monotonic() - started < 5
    st = inspect(busybox, "handles")["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 3)


def test_a_job_without_xdg_runtime_dir_keeps_its_runtime_files_in_the_jobs_tmpdir(busybox, tmp_path):
    jobtmp = tmp_path / "jobtmp"
    jobtmp.mkdir()
    env = {k: v for k, v in busybox.env.items() if k != "XDG_RUNTIME_DIR"}
    env.update(SLURM_JOB_ID="4242", TMPDIR=str(jobtmp))
    cp = subprocess.run(rootless_argv() + ["run", "--rm", "busybox", "echo", "ok"], env=env, capture_output=True,
                        text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "ok\n", "")
    top = jobtmp / f"rootless-run-{os.getuid()}-job4242"
    assert top.is_dir() and (top.stat().st_mode & 0o777) == 0o700
    # the epilog of docs/hpc.md removes it at the job's end
    epilog = subprocess.run(["sh", os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                                                "slurm-epilog.sh")],
                            env=dict(SLURM_JOB_ID="4242", SLURM_JOB_UID=str(os.getuid()), PATH=os.environ["PATH"],
                                     ROOTLESS_JOB_TMPDIRS=str(jobtmp)), capture_output=True, text=True)
    assert epilog.returncode == 0, epilog.stderr
    assert not top.exists()


def test_the_docker_cli_runs_with_ipc_host_and_refuses_what_rootless_cannot_honour(api):
    """``docker run --ipc host`` against ``rootless system service`` (HostConfig.IpcMode)."""
    r = api.docker("run", "--rm", "--ipc", "host", "--network", "host", "busybox", "sh", "-c",
                   "readlink /proc/self/ns/ipc; hostname")
    assert r.out.split() == [os.readlink("/proc/self/ns/ipc"), os.uname().nodename]
    for mode in ("container:x", "none"):
        status, out = api.request("POST", "/containers/create",
                                  {"Image": "busybox", "HostConfig": {"IpcMode": mode}})
        assert status == 400 and "IpcMode" in out["message"] and "\n" not in out["message"], out
    assert api.request("GET", "/containers/json?all=1")[1] == []
