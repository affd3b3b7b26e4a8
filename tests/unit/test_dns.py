"""Tests for netstack/dnsmsg.py (the DNS codec, as tables: compressed names, truncated and garbage
packets) and netstack/dns.py (the embedded server on loopback: members answered, other names
forwarded to an upstream server the test runs, over UDP and TCP)."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

import pytest

from netstack import dns, dnsmsg, etcfiles
from netstack.relay import Relay


def query(name: str, qtype: int = dnsmsg.A, qid: int = 0x1234, flags: int = dnsmsg.RD, edns: int = 0) -> bytes:
    msg = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0) + dnsmsg.encode_name(name) + \
        struct.pack("!HH", qtype, dnsmsg.IN)
    if edns:
        msg += b"\0" + struct.pack("!HHIH", dnsmsg.OPT, edns, 0, 0)
    return msg


HEAD = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)


@pytest.mark.parametrize("data,name,qtype,size", [
    (query("Web.App"), "web.app", dnsmsg.A, 512),
    (query("x", dnsmsg.AAAA), "x", dnsmsg.AAAA, 512),
    (query("srv", edns=4096), "srv", dnsmsg.A, 4096),
    (query("srv", edns=100), "srv", dnsmsg.A, 512),  # less than 512: 512
    (HEAD + b"\0" + struct.pack("!HH", 1, 1), "", dnsmsg.A, 512),  # the root
    # a compressed name in the question: "a" then a pointer to "b", after the question
    (struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x01a\xc0\x14" + struct.pack("!HH", 1, 1) + b"\x01b\x00",
     "a.b", 1, 512),
])
def test_parse_query(data, name, qtype, size):
    q = dnsmsg.parse_query(data)
    assert (q.name, q.qtype, q.qclass, q.udp_size) == (name, qtype, dnsmsg.IN, size)


@pytest.mark.parametrize("data", [
    b"",
    b"\x00" * 11,  # shorter than a header
    HEAD,  # no question
    HEAD + b"\x03ab",  # a label past the end
    HEAD + b"\x01a\x00\x00",  # a truncated question
    HEAD + b"\xc0",  # a truncated pointer
    HEAD + b"\xc0\x0c" + b"\0\1\0\1",  # a pointer to itself
    HEAD + b"\x80a\x00\0\1\0\1",  # an unknown label type
    HEAD + b"\x3fa" * 5,  # runs past the end
    HEAD + (b"\x3f" + b"a" * 63) * 5 + b"\0\0\1\0\1",  # longer than 255
    struct.pack("!HHHHHH", 7, 0x8000, 1, 0, 0, 0) + b"\0\0\1\0\1",  # a response
    struct.pack("!HHHHHH", 7, 0, 0, 0, 0, 0) + b"\0\0\1\0\1",  # qdcount 0
])
def test_bad_messages_are_value_errors(data):
    with pytest.raises(ValueError):
        dnsmsg.parse_query(data)


def test_garbage_never_raises_anything_else():
    rng = random.Random(7)
    seeds = [query("a.b.c"), query("x", edns=1232), HEAD + b"\xc0\x0c"]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[:rng.randrange(len(data) + 1)])
        try:
            dnsmsg.parse_query(data)
        except ValueError:
            pass
        dnsmsg.error(data, dnsmsg.FORMERR)  # None or bytes, never an exception
        if len(data) >= 12:
            dnsmsg.truncate(data, 12)


def test_answer_layout():
    q = dnsmsg.parse_query(query("web", qid=0xBEEF))
    out = dnsmsg.answer(q, dnsmsg.NOERROR, ((dnsmsg.A, socket.inet_aton("10.0.3.2")),), 600)
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", out)
    assert (qid, flags, qd, an, ns, ar) == (0xBEEF, 0x8180, 1, 1, 0, 0)
    rest = out[12 + len(q.question):]
    assert rest == struct.pack("!HHHIH", 0xC00C, 1, 1, 600, 4) + bytes([10, 0, 3, 2])
    nx = dnsmsg.answer(q, dnsmsg.NXDOMAIN)
    assert struct.unpack_from("!HHHH", nx) == (0xBEEF, 0x8183, 1, 0)
    assert dnsmsg.response_id(nx) == 0xBEEF and dnsmsg.response_id(query("x")) is None


def test_error_and_truncate():
    assert dnsmsg.error(b"\x00" * 5, dnsmsg.FORMERR) is None
    assert dnsmsg.error(struct.pack("!HHHHHH", 1, 0x8000, 0, 0, 0, 0), dnsmsg.FORMERR) is None  # a response
    bad = HEAD + b"\xc0\x0c"
    assert struct.unpack_from("!HHH", dnsmsg.error(bad, dnsmsg.FORMERR)) == (7, 0x8181, 0)
    q = dnsmsg.parse_query(query("big"))
    many = dnsmsg.answer(q, records=tuple((dnsmsg.A, bytes([10, 0, 3, i])) for i in range(40)))
    assert len(many) > 512
    cut = dnsmsg.truncate(many, 512)
    assert len(cut) < 512 and struct.unpack_from("!HHHH", cut) == (0x1234, 0x8180 | dnsmsg.TC, 1, 0)


def test_resolv_options_for_the_embedded_server():
    assert etcfiles.embedded_options("options edns0 trust-ad\n") == ("edns0", "trust-ad", "ndots:0")
    assert etcfiles.embedded_options("options edns0\n", ("ndots:2",)) == ("ndots:2",)
    assert etcfiles.embedded_options("") == ("ndots:0",)


# the server, on loopback ---------------------------------------------------------------------------

class Upstream:
    """A resolver on 127.0.0.1: ``ext.test`` is 192.0.2.1; anything else does not exist."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked: list[str] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            q = dnsmsg.parse_query(data)
            self.asked.append(q.name)
            if q.name == "ext.test":
                out = dnsmsg.answer(q, records=((dnsmsg.A, bytes([192, 0, 2, 1])),))
            else:
                out = dnsmsg.answer(q, dnsmsg.NXDOMAIN)
            self.sock.sendto(out, addr)


@pytest.fixture
def server():
    """An embedded server on 127.0.0.1 (a free port), ``srv`` a member (its link made on demand),
    ``me`` the container itself; the upstream is an :class:`Upstream`."""
    up = Upstream()
    relay = Relay("127.0.0.1")
    made = []

    class Book(dns.LinkBook):
        def address(self, cid, door_dir, ports):
            made.append((cid, door_dir, ports))
            return "10.0.3.2"

    members = {"srv": ("c" * 64, "/run/c", ("80/tcp",)), "me": "10.0.2.100"}
    finds = []

    def find(name):
        finds.append(name)
        return members.get(name)

    udp, tcp = dns.listen("127.0.0.1", 0)
    srv = dns.Server(relay, find, Book(relay, None, {}), ("127.0.0.1",), up.port)
    srv.listen(udp, tcp)
    stop_r, stop_w = os.pipe()
    t = threading.Thread(target=relay.run, args=(stop_r,), daemon=True)
    t.start()
    yield udp.getsockname()[1], up, made, finds, members, tcp.getsockname()[1]
    os.close(stop_w)
    t.join(5)
    os.close(stop_r)
    up.sock.close()


def ask_udp(port: int, data: bytes, timeout: float = 3.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(timeout)
        c.sendto(data, ("127.0.0.1", port))
        try:
            return c.recv(65535)
        except TimeoutError:
            return None


def ask_tcp(port: int, *msgs: bytes) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
        c.sendall(b"".join(struct.pack("!H", len(m)) + m for m in msgs))
        out, buf = [], b""
        while len(out) < len(msgs):
            buf += c.recv(65535)
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from("!H", buf)[0]:
                n = struct.unpack_from("!H", buf)[0]
                out.append(buf[2:2 + n])
                buf = buf[2 + n:]
        return out


def rcode_and_addresses(out: bytes) -> tuple[int, list[str]]:
    flags, qd, an = struct.unpack_from("!HHH", out, 2)
    _name, pos = dnsmsg.read_name(out, 12)
    pos += 4
    addrs = []
    for _ in range(an):
        _name, pos = dnsmsg.read_name(out, pos)
        rtype, _cls, _ttl, n = struct.unpack_from("!HHIH", out, pos)
        pos += 10
        if rtype == dnsmsg.A:
            addrs.append(socket.inet_ntoa(out[pos:pos + n]))
        pos += n
    return flags & 0xF, addrs


def test_members_are_answered_and_their_link_made(server):
    port, up, made, _finds, _members, _tcp = server
    assert rcode_and_addresses(ask_udp(port, query("SRV"))) == (0, ["10.0.3.2"])
    assert made == [("c" * 64, "/run/c", ("80/tcp",))]
    assert rcode_and_addresses(ask_udp(port, query("srv", dnsmsg.AAAA))) == (0, [])  # no IPv6: no record
    assert rcode_and_addresses(ask_udp(port, query("me"))) == (0, ["10.0.2.100"])
    assert up.asked == []


def test_other_names_are_forwarded(server):
    port, up, _made, _finds, _members, _tcp = server
    assert rcode_and_addresses(ask_udp(port, query("ext.test", qid=99))) == (0, ["192.0.2.1"])
    out = ask_udp(port, query("nothere.test", qid=100))
    assert struct.unpack_from("!H", out)[0] == 100 and rcode_and_addresses(out) == (dnsmsg.NXDOMAIN, [])
    assert up.asked == ["ext.test", "nothere.test"]


def test_tcp_queries(server):
    _port, _up, _made, _finds, _members, tcp = server
    a, b = ask_tcp(tcp, query("srv", qid=1), query("ext.test", qid=2))
    assert rcode_and_addresses(a) == (0, ["10.0.3.2"]) and rcode_and_addresses(b) == (0, ["192.0.2.1"])


def test_garbage_is_answered_formerr_or_dropped_and_the_server_lives_on(server):
    port, _up, _made, _finds, _members, _tcp = server
    assert ask_udp(port, b"\x01\x02", timeout=0.3) is None
    out = ask_udp(port, HEAD + b"\xc0\x0c\0\1\0\1")
    assert struct.unpack_from("!HH", out) == (7, 0x8181)
    out = ask_udp(port, query("srv", flags=(2 << 11)))  # a status query: not implemented
    assert struct.unpack_from("!H", out, 2)[0] & 0xF == dnsmsg.NOTIMP
    assert rcode_and_addresses(ask_udp(port, query("srv"))) == (0, ["10.0.3.2"])


def test_a_member_gone_stops_resolving_after_the_cache(server, monkeypatch):
    port, _up, _made, finds, members, _tcp = server
    monkeypatch.setattr(dns, "CACHE", 0.2)
    assert rcode_and_addresses(ask_udp(port, query("srv")))[1] == ["10.0.3.2"]
    del members["srv"]
    time.sleep(0.3)
    assert rcode_and_addresses(ask_udp(port, query("srv")))[0] == dnsmsg.NXDOMAIN  # from the upstream
    assert finds.count("srv") == 2


def test_no_upstream_answers_at_once():
    relay = Relay("127.0.0.1")
    srv = dns.Server(relay, lambda name: None, None, ())
    got = []
    srv.handle(query("x"), got.append, 512)
    assert struct.unpack_from("!H", got[0], 2)[0] & 0xF == dnsmsg.NXDOMAIN


def test_an_upstream_nothing_listens_on_fails_fast():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()[1]
    probe.close()
    relay = Relay("127.0.0.1")
    srv = dns.Server(relay, lambda name: None, None, ("127.0.0.1",), dead)
    udp, tcp = dns.listen("127.0.0.1", 0)
    srv.listen(udp, tcp)
    stop_r, stop_w = os.pipe()
    t = threading.Thread(target=relay.run, args=(stop_r,), daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        out = ask_udp(udp.getsockname()[1], query("ext.test"))
        assert struct.unpack_from("!H", out, 2)[0] & 0xF == dnsmsg.SERVFAIL and time.monotonic() - t0 < 1
    finally:
        os.close(stop_w)
        t.join(5)
        os.close(stop_r)


def test_too_many_waiting_queries_are_refused_not_queued(monkeypatch):
    monkeypatch.setattr(dns, "MAX_FORWARDS", 1)
    relay = Relay("127.0.0.1")
    srv = dns.Server(relay, lambda name: None, None, ("127.0.0.1",), 9)  # nothing answers on the discard port
    got = []
    srv.handle(query("a.test", qid=1), got.append, 512)
    srv.handle(query("b.test", qid=2), got.append, 512)
    assert srv.forwards in (0, 1)  # the first waits (or has already failed)
    second = [g for g in got if struct.unpack_from("!H", g)[0] == 2]
    assert second and struct.unpack_from("!H", second[0], 2)[0] & 0xF == dnsmsg.SERVFAIL
    for item in list(relay.timers):
        item.sweep(time.monotonic() + 10)
    assert srv.forwards == 0 and relay.timers == []
