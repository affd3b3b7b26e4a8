"""``--pid host`` (the API's ``HostConfig.PidMode: host``): the container shares the host's pid
namespace (``ps`` inside sees the user's processes, /proc is the host's), and still ends whole:
stop, kill, rm -f or its command's own end leave none of its processes behind, not even a
daemonized grandchild (the keeper is their subreaper, ``rootless.runtime.subreaper``)."""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest

from tests.conftest import inspect, one_error, wait_for

pytestmark = pytest.mark.userns


def _pids_running(marker: str) -> list[int]:
    """The processes whose command line holds ``marker`` (a sleep's unique number)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state != "Z":
            out.append(int(d))
    return out


@pytest.fixture
def host_sleep():
    """A process of the user's on the host, which the container must see."""
    p = subprocess.Popen(["sleep", "313"], stdin=subprocess.DEVNULL)
    yield p
    p.kill()
    p.wait()


def test_ps_inside_sees_a_host_process_and_proc_is_the_hosts(busybox, host_sleep):
    out = busybox("run", "--rm", "--pid", "host", "--network", "none", "busybox", "sh", "-c",
                  f"ps -o pid,args; echo; cat /proc/{host_sleep.pid}/cmdline | tr '\\0' ' '; echo; "
                  "readlink /proc/self/ns/pid").out
    ps, _, rest = out.partition("\n\n")
    cmdline, _, ns = rest.partition("\n")
    assert ns.strip() == os.readlink("/proc/self/ns/pid")  # the host's pid namespace, not one of its own
    assert any(line.split()[:3] == [str(host_sleep.pid), "sleep", "313"] for line in ps.splitlines()), ps
    assert cmdline.strip() == "sleep 313"


def test_inspect_shows_the_pid_mode_and_a_bad_mode_is_refused_in_one_line(busybox):
    busybox("create", "--name", "c", "--pid", "host", "busybox", "true")
    assert inspect(busybox, "c")["HostConfig"]["PidMode"] == "host"
    r = busybox("create", "--pid", "container:c", "busybox", "true", expect=125)
    one_error(r, "--pid", "container:c")
    assert busybox("ps", "-aq").out.split() == [inspect(busybox, "c")["Id"][:12]]


def _start_with_descendants(busybox, marker: int, **kw) -> None:
    """PID 1 (sleep), a child, and a daemonized grandchild (its parent gone: the keeper's now),
    one of them still holding the container's output."""
    busybox("run", "-d", "--name", "c", "--pid", "host", "--network", "none", "busybox", "sh", "-c",
            f"sleep {marker + 1} & (setsid sleep {marker + 2} >/dev/null 2>&1 &); (sleep {marker + 3} &); "
            f"exec sleep {marker}")
    wait_for(lambda: all(_pids_running(str(marker + i)) for i in range(4)), 10, "the container's processes")


@pytest.mark.parametrize("how", ["stop", "kill", "rm -f"])
def test_its_end_leaves_none_of_its_processes(busybox, how):
    marker = random.randrange(100000, 900000, 10)
    _start_with_descendants(busybox, marker)
    started = time.monotonic()
    busybox(*how.split(), "c")
    assert time.monotonic() - started < 8  # stop: PID 1 (sleep) ends on SIGTERM, no wait for SIGKILL
    for i in range(4):
        assert _pids_running(str(marker + i)) == [], (how, i)
    if how != "rm -f":
        assert inspect(busybox, "c")["State"]["Status"] == "exited"


def test_the_end_of_pid_1_ends_the_rest_even_one_holding_its_output(busybox):
    marker = random.randrange(100000, 900000, 10)
    r = busybox("run", "--pid", "host", "--network", "none", "busybox", "sh", "-c",
                f"(sleep {marker} &); (setsid sleep {marker + 1} >/dev/null 2>&1 &); echo done; exit 3",
                expect=3, timeout=20)
    assert r.out.strip() == "done"
    assert _pids_running(str(marker)) == [] and _pids_running(str(marker + 1)) == []


def test_init_still_works(busybox):
    marker = random.randrange(100000, 900000, 10)
    r = busybox("run", "--init", "--pid", "host", "--network", "none", "busybox", "sh", "-c",
                f"(sleep {marker} &); readlink /proc/self/ns/pid", timeout=20)
    assert r.out.strip() == os.readlink("/proc/self/ns/pid")
    assert _pids_running(str(marker)) == []


def test_top_lists_the_containers_tree_and_exec_sees_the_host(busybox, host_sleep):
    marker = random.randrange(100000, 900000, 10)
    _start_with_descendants(busybox, marker)
    pid1 = inspect(busybox, "c")["State"]["Pid"]
    top = busybox("top", "c").out
    assert str(pid1) in top and f"sleep {marker + 1}" in top, top
    assert "sleep 313" not in top, top  # not the host's other processes
    assert str(host_sleep.pid) in busybox("exec", "c", "ps", "-o", "pid").out.split()
    busybox("rm", "-f", "c")


def test_the_api_takes_pid_mode_host(api, host_sleep):
    status, out = api.request("POST", "/containers/create", {"Image": "busybox", "Cmd": ["ps", "-o", "pid"],
                                                             "HostConfig": {"PidMode": "host",
                                                                            "NetworkMode": "none"}})
    assert status == 201, out
    cid = out["Id"]
    assert api.request("GET", f"/containers/{cid}/json")[1]["HostConfig"]["PidMode"] == "host"
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    api.docker("wait", cid)
    assert str(host_sleep.pid) in api.docker("logs", cid).out.split()


def test_every_root_method_ends_clean_and_its_helpers_are_spared(rl_method, images):
    """fuse-overlayfs (a daemon the keeper inherits) is a helper, not one of the container's
    processes: it serves the root until the keeper unmounts it, and the container starts again."""
    rl = rl_method
    rl.load(images, "busybox")
    marker = random.randrange(100000, 900000, 10)
    argv = ["busybox", "sh", "-c", f"(setsid sleep {marker} >/dev/null 2>&1 &); cat /etc/hostname >/dev/null; echo ok"]
    assert rl("run", "--name", "c", "--pid", "host", "--network", "none", *argv, timeout=20).out.strip() == "ok"
    assert _pids_running(str(marker)) == []
    assert inspect(rl, "c")["State"]["Error"] == ""
    assert rl("start", "-a", "c", timeout=20).out.strip() == "ok"
    assert _pids_running(str(marker)) == []
    rl("rm", "c")


def test_a_healthcheck_runs_in_it(busybox):
    marker = random.randrange(100000, 900000, 10)
    busybox("run", "-d", "--name", "c", "--pid", "host", "--network", "none", "--health-cmd", "test -d /proc/1",
            "--health-interval", "100ms", "busybox", "sleep", str(marker))
    wait_for(lambda: (inspect(busybox, "c")["State"].get("Health") or {}).get("Status") == "healthy", 20, "healthy")
    busybox("rm", "-f", "c")
    assert _pids_running(str(marker)) == []


def test_a_process_of_exec_ends_with_it(busybox):
    """Docker's: what ``exec`` started ends with the container (here found by PID 1's mount namespace)."""
    marker = random.randrange(100000, 900000, 10)
    busybox("run", "-d", "--name", "c", "--pid", "host", "--network", "none", "busybox", "sleep", str(marker))
    busybox("exec", "-d", "c", "sleep", str(marker + 1))
    wait_for(lambda: _pids_running(str(marker + 1)), 10, "the exec'd process")
    busybox("kill", "c")
    assert _pids_running(str(marker)) == [] and _pids_running(str(marker + 1)) == []


def test_pause_stops_the_containers_processes_only(busybox, host_sleep):
    """Paused by signals (no delegated cgroup) or the freezer: never the host's other processes."""
    marker = random.randrange(100000, 900000, 10)
    _start_with_descendants(busybox, marker)
    busybox("pause", "c")
    try:
        state = {p: _state(p) for i in range(4) for p in _pids_running(str(marker + i))}
        assert len(state) == 4 and set(state.values()) <= {"T", "t", "D"}, state
        assert _state(host_sleep.pid) == "S"
        assert _state(os.getpid()) in ("R", "S")
    finally:
        busybox("unpause", "c")
    wait_for(lambda: all(_state(p) == "S" for i in range(4) for p in _pids_running(str(marker + i))), 5, "resumed")
    busybox("rm", "-f", "c")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_the_apis_top_lists_the_containers_tree(api, host_sleep):
    status, out = api.request("POST", "/containers/create", {"Image": "busybox", "Cmd": ["sh", "-c", "sleep 61 & wait"],
                                                             "HostConfig": {"PidMode": "host", "NetworkMode": "none"}})
    assert status == 201, out
    assert api.request("POST", f"/containers/{out['Id']}/start")[0] == 204
    pid1 = api.request("GET", f"/containers/{out['Id']}/json")[1]["State"]["Pid"]
    wait_for(lambda: len(api.request("GET", f"/containers/{out['Id']}/top")[1]["Processes"]) == 2, 10, "two processes")
    rows = api.request("GET", f"/containers/{out['Id']}/top")[1]["Processes"]
    assert [r[1] for r in rows][0] == str(pid1) and rows[1][-1] == "sleep 61", rows
    assert str(host_sleep.pid) not in [r[1] for r in rows]


def test_with_the_default_network_and_a_published_port(busybox):
    """slirp4netns and the port relay are the keeper's helpers: they live until the end and then go."""
    marker = random.randrange(100000, 900000, 10)
    busybox("run", "-d", "--name", "c", "--pid", "host", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
            f"(setsid sleep {marker} >/dev/null 2>&1 &); sleep {marker + 1}")
    wait_for(lambda: _pids_running(str(marker)) and _pids_running(str(marker + 1)), 10, "running")
    busybox("stop", "c")
    assert _pids_running(str(marker)) == [] and _pids_running(str(marker + 1)) == []
    assert busybox("start", "c").out.strip() == "c"
    wait_for(lambda: _pids_running(str(marker)), 10, "running again")
    busybox("rm", "-f", "c")
    assert _pids_running(str(marker)) == [] and _pids_running(str(marker + 1)) == []


def _zombie_children(pid: int) -> list[int]:
    """The zombies whose parent is ``pid``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(d))
    return out


def test_orphans_are_reaped_as_they_exit_while_it_runs(busybox):
    """The keeper is the subreaper of the container's orphans: each is reaped when it exits, not
    left a zombie until the container's end."""
    marker = random.randrange(100000, 900000, 10)
    busybox("run", "-d", "--name", "c", "--pid", "host", "--network", "none", "busybox", "sh", "-c",
            f"for i in $(seq 20); do (sleep 0.2 &); done; sleep 1; touch /tmp/made; exec sleep {marker}")
    wait_for(lambda: busybox("exec", "c", "test", "-e", "/tmp/made", expect=None).code == 0, 15,
             "the orphans' end")
    pid1 = inspect(busybox, "c")["State"]["Pid"]
    with open(f"/proc/{pid1}/stat") as f:
        keeper = int(f.read().rsplit(")", 1)[1].split()[1])
    time.sleep(0.3)
    assert _zombie_children(keeper) == []
    assert inspect(busybox, "c")["State"]["Running"]
    busybox("rm", "-f", "c")


def test_healthcheck_probes_keep_their_status_while_orphans_are_reaped(busybox):
    """The probes are the keeper's children too: their exit codes are the monitor's, never taken by
    the orphans' reaping (the container makes orphans all the time)."""
    busybox("run", "-d", "--name", "c", "--pid", "host", "--network", "none", "--health-cmd", "exit 3",
            "--health-interval", "0.2s", "--health-retries", "1", "busybox", "sh", "-c",
            "while :; do (sleep 0.01 &); sleep 0.05; done")
    wait_for(lambda: len(inspect(busybox, "c")["State"]["Health"]["Log"]) >= 3, 20, "three probes")
    log = inspect(busybox, "c")["State"]["Health"]["Log"]
    assert [entry["ExitCode"] for entry in log][:3] == [3, 3, 3], log
    busybox("rm", "-f", "c")
