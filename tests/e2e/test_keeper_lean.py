"""A lean keeper (issue 25): an idle container costs one process of ours beside slirp4netns.

The port relay (published ports, links, the door, a network member's DNS server) is served in
the keeper's own loop, not by a process of its own; nothing of the keeper's host sockets
reaches the container. Counted as processes, never as a memory figure.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import Rootless, wait_for
from tests.e2e.test_network import HTTPD, fetch_eventually, free_port, helpers_of, port_is_free, record

pytestmark = pytest.mark.userns

HELPERS = {"slirp4netns", "fuse-overlayfs"}  # what a keeper may start beside the container


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def _helpers(rl: Rootless, ref: str) -> list[str]:
    """The names of the keeper's children but the container's PID 1."""
    st = record(rl, ref)["state"]
    return sorted(_comm(p) for p in helpers_of(st["keeper"]) if p != st["pid"])


@pytest.mark.parametrize("how", ["published port", "network member", "link"])
def test_the_port_relay_is_no_process_of_its_own(bb, how):
    port = free_port()
    bb("run", "-d", "--name", "web", "-e", "MSG=lean", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
    ref = "web"
    if how == "network member":
        bb("network", "create", "lean")
        bb("run", "-d", "--name", "member", "--network", "lean", "busybox", "sleep", "60")
        ref = "member"
    elif how == "link":
        bb("run", "-d", "--name", "linking", "--link", "web", "busybox", "sleep", "60")
        ref = "linking"
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "lean\n"
    for name in {"web", ref}:
        helpers = _helpers(bb, name)
        assert "rootless-relay" not in helpers and set(helpers) <= HELPERS, (name, helpers)
        assert helpers.count("slirp4netns") == 0, (name, helpers)  # the shared network's serves them
    if how == "link":  # the link's listener is served by the linking container's keeper
        out = bb("exec", "linking", "wget", "-q", "-O", "-", "http://web/").out
        assert out == "lean\n"
    if how == "network member":  # its DNS server too
        assert "Address" in bb("exec", "member", "nslookup", "member", "127.0.0.11").out
    bb("rm", "-f", *sorted({"web", ref}))
    wait_for(lambda: port_is_free(port), what="the host port to be free")


def test_ports_are_served_while_the_container_runs_with_its_outputs_closed(bb):
    """The keeper's loop ends with the container's outputs; with ports it goes on until PID 1 exits."""
    port = free_port()
    bb("run", "-d", "--name", "web", "-e", "MSG=quiet", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
       HTTPD + " >/dev/null 2>&1")
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "quiet\n"
    bb("stop", "-t", "1", "web")
    wait_for(lambda: port_is_free(port), what="the host port to be free")
    assert bb("inspect", "-f", "{{.State.Status}}", "web").out.strip() == "exited"
    bb("rm", "web")


def _listener_inode(port: int) -> str:
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
                return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_the_containers_processes_hold_no_host_socket(bb):
    """With --init PID 1 stays a fork of the keeper: the published port's listener, which the
    keeper serves, is closed there before anything else."""
    port = free_port()
    bb("run", "-d", "--init", "--name", "web", "-e", "MSG=init", "-p", f"127.0.0.1:{port}:80", "busybox", "sh",
       "-c", HTTPD)
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "init\n"
    inode = _listener_inode(port)
    st = record(bb, "web")["state"]
    keeper_fds = {os.readlink(f"/proc/{st['keeper']}/fd/{fd}") for fd in os.listdir(f"/proc/{st['keeper']}/fd")}
    assert f"socket:[{inode}]" in keeper_fds
    assert _comm(st["pid"]) == "rootless-init"
    held = {os.readlink(f"/proc/{st['pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{st['pid']}/fd")}
    assert f"socket:[{inode}]" not in held, held
    bb("rm", "-f", "web")


def test_a_container_that_closed_its_outputs_is_still_supervised(bb):
    """Its health checks go on (the keeper's loop used to end with the outputs and wait for PID 1
    blind: no probe ran, the status stayed unhealthy with an empty log)."""
    bb("run", "-d", "--name", "quiet", "--health-cmd", "true", "--health-interval", "1s", "busybox", "sh", "-c",
       "exec >/dev/null 2>&1; exec sleep 60")
    wait_for(lambda: bb("inspect", "-f", "{{.State.Health.Status}}", "quiet").out.strip() == "healthy", 20,
             "the health check to pass")
    assert bb("inspect", "-f", "{{len .State.Health.Log}}", "quiet").out.strip() != "0"
    bb("stop", "-t", "1", "quiet")
    assert bb("inspect", "-f", "{{.State.Status}}", "quiet").out.strip() == "exited"
    bb("rm", "quiet")
