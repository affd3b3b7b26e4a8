"""The default network's start: the container sets up while slirp4netns starts, and its command
runs only once the network is ready (its first packet gets through), a published port works,
and a slirp4netns that fails leaves the command unrun.

A wrapper named slirp4netns first on PATH makes slirp4netns slow (or fail) to start; its probe
(``--version``, ``--help``) goes to the real one. Real sockets on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from tests.conftest import Rootless
from tests.e2e.test_network import HTTPD, fetch_eventually, free_port
from tests.servers import serve

pytestmark = pytest.mark.userns

REAL = shutil.which("slirp4netns")
LOOPBACK = "slirp4netns:allow_host_loopback=true"


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def wrap_slirp4netns(tmp_path, monkeypatch, body: str) -> None:
    """A slirp4netns on PATH that runs ``body`` (sh) for a real start, after the real probe."""
    assert REAL, "slirp4netns is needed"
    d = tmp_path / "wrapped-bin"
    d.mkdir()
    script = d / "slirp4netns"
    script.write_text(f'#!/bin/sh\ncase "$1" in --version|--help) exec {REAL} "$@";; esac\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IRUSR)
    monkeypatch.setenv("PATH", f"{d}:{os.environ['PATH']}")
    monkeypatch.setenv("ROOTLESS_SHARED_NETWORK", "0")  # a slirp4netns of the container's own, started with it


def marks(path) -> dict:
    with open(path) as f:
        return json.loads(f.read().splitlines()[-1])


def test_the_container_sets_up_while_a_slow_slirp4netns_starts_and_its_first_packet_gets_through(
        bb, tmp_path, monkeypatch):
    wrap_slirp4netns(tmp_path, monkeypatch, f'sleep 0.3\nexec {REAL} "$@"')
    timing = tmp_path / "timing.jsonl"
    monkeypatch.setenv("ROOTLESS_TIMING", str(timing))
    # the command's very first act is one ICMP echo to the gateway (slirp4netns answers it): with no
    # retry, it is lost if the tap were not up and configured yet
    r = bb("run", "--rm", "busybox", "ping", "-c", "1", "-W", "5", "10.0.2.2", expect=None)
    assert r.code == 0 and "1 packets received" in r.out, r.out + r.err
    m = marks(timing)
    # PID 1 was forked (and set up) before slirp4netns was ready; its command ran after
    assert m["container-forked"] < m["net-ready"] < m["exec"]


def test_first_tcp_connection_and_a_published_port_with_a_slow_slirp4netns(bb, tmp_path, monkeypatch):
    wrap_slirp4netns(tmp_path, monkeypatch, f'sleep 0.3\nexec {REAL} "$@"')

    def greeter(conn):
        conn.sendall(b"hello from the host\n")
        conn.close()
    srv = serve(greeter)
    try:
        r = bb("run", "--rm", "--network", LOOPBACK, "busybox", "nc", "-w", "5", "10.0.2.2", str(srv.port))
    finally:
        srv.close()
    assert r.out == "hello from the host\n"
    for handler in ("builtin", "slirp4netns"):
        port = free_port()
        bb("run", "-d", "--name", f"web-{handler}", "--network", f"slirp4netns:port_handler={handler}",
           "-e", f"MSG={handler}", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
        assert fetch_eventually(f"http://127.0.0.1:{port}/") == f"{handler}\n"
        bb("rm", "-f", f"web-{handler}")


def test_a_slirp4netns_that_fails_to_start_leaves_the_command_unrun(bb, tmp_path, monkeypatch):
    wrap_slirp4netns(tmp_path, monkeypatch, 'echo "no tap for you" >&2\nexit 1')
    r = bb("run", "--rm", "-v", "marks:/marks", "busybox", "touch", "/marks/ran", expect=125)
    assert "slirp4netns failed: no tap for you" in r.err
    assert "Traceback" not in r.err
    r = bb("run", "-d", "--name", "kept", "-v", "marks:/marks", "busybox", "touch", "/marks/ran", expect=125)
    assert "slirp4netns failed: no tap for you" in r.err
    assert bb("inspect", "-f", "{{.State.Running}}", "kept").out.strip() == "false"
    monkeypatch.undo()
    r = bb("run", "--rm", "--network", "none", "-v", "marks:/marks", "busybox", "ls", "/marks")
    assert r.out == ""  # the command never ran
    assert bb.leftovers() == []


def test_pid1_failing_before_the_gate_reports_its_own_error(bb, tmp_path):
    """PID 1 fails while slirp4netns starts (a bind under a file of the image): its error, not the
    keeper's, and nothing is left running or in the store."""
    f = tmp_path / "f"
    f.write_text("")
    r = bb("run", "--rm", "-v", f"{f}:/bin/busybox/x", "busybox", "true", expect=125)
    assert "bind /bin/busybox/x" in r.err and "Not a directory" in r.err
    assert "Traceback" not in r.err and "slirp4netns" not in r.err
    assert bb("ps", "-aq").out == ""
    assert bb.leftovers() == []
