"""A detached start returns once the container's command is exec'd (Docker's), so a command
that cannot be exec'd fails the start with 127 or 126; `kill` returns once SIGKILL took effect."""

from __future__ import annotations

import json

import pytest

from tests.apiservice import ApiService
from tests.conftest import inspect, one_error

pytestmark = pytest.mark.userns


@pytest.mark.parametrize("flags", [(), ("--init",), ("-t",), ("--rm",)])
def test_run_detached_with_a_missing_command_is_127(busybox, flags):
    r = busybox("run", "-d", "--name", "m", *flags, "busybox", "/missing", expect=127)
    assert r.out == ""
    assert r.err.count("\n") == 1 and 'exec "/missing"' in r.err and "no such file or directory" in r.err
    if "--rm" in flags:
        assert busybox("ps", "-aq").out == ""
        return
    st = inspect(busybox, "m")["State"]
    assert (st["Status"], st["Running"], st["ExitCode"]) == ("exited", False, 127)
    assert "/missing" in st["Error"]


def test_run_detached_with_a_command_not_executable_is_126(busybox):
    r = busybox("run", "-d", "--name", "x", "busybox", "/etc/passwd", expect=126)
    assert "permission denied" in r.err
    assert inspect(busybox, "x")["State"]["ExitCode"] == 126
    busybox("create", "--name", "later", "busybox", "no-such-command")
    r = busybox("start", "later", expect=None)
    assert r.code != 0 and "executable file not found" in r.err
    assert inspect(busybox, "later")["State"]["ExitCode"] == 127


@pytest.mark.parametrize("command, code, needle", [("no-such-command", 127, "executable file not found"),
                                                   ("/etc/passwd", 126, "permission denied")])
def test_start_of_a_command_that_cannot_be_exec_d_exits_1_as_dockers_start(busybox, command, code, needle):
    # Docker's `start` (with -a too) says the daemon's error and exits 1; only `run` exits 127 or 126
    busybox("create", "--name", "later", "busybox", command)
    one_error(busybox("start", "later", expect=1), needle)
    one_error(busybox("start", "-a", "later", expect=1), needle)
    assert inspect(busybox, "later")["State"]["ExitCode"] == code  # the record keeps Docker's code


def _record(rl, cid: str) -> dict:
    """The container's record as the store holds it, read at once (no CLI start-up between)."""
    return json.loads((rl.root / "containers" / cid / "container.json").read_text())


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


@pytest.mark.parametrize("flags", [(), ("--init",)])
def test_run_detached_returns_once_the_command_is_exec_d(busybox, flags):
    """Before, `run -d` returned while PID 1 was still the runtime's setup: an `exec` right
    after could find it there. The process under the recorded pid is the command now (with
    --init, its child is)."""
    for _ in range(5):
        cid = busybox("run", "-d", *flags, "busybox", "sleep", "300").out.strip()
        pid = _record(busybox, cid)["state"]["pid"]
        if flags:
            children = open(f"/proc/{pid}/task/{pid}/children").read().split()
            assert children, "--init's child is not there yet"
            pid = int(children[0])
        assert _cmdline(pid) == b"sleep\0" + b"300\0"
        assert "sleep 300" in busybox("exec", cid, "ps", "-o", "args").out
        busybox("rm", "-f", cid)


def test_kill_returns_once_the_container_is_dead(busybox):
    for i in range(5):
        cid = busybox("run", "-d", "--name", f"k{i}", "busybox", "sleep", "300").out.strip()
        busybox("kill", f"k{i}")
        st = _record(busybox, cid)["state"]
        assert (st["status"], st["exit_code"]) == ("exited", 137)
        st = inspect(busybox, f"k{i}")["State"]
        assert (st["Status"], st["Running"], st["ExitCode"]) == ("exited", False, 137)


def test_api_start_of_a_missing_command_is_a_400_and_docker_run_exits_127(api: ApiService):
    status, body = api.request("POST", "/v1.41/containers/create?name=bad",
                               {"Image": "busybox", "Cmd": ["/missing"]})
    assert status == 201
    status, body = api.request("POST", "/v1.41/containers/bad/start")
    assert status == 400 and 'exec "/missing"' in body["message"]
    r = api.docker("run", "-d", "busybox", "/missing", expect=127)
    assert "no such file or directory" in r.err
    r = api.docker("run", "-d", "busybox", "/etc/passwd", expect=126)
    assert "permission denied" in r.err
