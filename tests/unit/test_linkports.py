"""netstack.linkports: the ports a member listens on, read from /proc/PID/net, and the listeners
a link address keeps for them."""

from __future__ import annotations

import os
import socket

import pytest

from netstack import linkports

HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def line(local: str, remote: str, st: str) -> str:
    return f"   0: {local} {remote} {st} 00000000:00000000 00:00000000 00000000  1000        0 1 1\n"


def v4(addr: str, port: int) -> str:
    return f"{int.from_bytes(socket.inet_aton(addr), 'little'):08X}:{port:04X}"


def v6(addr: str, port: int) -> str:
    raw = socket.inet_pton(socket.AF_INET6, addr)
    return "".join(f"{int.from_bytes(raw[i:i + 4], 'little'):08X}" for i in range(0, 16, 4)) + f":{port:04X}"


@pytest.mark.parametrize("text, proto, want", [
    (line(v4("0.0.0.0", 3000), v4("0.0.0.0", 0), "0A"), "tcp", {(3000, "tcp")}),
    (line(v4("10.0.2.100", 8080), v4("0.0.0.0", 0), "0A"), "tcp", {(8080, "tcp")}),
    (line(v4("127.0.0.1", 5432), v4("0.0.0.0", 0), "0A"), "tcp", set()),  # loopback: not for the others
    (line(v4("127.0.0.11", 53), v4("0.0.0.0", 0), "0A"), "tcp", set()),  # the embedded DNS server's
    (line(v4("10.0.2.100", 40000), v4("10.0.2.2", 80), "01"), "tcp", set()),  # a connection, not a server
    (line(v6("::", 3000), v6("::", 0), "0A"), "tcp", {(3000, "tcp")}),
    (line(v6("::1", 3000), v6("::", 0), "0A"), "tcp", set()),
    (line(v6("::ffff:127.0.0.1", 3000), v6("::", 0), "0A"), "tcp", set()),
    (line(v4("0.0.0.0", 9999), v4("0.0.0.0", 0), "07"), "udp", {(9999, "udp")}),
    (line(v4("10.0.2.100", 9999), v4("10.0.2.3", 53), "01"), "udp", set()),  # connected: a client
    (line(v4("10.0.2.100", 9999), v4("10.0.2.3", 53), "07"), "udp", set()),
    (line(v4("0.0.0.0", 0), v4("0.0.0.0", 0), "07"), "udp", set()),  # not bound to a port
    ("garbage line\n", "tcp", set()),
])
def test_parse(text, proto, want):
    assert linkports.parse((HEAD + text).splitlines(), proto) == want


def test_parse_reads_tcp_up_to_the_first_connection_and_at_most_max_ports():
    listen, conn = line(v4("0.0.0.0", 80), v4("0.0.0.0", 0), "0A"), line(v4("10.0.2.100", 1), v4("1.2.3.4", 5), "01")
    late = line(v4("0.0.0.0", 81), v4("0.0.0.0", 0), "0A")
    assert linkports.parse((HEAD + listen + conn + late).splitlines(), "tcp") == {(80, "tcp")}
    many = "".join(line(v4("0.0.0.0", p), v4("0.0.0.0", 0), "0A") for p in range(1000, 2000))
    assert len(linkports.parse((HEAD + many).splitlines(), "tcp")) == linkports.MAX_PORTS


def test_listening_reads_a_live_namespace_and_fails_once_the_process_has_gone():
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen()
    local = socket.socket()
    local.bind(("127.0.0.1", 0))
    local.listen()
    fd = linkports.open_proc(os.getpid())
    try:
        found = linkports.listening(fd)
        assert (srv.getsockname()[1], "tcp") in found
        assert (local.getsockname()[1], "tcp") not in found
    finally:
        os.close(fd)
        srv.close()
        local.close()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    fd = linkports.open_proc(pid)
    os.waitpid(pid, 0)
    try:
        with pytest.raises(OSError):
            linkports.listening(fd)
    finally:
        os.close(fd)


class FakeRelay:
    def __init__(self):
        self.timers = []
        self.linked = {}

    def link(self, sock, door_dir, port, proto):
        self.linked[(port, proto)] = sock
        return (port, proto)

    def unlink(self, handler):
        self.linked.pop(handler).close()


def test_a_follower_adds_and_removes_listeners_as_the_member_listens(monkeypatch):
    relay = FakeRelay()
    now = {"ports": {(3000, "tcp"), (80, "tcp")}}
    monkeypatch.setattr(linkports, "listening", lambda fd: set(now["ports"]))
    made = []

    def add(ports):
        made.append(list(ports))
        return [(socket.socket(), int(p.split("/")[0]), p.split("/")[1]) for p in ports]

    f = linkports.Follower(relay, "/run/x", ("80/tcp",), add, os.getpid())
    followers = linkports.Followers(relay)
    followers.add("c" * 64, f)
    assert relay.timers == [followers]
    followers.sweep(100.0)
    assert made == [["3000/tcp"]] and set(relay.linked) == {(3000, "tcp")}  # 80: exposed, listened on already
    now["ports"] = {(3000, "tcp"), (53, "udp")}
    followers.sweep(100.5)  # within the period: not looked at
    assert set(relay.linked) == {(3000, "tcp")}
    followers.sweep(101.0)
    assert set(relay.linked) == {(3000, "tcp"), (53, "udp")}
    now["ports"] = {(53, "udp")}
    followers.touch("c" * 64)  # a DNS query: at once
    assert set(relay.linked) == {(53, "udp")}
    f.close()
    assert relay.linked == {} and f.proc_fd is None


def test_a_follower_whose_member_has_gone_closes_its_listeners_and_finds_it_again():
    relay = FakeRelay()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    f = linkports.Follower(relay, "/run/x", (), lambda ports: [], pid)
    f.have[(3000, "tcp")] = relay.link(socket.socket(), "/run/x", 3000, "tcp")
    os.waitpid(pid, 0)
    located = []
    followers = linkports.Followers(relay, lambda cid: located.append(cid) or os.getpid())
    followers.add("c" * 64, f)
    followers.sweep(10.0)
    assert relay.linked == {} and f.proc_fd is None
    followers.sweep(11.0)  # its next look asks where it runs now
    assert located == ["c" * 64] and f.keeper == os.getpid() and f.proc_fd is not None
    f.close()


def test_a_removed_member_is_no_longer_followed():
    relay = FakeRelay()
    followers = linkports.Followers(relay, lambda cid: None)
    f = followers.add("c" * 64, linkports.Follower(relay, "/run/x", (), lambda ports: [], 0))
    f.have[(3000, "tcp")] = relay.link(socket.socket(), "/run/x", 3000, "tcp")
    followers.sweep(10.0)
    assert followers.by_cid == {} and relay.linked == {}
