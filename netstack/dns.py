"""The embedded DNS server of a container on a user-defined network (Docker's 127.0.0.11).

It lives in the container's relay (``netstack.relay``: the same event loop, no process of its
own), on 127.0.0.11:53 in the container's network namespace, UDP and TCP. A name is first asked
of ``find`` (the caller's view of the network's members *now*: a name, short id, alias or
endpoint link alias of a running fellow member); a member gets the address of its link in the
link namespace (``netstack.links``), and a member that started after this container gets one
there and then: an address and listeners on its exposed ports and on the ports it listens on
(``netstack.linkports``, looked at again at each query for it), whose clients go through its
door, as the links made at the start. Every other name is forwarded, as it came, to the upstream
resolvers (slirp4netns's, or ``--dns``), and their answer is passed back as it is.
"""

from __future__ import annotations

import errno
import socket
import struct
import time

from netstack import dnsmsg

ADDRESS = "127.0.0.11"
PORT = 53
TTL = 600  # what Docker's server says
CACHE = 1.0  # seconds a name's membership answer is kept
UPSTREAM_TIMEOUT = 2.0  # per upstream server, before the next one is tried
TCP_IDLE = 10.0
MAX_FORWARDS = 128  # queries waiting for an upstream at once; more are refused (SERVFAIL), not queued
MAX_TCP = 32  # TCP clients at once; more are closed at once
MAX_TCP_OUT = 1 << 20  # answers a TCP client does not read: past this the connection is closed


class LinkBook:
    """The links of one container by the linked container's id: those made at the start, then
    those made on demand in the link namespace (``ns_fd``) for members that started later.
    ``followers`` (``netstack.linkports.Followers``): the members whose listening ports are
    followed; a query for one looks at them again, a member linked here is followed from then on
    (without them, ``locate`` makes them at the first such link: a relay that links no member
    never loads ``netstack.linkports``)."""

    def __init__(self, relay, ns_fd: int | None, existing: dict[str, str], followers=None, locate=None):
        self.relay, self.ns_fd = relay, ns_fd
        self.by_cid = dict(existing)
        self.next = len(existing)
        self.followers, self.locate = followers, locate

    def address(self, cid: str, door_dir: str, ports: tuple[str, ...], keeper: int = 0) -> str | None:
        have = self.by_cid.get(cid)
        if have or self.ns_fd is None:
            if have and self.followers is not None:
                self.followers.touch(cid, keeper or None)
            return have
        from netstack import links
        if self.next >= links.MAX_LINKS:
            return None
        index = self.next
        try:
            listeners = links.add(self.ns_fd, index, ports)
        except OSError:
            return None
        self.next += 1
        for sock, port, proto in listeners:
            self.relay.link(sock, door_dir, port, proto)
        self.by_cid[cid] = links.address(index)
        if keeper and (self.followers is not None or self.locate is not None):
            from netstack import linkports
            if self.followers is None:
                self.followers = linkports.Followers(self.relay, self.locate)
            ns_fd, addr = self.ns_fd, links.address(index)
            follower = linkports.Follower(self.relay, door_dir, ports, lambda more: links.listen_in(ns_fd, addr, more),
                                          keeper)
            self.followers.add(cid, follower).refresh()
        return self.by_cid[cid]


class Server:
    """Answers queries for ``find``'s names and forwards the others to ``upstreams``.

    ``find(name)``: None (not a member's name), an address (the container's own names), or
    ``(cid, door_dir, ports[, keeper])`` of the running member it names."""

    def __init__(self, relay, find, book: LinkBook | None, upstreams: tuple[str, ...], upstream_port: int = PORT):
        self.relay, self.find, self.book = relay, find, book
        self.upstreams, self.upstream_port = tuple(upstreams), upstream_port
        self.cache: dict[str, tuple[float, object]] = {}
        self.forwards = 0  # queries waiting for an upstream
        self.tcp_clients = 0

    def listen(self, udp: socket.socket, tcp: socket.socket | None = None) -> None:
        _UdpEndpoint(self, udp)
        if tcp is not None:
            _TcpListener(self, tcp)

    # answering ----------------------------------------------------------------------------------
    def _lookup(self, name: str):
        now = time.monotonic()
        hit = self.cache.get(name)
        if hit and now - hit[0] < CACHE:
            return hit[1]
        try:
            found = self.find(name)
        except Exception:  # noqa: BLE001  # a damaged record must not end the relay: not found
            found = None
        if len(self.cache) > 256:
            self.cache.clear()
        self.cache[name] = (now, found)
        return found

    def addresses(self, name: str) -> list[str] | None:
        """The IPv4 addresses of a member's name (None: not a member's name, forward it)."""
        if not name:
            return None
        found = self._lookup(name)
        if found is None:
            return None
        if isinstance(found, str):
            return [found]
        if self.book is None:
            return None
        cid, door_dir, ports, *keeper = found
        addr = self.book.address(cid, door_dir, tuple(ports), *keeper)
        return [addr] if addr else []

    def handle(self, data: bytes, reply, size: int | None) -> None:
        """Answer ``data`` through ``reply(bytes)`` (now or once an upstream has answered);
        ``size``: the UDP client's limit (None over TCP)."""
        try:
            q = dnsmsg.parse_query(data)
        except ValueError:
            out = dnsmsg.error(data, dnsmsg.FORMERR)
            if out:
                reply(out)
            return
        if dnsmsg.opcode(q) != 0:
            reply(dnsmsg.answer(q, dnsmsg.NOTIMP))
            return
        addrs = self.addresses(q.name) if q.qclass in (dnsmsg.IN, dnsmsg.ANY) else None
        if addrs is None:
            if self.upstreams and self.forwards < MAX_FORWARDS:
                _Forward(self, data, reply)
            elif self.upstreams:
                reply(dnsmsg.answer(q, dnsmsg.SERVFAIL))
            else:  # an internal network: nothing beyond the members
                reply(dnsmsg.answer(q, dnsmsg.NXDOMAIN))
            return
        records = ()
        if q.qtype in (dnsmsg.A, dnsmsg.ANY):
            records = tuple((dnsmsg.A, socket.inet_aton(a)) for a in addrs)
        out = dnsmsg.answer(q, dnsmsg.NOERROR if addrs else dnsmsg.SERVFAIL, records, TTL)
        reply(dnsmsg.truncate(out, max(size, q.udp_size)) if size else out)


class _UdpEndpoint:
    def __init__(self, server: Server, sock: socket.socket):
        self.server, self.sock = server, sock
        sock.setblocking(False)
        server.relay.watch(sock, 1, self)

    def restable(self) -> bool:
        """A listening socket: a resting keeper carries it over (its pending queries are timers)."""
        return True

    def handle(self, _sock, _events) -> None:
        for _ in range(64):
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            self.server.handle(data, lambda out, addr=addr: self._send(out, addr), dnsmsg.MAX_UDP)

    def _send(self, out: bytes, addr) -> None:
        try:
            self.sock.sendto(out, addr)
        except OSError:
            pass


class _Forward:
    """One query sent on to the upstream servers in turn; the first answer goes back as it came."""

    def __init__(self, server: Server, data: bytes, reply):
        self.server, self.data, self.reply = server, data, reply
        self.next = 0
        self.sock: socket.socket | None = None
        self.done = False
        server.forwards += 1
        server.relay.timers.append(self)
        self._try_next()

    def _try_next(self) -> None:
        self._close_sock()
        while self.next < len(self.server.upstreams):
            host = self.server.upstreams[self.next]
            self.next += 1
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setblocking(False)
            try:
                s.connect((host, self.server.upstream_port))
                s.send(self.data)
            except OSError:
                s.close()
                continue
            self.sock, self.deadline = s, time.monotonic() + UPSTREAM_TIMEOUT
            self.server.relay.watch(s, 1, self)
            return
        self._finish(dnsmsg.error(self.data, dnsmsg.SERVFAIL))

    def handle(self, sock, _events) -> None:
        try:
            out = sock.recv(65535)
        except BlockingIOError:
            return
        except OSError as e:  # ECONNREFUSED: nothing listens there
            if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                self._try_next()
            return
        if dnsmsg.response_id(out) != struct.unpack_from("!H", self.data)[0]:
            return  # not the answer to this query
        self._finish(out)

    def sweep(self, now: float) -> None:
        if not self.done and now >= self.deadline:
            self._try_next()

    def _close_sock(self) -> None:
        if self.sock is not None:
            self.server.relay.unwatch(self.sock)
            self.sock.close()
            self.sock = None

    def _finish(self, out: bytes | None) -> None:
        self._close_sock()
        self.done = True
        self.server.forwards -= 1
        if self in self.server.relay.timers:
            self.server.relay.timers.remove(self)
        if out:
            self.reply(out)


class _TcpListener:
    def __init__(self, server: Server, sock: socket.socket):
        self.server, self.sock = server, sock
        sock.setblocking(False)
        server.relay.watch(sock, 1, self)

    def restable(self) -> bool:
        """As :meth:`_UdpEndpoint.restable` (its clients are timers)."""
        return True

    def handle(self, _sock, _events) -> None:
        for _ in range(16):
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            if self.server.tcp_clients >= MAX_TCP:
                conn.close()
                continue
            _TcpClient(self.server, conn)


class _TcpClient:
    """Length-prefixed queries over one TCP connection (RFC 1035 4.2.2), answered in order."""

    def __init__(self, server: Server, conn: socket.socket):
        self.server, self.conn = server, conn
        self.buf = b""
        self.out = b""
        self.closed = False
        self.deadline = time.monotonic() + TCP_IDLE
        conn.setblocking(False)
        server.tcp_clients += 1
        server.relay.watch(conn, 1, self)
        server.relay.timers.append(self)

    def handle(self, _sock, events) -> None:
        if events & 4 and self.out:  # writable
            self._flush()
        if not events & 1 or self.closed:
            return
        try:
            data = self.conn.recv(65537)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.deadline = time.monotonic() + TCP_IDLE
        self.buf += data
        while len(self.buf) >= 2:
            n = struct.unpack_from("!H", self.buf)[0]
            if len(self.buf) < 2 + n:
                break
            msg, self.buf = self.buf[2:2 + n], self.buf[2 + n:]
            self.server.handle(msg, self._send, None)

    def _send(self, out: bytes) -> None:
        if self.closed:
            return
        self.out += struct.pack("!H", len(out)) + out
        if len(self.out) > MAX_TCP_OUT:
            self.close()  # a client that asks and never reads
            return
        self._flush()

    def _flush(self) -> None:
        try:
            n = self.conn.send(self.out)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        self.out = self.out[n:]
        self.server.relay.watch(self.conn, 1 | (4 if self.out else 0), self)

    def sweep(self, now: float) -> None:
        if now >= self.deadline:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.tcp_clients -= 1
        self.server.relay.unwatch(self.conn)
        self.conn.close()
        if self in self.server.relay.timers:
            self.server.relay.timers.remove(self)


def listen(address: str = ADDRESS, port: int = PORT) -> tuple[socket.socket, socket.socket]:
    """The server's UDP and TCP sockets, bound in the current network namespace."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((address, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, port))
        tcp.listen(64)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp
