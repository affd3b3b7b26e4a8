"""A server behind a published port sees its client's own address and port (issue 25), as behind
Docker's bridge, not the relay's (10.0.2.100): an HTTP server in the container (busybox httpd,
a CGI and its log) and a UDP server, several clients at once. The clients are on the host's
loopback (traffic stays there): the container sees 127.0.0.1. Other client addresses are
covered by ``tests/integration/test_client_address.py`` in namespaces of its own."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import Rootless, wait_for
from tests.e2e.test_network import IN_NETNS, _has_ipv6_loopback, fetch_eventually, host_port, record

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl

# httpd -vv logs each client's address and port; the CGI answers with them
HTTPD = ("mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
         "echo \"$REMOTE_ADDR $REMOTE_PORT\"\\n' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && "
         "echo up > /www/index.html && exec httpd -f -vv -p 80 -h /www")

UDP_PEER = IN_NETNS + r"""
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(f"{addr[0]} {addr[1]}".encode(), addr)
"""


def _answer(c: socket.socket) -> str:
    got = b""
    while data := c.recv(4096):
        got += data
    return got.decode().split("\r\n\r\n", 1)[-1].split("\n\n", 1)[-1].strip()


def test_an_http_server_sees_each_clients_address_and_port(bb):
    bb("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sh", "-c", HTTPD)
    port = host_port(bb, "web", "80")
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "up\n"
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]  # at once
    for c in clients:
        c.sendall(b"GET /cgi-bin/peer HTTP/1.0\r\n\r\n")
    ports = [c.getsockname()[1] for c in clients]
    answers = [_answer(c) for c in clients]
    for c in clients:
        c.close()
    # httpd listens on an IPv6 socket: an IPv4 client is ::ffff:127.0.0.1 to it (as under Docker)
    assert answers == [f"[::ffff:127.0.0.1] {p}" for p in ports]

    def logged():
        out = bb("logs", "web").err + bb("logs", "web").out
        return all(f"[::ffff:127.0.0.1]:{p}: url:/cgi-bin/peer" in out for p in ports) or None
    wait_for(logged, what="httpd's log of each client")
    assert "10.0.2.100" not in bb("logs", "web").err
    bb("rm", "-f", "web")


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this host has no IPv6 loopback")
def test_a_client_on_the_hosts_ipv6_loopback_is_127_0_0_1_in_the_container(bb):
    """The container is reached over IPv4: the host's ::1 is its loopback, 127.0.0.1; an IPv4
    client of the same dual-stack port is itself."""
    bb("run", "-d", "--name", "web", "-p", "::80", "busybox", "sh", "-c", HTTPD)
    port = host_port(bb, "web", "80")
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "up\n"
    for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(family, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect((host, port))
            c.sendall(b"GET /cgi-bin/peer HTTP/1.0\r\n\r\n")
            assert _answer(c) == f"[::ffff:127.0.0.1] {c.getsockname()[1]}"
    bb("rm", "-f", "web")


def test_a_udp_server_sees_each_clients_address_and_port(bb):
    bb("run", "-d", "--name", "u", "-p", "127.0.0.1::9999/udp", "busybox", "sleep", "60")
    port = host_port(bb, "u", "9999/udp")
    server = subprocess.Popen([sys.executable, "-c", UDP_PEER, str(record(bb, "u")["state"]["keeper"]), "9999"],
                              stdout=subprocess.PIPE)
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        assert server.stdout.readline() == b"ready\n"
        for c in clients:
            c.bind(("127.0.0.1", 0))
            c.settimeout(0.5)

        def answer(c):
            c.sendto(b"who am I?", ("127.0.0.1", port))
            try:
                data, sender = c.recvfrom(100)
            except TimeoutError:
                return None
            return data.decode(), sender
        for c in clients:
            assert wait_for(lambda c=c: answer(c), what="the UDP answer") == (
                f"127.0.0.1 {c.getsockname()[1]}", ("127.0.0.1", port))
    finally:
        for c in clients:
            c.close()
        server.kill()
        server.wait()
        bb("rm", "-f", "u")
