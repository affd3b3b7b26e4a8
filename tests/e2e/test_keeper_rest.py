"""A resting keeper (issue 25): an idle container's keeper execs a tiny program in its own
process (``runtime.hibernate``, ``runtime.idlewait``) and is Python again when the container
needs it: its output, its exit, a client of a published port or of the attach socket, a signal.

``ROOTLESS_KEEPER_IDLE`` is short here so that the keepers rest within the tests' waits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import Rootless, rootless_argv, wait_for
from tests.e2e.test_network import HTTPD, UDP_ECHO, fetch, fetch_eventually, free_port, port_is_free, record

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images, monkeypatch) -> Rootless:
    monkeypatch.setenv("ROOTLESS_KEEPER_IDLE", "0.3")
    rl.load(images, "busybox")
    return rl


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _resting(pid: int) -> bool:
    """The keeper ``pid`` is the idle program: its name, and no interpreter's memory."""
    st = _status(pid)
    return st["Name"] == "rootless-keeper" and int(st["VmRSS"].split()[0]) < 1024


def _keeper(rl: Rootless, ref: str) -> tuple[int, str]:
    st = record(rl, ref)["state"]
    return st["keeper"], st["keeper_start"]


def _rests(rl: Rootless, ref: str) -> int:
    pid, _ = _keeper(rl, ref)
    wait_for(lambda: _resting(pid), timeout=20, what="the keeper to rest")
    return pid


def test_an_idle_keeper_rests_and_wakes_for_the_containers_output_and_end(bb, tmp_path):
    shared = tmp_path / "w"
    shared.mkdir()
    os.chmod(shared, 0o777)
    bb("run", "-d", "--name", "c", "-v", f"{shared}:/w", "busybox", "sh", "-c",
       "echo first; while [ ! -e /w/go ]; do sleep 0.1; done; echo second; exec sleep 600")
    keeper = _rests(bb, "c")
    start = _keeper(bb, "c")[1]
    assert bb("logs", "c").out == "first\n"
    assert _resting(keeper)  # its pipes were read from outside: empty, nothing to wake it for
    (shared / "go").write_text("")
    # its output wakes it: logged without a `logs` to ask for it (the log file itself)
    log = bb.root / "containers" / record(bb, "c")["id"] / "ctr.log"
    wait_for(lambda: b"second" in log.read_bytes(), what="the output after the rest in the log")
    assert bb("logs", "c").out == "first\nsecond\n"
    assert _keeper(bb, "c") == (keeper, start)  # the same process throughout
    assert _rests(bb, "c") == keeper
    assert bb("ps", "--format", "{{.Names}} {{.Status}}").out.startswith("c Up")
    bb("exec", "c", "true")
    bb("stop", "-t", "1", "c")  # its end wakes it (PID 1 ignores SIGTERM: killed): recorded, the keeper leaves
    assert bb("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "c").out.split() == ["exited", "137"]
    wait_for(lambda: not os.path.exists(f"/proc/{keeper}"), what="the keeper to leave")
    bb("start", "c")  # and a stopped container starts again
    _rests(bb, "c")
    bb("rm", "-f", "c")


def test_a_resting_keeper_serves_its_published_ports(bb):
    port = free_port()
    bb("run", "-d", "--name", "web", "-e", "MSG=rested", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "rested\n"
    keeper = _rests(bb, "web")
    assert fetch(f"http://127.0.0.1:{port}/") == "rested\n"  # the first client wakes it
    assert _rests(bb, "web") == keeper
    for _ in range(3):
        assert fetch(f"http://127.0.0.1:{port}/") == "rested\n"
    bb("rm", "-f", "web")
    wait_for(lambda: port_is_free(port), what="the host port to be free")


def test_a_resting_keeper_tells_a_waiting_client_and_takes_its_signals(bb):
    bb("run", "-d", "--name", "c", "busybox", "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done")
    keeper = _rests(bb, "c")
    waiting = subprocess.Popen(rootless_argv() + ["wait", "c"], env=bb.env, stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    wait_for(lambda: not _resting(keeper), what="the client to wake the keeper")
    assert _rests(bb, "c") == keeper  # and it rests again with the client
    os.kill(keeper, signal.SIGTERM)  # as a Slurm job's end: a stop of the container
    out, _ = waiting.communicate(timeout=60)
    assert out.decode().strip() == "7"
    assert bb("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "c").out.split() == ["exited", "7"]
    bb("rm", "c")


def test_a_resting_containers_end_applies_its_policies(bb):
    bb("run", "-d", "--name", "gone", "--rm", "busybox", "sh", "-c", "sleep 3")
    bb("run", "-d", "--name", "again", "--restart", "on-failure:1", "busybox", "sh", "-c", "sleep 3; exit 3")
    _rests(bb, "gone")
    _rests(bb, "again")
    wait_for(lambda: bb("ps", "-a", "-q", "--filter", "name=gone").out == "", what="the --rm container to go")
    wait_for(lambda: bb("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "again").out.split() == ["1", "exited"],
             timeout=60, what="the restart and the second exit")
    assert bb("inspect", "-f", "{{.State.ExitCode}}", "again").out.strip() == "3"
    bb("rm", "again")


def test_a_keeper_stays_awake_when_told(bb, monkeypatch):
    monkeypatch.setenv("ROOTLESS_KEEPER_IDLE", "0")
    bb("run", "-d", "--name", "awake", "busybox", "sleep", "600")
    monkeypatch.setenv("ROOTLESS_KEEPER_IDLE", "0.3")
    bb("run", "-d", "--name", "rests", "busybox", "sleep", "600")
    _rests(bb, "rests")  # the one started first has idled longer, awake
    assert not _resting(_keeper(bb, "awake")[0])
    bb("rm", "-f", "awake", "rests")


def test_a_resting_keeper_relays_a_datagram_to_a_published_udp_port(bb):
    """busybox has no UDP server: the echo server joins the container's network namespace."""
    port = free_port(socket.SOCK_DGRAM)
    bb("run", "-d", "--name", "u", "-p", f"127.0.0.1:{port}:9999/udp", "busybox", "sleep", "600")
    keeper = _rests(bb, "u")  # a UDP port without flows has nothing to sweep
    server = subprocess.Popen([sys.executable, "-c", UDP_ECHO, str(keeper), "9999"], stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"ready\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(b"ping", ("127.0.0.1", port))  # it wakes the keeper, whose relay takes it
            assert client.recvfrom(100)[0] == b"PING"
    finally:
        server.kill()
        server.wait()
    bb("rm", "-f", "u")


def test_a_resting_keeper_runs_its_health_checks_on_time(bb):
    bb("run", "-d", "--name", "h", "--health-cmd", "echo probe", "--health-interval", "1s", "busybox", "sleep", "600")

    def last_probe() -> tuple[str, str]:
        h = json.loads(bb("inspect", "-f", "{{json .State.Health}}", "h").out)
        return h["Status"], (h["Log"][-1]["Start"] if h["Log"] else "")
    keeper = _rests(bb, "h")  # between two probes: until the next one's time
    first = wait_for(lambda: last_probe()[1], what="a probe")
    assert _rests(bb, "h") == keeper
    wait_for(lambda: last_probe()[1] > first, what="the next probe, from a rest")
    assert last_probe()[0] == "healthy"
    bb("rm", "-f", "h")


def test_a_resting_network_members_dns_server_answers(bb):
    """The embedded DNS server's sockets are carried over; a member that links none rests."""
    bb("network", "create", "resting")
    bb("run", "-d", "--name", "m", "--network", "resting", "busybox", "sleep", "600")
    keeper = _rests(bb, "m")
    out = bb("exec", "m", "nslookup", "-type=a", "m", "127.0.0.11").out  # the query wakes it
    assert "Address: 10.0.2.100" in out, out
    assert _rests(bb, "m") == keeper
    bb("rm", "-f", "m")
    bb("network", "rm", "resting")
