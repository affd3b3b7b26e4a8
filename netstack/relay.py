"""The built-in port forwarder: one event loop per container, bytes moved with ``splice``.

It runs in the container's network namespace, in the keeper's process, whose loop serves its
sockets (:meth:`Relay.share`; :meth:`Relay.run` is a loop of its own, for tests), and holds
sockets created elsewhere:

- *published ports*: listeners bound on the host before the container started. A TCP client
  is accepted, a connection to the container's address is opened here, from the client's own
  address and port when it can be (``netstack.clientaddr``: the server sees the client, not the
  relay), and the two are joined.
  Bytes move one of two ways. For a remote client, ``splice`` moves pages socket -> pipe ->
  socket without copying them through user space. For a client on this machine (loopback: both
  ends are local), a copy through one shared 4 MB buffer is faster: spliced loopback pages reach
  the receiver as many small fragments, which costs it more than the copy saves (measured: 14
  against 20 Gbit/s on the 2-core reference VM). Half-closes are passed on (``shutdown``),
  resets too.
- *UDP ports*: one socket per client address (bound to it, as a TCP connection's), idle flows
  closed after a while.
- the *door*: an AF_UNIX datagram socket in the container's runtime directory. A linking
  container's relay sends an accepted client socket through it (SCM_RIGHTS) with the port it
  wants; it is joined to that port here, as a published port's client would be.
- *link listeners*: sockets in the linking container's link namespace; their clients are sent
  through the linked container's door. A fellow network member's follow the ports it listens on
  (``netstack.linkports``: added and closed, ``link``/``unlink``, by a timer of this loop).
- the *DNS server* of a container on a user-defined network (``netstack.dns``), which adds link
  listeners as members that started later are asked for.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import time

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
SCRATCH_SIZE = 4 << 20
SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
DOOR = "relay.door"
UDP_IDLE = 120.0
_READ, _WRITE = select.EPOLLIN, select.EPOLLOUT
_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.EHOSTUNREACH,
         errno.ENETUNREACH, errno.ECONNABORTED)


def _is_loopback(addr: str) -> bool:
    return addr.startswith(("127.", "::ffff:127.")) or addr == "::1"


def _pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over the user's pipe budget: the default size works, only slower
    return r, w


def _reset(sock: socket.socket) -> None:
    """Close so that the peer sees a reset, as it would from the real server."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Gone(Exception):
    """The peer reset or vanished: the pair is aborted."""


def _io(call, *args, **kwargs):
    """``call(...)``'s result; None when it would block; _Gone when the peer has gone."""
    try:
        return call(*args, **kwargs)
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno in _GONE:
            raise _Gone from None
        raise


class _SpliceHalf:
    """One direction moved with splice: src -> pipe -> dst, the pages never copied to user space.
    Used when the client is remote: on loopback the spliced pages reach the receiver as many
    small fragments, which costs it more than the copy saves (see docs/architecture.md)."""

    __slots__ = ("src", "dst", "r", "w", "pending", "eof", "shut")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.r, self.w = _pipe()
        self.pending = 0
        self.eof = False
        self.shut = False

    def fill(self) -> int:
        """Move what src has into the pipe; the bytes moved (0: nothing yet, or the end: eof)."""
        n = _io(os.splice, self.src.fileno(), self.w, PIPE_SIZE, flags=SPLICE)
        if n is None:
            return 0
        if n == 0:
            self.eof = True
        self.pending += n
        return n

    def drain(self) -> None:
        while self.pending:
            n = _io(os.splice, self.r, self.dst.fileno(), self.pending, flags=SPLICE)
            if n is None:
                return
            self.pending -= n

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class _CopyHalf:
    """One direction moved through the relay's one scratch buffer: recv, send, and only what dst
    could not take yet is kept (then src is not read until it is gone)."""

    __slots__ = ("relay", "src", "dst", "rest", "pending", "eof", "shut")

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket):
        self.relay, self.src, self.dst = relay, src, dst
        self.rest = memoryview(b"")
        self.pending = 0
        self.eof = False
        self.shut = False

    def fill(self) -> int:
        """Receive into the scratch buffer and send on at once; the bytes received."""
        view = self.relay.scratch()
        n = _io(self.src.recv_into, view)
        if n is None:
            return 0
        if n == 0:
            self.eof = True
            return 0
        sent = self._send(view[:n])
        if sent < n:
            self.rest = memoryview(bytes(view[sent:n]))
            self.pending = n - sent
        return n

    def drain(self) -> None:
        if self.pending:
            sent = self._send(self.rest)
            self.rest = self.rest[sent:]
            self.pending -= sent

    def _send(self, data: memoryview) -> int:
        total = 0
        while total < len(data):
            n = _io(self.dst.send, data[total:])
            if n is None:
                break
            total += n
        return total

    def close(self) -> None:
        self.rest = memoryview(b"")


def _done(h) -> bool:
    return h.eof and not h.pending


class _Pair:
    """A client socket joined to an upstream socket, once the upstream has connected."""

    def __init__(self, relay: Relay, client: socket.socket, upstream: socket.socket, half_kind):
        self.relay = relay
        self.client, self.upstream = client, upstream
        self.half_kind = half_kind
        self.halves = None
        self.closed = False
        try:
            upstream.getpeername()  # on loopback the handshake is often done when connect returns
        except OSError:
            relay.watch(upstream, _WRITE, self)
        else:
            self._connected(checked=True)

    # events ---------------------------------------------------------------------------------
    def handle(self, sock: socket.socket, events: int) -> None:
        if self.halves is None:
            self._connected()
            return
        try:
            for h in self.halves:
                if events & _WRITE and h.dst is sock and h.pending:
                    self._flush(h)
                if events & _READ and h.src is sock:
                    self._pump(h)
        except _Gone:
            self.abort()
            return
        self._update()

    def _connected(self, checked: bool = False) -> None:
        err = 0 if checked else self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.abort()
            return
        kind = self.half_kind
        self.halves = (kind(self.relay, self.client, self.upstream), kind(self.relay, self.upstream, self.client))
        try:
            self._pump(self.halves[0])  # the client has usually spoken already: no event to wait for
        except _Gone:
            self.abort()
            return
        self._update()

    # moving bytes -----------------------------------------------------------------------------
    def _pump(self, h) -> None:
        """Read from h.src while h.dst takes it all, a bounded number of times per event."""
        for _ in range(16):
            if h.pending or h.eof:
                break
            n = h.fill()
            self._flush(h)
            if not n:
                break

    def _flush(self, h) -> None:
        h.drain()
        if h.eof and not h.pending and not h.shut:
            h.shut = True  # pass the half-close on
            if _done(self.halves[0]) and _done(self.halves[1]):
                return  # both ways are done: the pair closes now, and the close sends the FIN
            try:
                h.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _update(self) -> None:
        if self.closed:
            return
        out, back = self.halves
        if _done(out) and _done(back):
            self.close()
            return
        for sock in (self.client, self.upstream):
            mask = 0
            for h in (out, back):
                if h.src is sock and not h.eof and not h.pending:
                    mask |= _READ
                if h.dst is sock and h.pending:
                    mask |= _WRITE
            self.relay.watch(sock, mask, self)

    def abort(self) -> None:
        if self.closed:
            return
        self.relay.unwatch(self.client)
        self.relay.unwatch(self.upstream)
        _reset(self.client)
        _reset(self.upstream)
        self._close_pipes()
        self.closed = True

    def close(self) -> None:
        if self.closed:
            return
        for s in (self.client, self.upstream):
            self.relay.unwatch(s)
            s.close()
        self._close_pipes()
        self.closed = True

    def _close_pipes(self) -> None:
        for h in self.halves or ():
            h.close()


class _Listener:
    """A listening socket: each accepted client goes to ``take``."""

    def __init__(self, relay: Relay, sock: socket.socket):
        self.relay, self.sock = relay, sock
        relay.watch(sock, _READ, self)

    def handle(self, _sock, _events) -> None:
        """One client per event: the loop is level-triggered, so the next is told of at once,
        and no accept is made only to fail (on the common single client, a raised EAGAIN)."""
        try:
            client, addr = self.sock.accept()
        except OSError:  # nothing to accept after all (or no descriptor left: the client waits)
            return
        self.take(client, addr)

    def take(self, client: socket.socket, addr) -> None:
        raise NotImplementedError


class _TcpPort(_Listener):
    """A published port: its clients are joined to ``target`` in this namespace."""

    def __init__(self, relay: Relay, sock: socket.socket, target: tuple[str, int]):
        self.target = target
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # its clients inherit it
        super().__init__(relay, sock)

    def take(self, client: socket.socket, addr) -> None:
        self.relay.join(client, self.target, peer=addr, nodelay=True)


class _LinkPort(_Listener):
    """A listener in the link namespace: its clients go through a linked container's door."""

    def __init__(self, relay: Relay, sock: socket.socket, door_dir: str, port: int):
        self.door_dir, self.port = door_dir, port
        super().__init__(relay, sock)

    def take(self, client: socket.socket, _addr) -> None:
        try:
            send_through_door(self.door_dir, client, self.port, "tcp")
        except OSError:
            _reset(client)  # the linked container is not running: as a refused connection
        else:
            client.close()


class _DoorUdpFlow:
    """The linked side of a link's UDP flow: datagrams between the pair end and ``target``."""

    def __init__(self, relay: Relay, end: socket.socket, target: tuple[str, int]):
        self.relay, self.end = relay, end
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.setblocking(False)
        self.up.connect(target)
        end.setblocking(False)
        self.last = time.monotonic()
        relay.watch(end, _READ, self)
        relay.watch(self.up, _READ, self)
        relay.udp.append(self)

    def handle(self, sock, _events) -> None:
        self.last = time.monotonic()
        src, dst = (self.end, self.up) if sock is self.end else (self.up, self.end)
        for _ in range(64):
            try:
                data = src.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                if src is self.up:
                    return  # ICMP unreachable from the container: nothing listens (yet)
                data = b""
            if not data and src is self.end:
                self.close()
                return
            try:
                dst.send(data)
            except OSError:
                pass

    def sweep(self, now: float) -> None:
        if now - self.last > UDP_IDLE:
            self.close()

    def close(self) -> None:
        if self in self.relay.udp:
            self.relay.udp.remove(self)
            for s in (self.end, self.up):
                self.relay.unwatch(s)
                s.close()


class _Door(_Listener):
    """Sockets sent by linking containers: a TCP client, or one end of a UDP flow, with the port."""

    def handle(self, _sock, _events) -> None:
        for _ in range(16):
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.sock, 16, 1, socket.MSG_CMSG_CLOEXEC)
            except OSError:
                return
            if not fds:
                continue
            for extra in fds[1:]:
                os.close(extra)
            if len(msg) != 3 or msg[:1] not in (b"t", b"u"):
                os.close(fds[0])
                continue
            port = struct.unpack("!H", msg[1:])[0]
            if msg[:1] == b"u":
                _DoorUdpFlow(self.relay, socket.socket(fileno=fds[0]), (self.relay.target_ip, port))
                continue
            client = socket.socket(fileno=fds[0])
            client.setblocking(False)
            self.relay.join(client, (self.relay.target_ip, port), local=True)


class _UdpFlows:
    """A UDP socket whose clients each get a flow: a socket of their own towards the other side,
    whose replies go back to that client. Idle flows close. ``eof_ends``: an empty read or an
    error ends the flow (a SOCK_SEQPACKET pair's end); for UDP an empty datagram is data."""

    eof_ends = False

    def __init__(self, relay: Relay, sock: socket.socket):
        self.relay, self.sock = relay, sock
        self.flows: dict = {}  # client address -> [flow socket, last use, client address]
        self.by_fd: dict = {}  # flow socket's fd -> the same flow
        relay.watch(sock, _READ, self)
        relay.udp.append(self)

    def open_flow(self, addr) -> tuple[socket.socket, tuple | None] | None:
        """The flow socket for client ``addr`` and where to send its datagrams (None: the socket
        is connected); None when there is nothing on the other side."""
        raise NotImplementedError

    def flow_closed(self, sock: socket.socket) -> None:
        """``sock``'s flow has ended (before it is closed)."""

    def handle(self, sock, _events) -> None:
        now = time.monotonic()
        if sock is self.sock:
            self._from_clients(now)
            return
        flow = self.by_fd.get(sock.fileno())
        if flow is None or flow[0] is not sock:
            return
        flow[1] = now
        for _ in range(64):
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # UDP: ICMP port unreachable (nothing listens yet); a pair: its other end is gone
                data = None
            if data is None or (not data and self.eof_ends):
                if self.eof_ends:
                    self._close(flow[2])
                return
            try:
                self.sock.sendto(data, flow[2])
            except OSError:
                pass

    def _from_clients(self, now: float) -> None:
        for _ in range(64):
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            flow = self.flows.get(addr) or self._new_flow(addr, now)
            if flow is None:
                continue  # nothing on the other side (a linked container not running): lost, as UDP allows
            flow[1] = now
            try:
                if flow[3] is None:
                    flow[0].send(data)
                else:
                    flow[0].sendto(data, flow[3])
            except OSError:
                if self.eof_ends:
                    self._close(addr)

    def _new_flow(self, addr, now: float):
        opened = self.open_flow(addr)
        if opened is None:
            return None
        s, dest = opened
        s.setblocking(False)
        flow = self.flows[addr] = self.by_fd[s.fileno()] = [s, now, addr, dest]
        self.relay.watch(s, _READ, self)
        return flow

    def _close(self, addr) -> None:
        flow = self.flows.pop(addr, None)
        if flow:
            self.relay.unwatch(flow[0])
            self.by_fd.pop(flow[0].fileno(), None)
            self.flow_closed(flow[0])
            flow[0].close()

    def sweep(self, now: float) -> None:
        for addr, flow in list(self.flows.items()):
            if now - flow[1] > UDP_IDLE:
                self._close(addr)


class _UdpPort(_UdpFlows):
    """A published UDP port: each client's flow is a socket connected to ``target`` here."""

    def __init__(self, relay: Relay, sock: socket.socket, target: tuple[str, int]):
        self.target = target
        self.bound: dict[int, str] = {}  # a flow socket's fd -> the client address it is bound to
        super().__init__(relay, sock)

    def open_flow(self, addr) -> tuple[socket.socket, tuple | None] | None:
        origins = self.relay.origins
        up, ip = origins.udp_socket(addr) if origins else (socket.socket(socket.AF_INET, socket.SOCK_DGRAM), None)
        if ip is not None:
            self.bound[up.fileno()] = ip
            return up, self.target
        try:
            up.connect(self.target)
        except OSError:
            up.close()
            return None
        return up, None

    def flow_closed(self, sock: socket.socket) -> None:
        ip = self.bound.pop(sock.fileno(), None)
        if ip is not None:
            self.relay.origins.release_udp(ip)


class _LinkUdpPort(_UdpFlows):
    """A link's UDP socket: each client's flow is one end of a SOCK_SEQPACKET pair whose other end
    goes through the linked container's door; that relay sends the datagrams on and the replies back."""

    eof_ends = True

    def __init__(self, relay: Relay, sock: socket.socket, door_dir: str, port: int):
        self.door_dir, self.port = door_dir, port
        super().__init__(relay, sock)

    def open_flow(self, _addr) -> tuple[socket.socket, tuple | None] | None:
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            send_through_door(self.door_dir, there, self.port, "udp")
        except OSError:
            here.close()
            return None
        finally:
            there.close()
        return here, None


class Relay:
    """The event loop. ``target_ip``: the container's address in its own network namespace;
    ``mover``: how bytes move, ``auto`` (copy for local clients, splice for remote ones),
    ``copy`` or ``splice``; ``origins``: a ``netstack.clientaddr.ClientAddresses`` when the relay
    is in the container's network namespace (the server then sees its clients' addresses)."""

    def __init__(self, target_ip: str, mover: str = "auto", origins=None):
        self.target_ip = target_ip
        self.mover = mover
        self.origins = origins
        self._epoll = select.epoll()
        self._fds: dict[int, list] = {}  # fd -> [socket, handler, events]; the stop fd's handler is None
        self.udp: list = []  # what has UDP flows to sweep when idle
        self.timers: list = []  # what has a deadline within seconds (the DNS server's queries): swept often
        self._swept = time.monotonic()  # the last sweep
        self._shared = None  # the selector of the loop that serves it (share)
        self._closed = False
        self._scratch = None

    def scratch(self) -> memoryview:
        """The one buffer every copying connection receives into (allocated on first use)."""
        if self._scratch is None:
            self._scratch = memoryview(bytearray(SCRATCH_SIZE))
        return self._scratch

    def _half_kind(self, client: socket.socket, local: bool | None):
        if self.mover != "auto":
            return _CopyHalf if self.mover == "copy" else _SpliceHalf
        if local is None:
            try:
                local = _is_loopback(client.getpeername()[0])
            except OSError:
                local = False
        return _CopyHalf if local else _SpliceHalf

    def watch(self, sock: socket.socket, mask: int, handler) -> None:
        """Call ``handler.handle(sock, events)`` when ``sock`` is ready for ``mask`` (EPOLLIN,
        EPOLLOUT; 0: no more)."""
        fd = sock.fileno()
        entry = self._fds.get(fd)
        if entry is None:
            if mask:
                self._epoll.register(fd, mask)
                self._fds[fd] = [sock, handler, mask]
        elif not mask:
            self.unwatch(sock)
        else:
            if entry[2] != mask:
                try:
                    self._epoll.modify(fd, mask)
                except FileNotFoundError:  # closed and its number reused without an unwatch
                    self._epoll.register(fd, mask)
            entry[:] = sock, handler, mask

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd >= 0 and self._fds.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (FileNotFoundError, ValueError):
                pass

    def join(self, client: socket.socket, target: tuple[str, int], local: bool | None = None,
             peer=None, nodelay: bool = False) -> None:
        """Connect to ``target`` here and join ``client`` to it (``local``: the client is on this
        machine; None: tell by its address). ``peer``: the client's address on the host, which the
        connection comes from when it can (``origins``); ``nodelay``: the client has TCP_NODELAY."""
        client.setblocking(False)
        if not nodelay:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ip = self.origins.source(peer) if self.origins is not None and peer is not None else None
        err = errno.EADDRINUSE
        for port in (peer[1], 0) if ip else (None,):
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            if ip:
                self.origins.bind(up, ip, port)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = up.connect_ex(target)
            if err in (0, errno.EINPROGRESS):
                break
            up.close()
            if err not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                break  # else: the client's port is in use towards this target here: another one
        if err not in (0, errno.EINPROGRESS):
            _reset(client)
            return
        if local is None and peer is not None:
            local = _is_loopback(peer[0])
        _Pair(self, client, up, self._half_kind(client, local))

    # what to serve ------------------------------------------------------------------------------
    def publish(self, sock: socket.socket, proto: str, port: int) -> None:
        if proto == "tcp":
            if self.origins is not None:
                self.origins.route_tcp(port)
            _TcpPort(self, sock, (self.target_ip, port))
        else:
            if self.origins is not None:
                self.origins.route_udp(port)
            _UdpPort(self, sock, (self.target_ip, port))

    def link(self, sock: socket.socket, door_dir: str, port: int, proto: str = "tcp"):
        """Serve a link's socket; the handler, for ``unlink``."""
        if proto == "tcp":
            return _LinkPort(self, sock, door_dir, port)
        return _LinkUdpPort(self, sock, door_dir, port)

    def unlink(self, handler) -> None:
        """Close a link's socket (nothing listens on its port any more): new clients are refused;
        the connections it made go on, its UDP flows end."""
        if isinstance(handler, _UdpFlows):
            for addr in list(handler.flows):
                handler._close(addr)
            if handler in self.udp:
                self.udp.remove(handler)
        self.unwatch(handler.sock)
        handler.sock.close()

    def door(self, sock: socket.socket) -> None:
        _Door(self, sock)

    def run(self, stop_fd: int | None = None) -> None:
        """Serve until ``stop_fd`` is readable (or closed by the other side)."""
        if stop_fd is not None:
            self._epoll.register(stop_fd, _READ)
            self._fds[stop_fd] = [None, None, _READ]
        while self.serve(self.timeout()):
            pass

    # as a part of another event loop (the keeper's) --------------------------------------------
    def share(self, sel, serve=None) -> None:
        """Be served by the loop of ``sel`` (a selector) from now on: its own epoll descriptor
        joins ``sel``, with ``serve`` (a callable; :meth:`serve` by default) as its data, which
        that loop calls when it is readable; it also calls :meth:`tick` after each of its
        wake-ups and sleeps at most :meth:`timeout`. One wait serves both loops."""
        import selectors
        sel.register(self._epoll.fileno(), selectors.EVENT_READ, serve or self.serve)
        self._shared = sel

    def timeout(self) -> float | None:
        """Seconds until the sweep of the DNS server's queries and links, or of idle UDP flows, is
        due (None: nothing to sweep)."""
        every = 0.5 if self.timers else 30.0 if self._flowing() else None
        return None if every is None else max(0.0, self._swept + every - time.monotonic())

    def tick(self) -> None:
        """Sweep if it is due."""
        if (self.udp or self.timers) and self.timeout() == 0.0:
            self._sweep()

    def serve(self, timeout: float | None = 0.0) -> bool:
        """One round of its loop: the events ready within ``timeout`` handled, then the sweep;
        False when the stop descriptor of :meth:`run` is readable."""
        fds = self._fds
        for fd, ev in self._epoll.poll(-1 if timeout is None else timeout):
            entry = fds.get(fd)
            if entry is None:
                continue  # unregistered by an earlier event of this round
            sock, handler, mask = entry
            if handler is None:
                return False
            # an error or hang-up is news for a reader and a writer alike
            ready = ((_READ if ev & ~_WRITE else 0) | (_WRITE if ev & ~_READ else 0)) & mask
            if ready:
                handler.handle(sock, ready)
        self._sweep()
        return True

    def _sweep(self) -> None:
        if self.udp or self.timers:
            now = self._swept = time.monotonic()
            for item in self.udp + self.timers:
                item.sweep(now)

    def fileno(self) -> int:
        """Its loop's epoll descriptor: readable when one of its sockets is ready."""
        return self._epoll.fileno()

    def _flowing(self) -> bool:
        """Whether a UDP flow is open (to be swept when idle)."""
        return any(getattr(u, "flows", True) for u in self.udp)

    def restable(self) -> bool:
        """Whether a resting keeper may carry it over (``runtime.hibernate``): it only listens (no
        connection, UDP flow or timer of its own: a DNS server's sockets say so with ``restable()``),
        so its epoll descriptor, its sockets and their handlers are all it is."""
        return not (self.timers or self._closed or self._flowing()) and all(
            isinstance(h, (_Listener, _UdpFlows)) or getattr(h, "restable", bool)()
            for _s, h, _m in self._fds.values() if h is not None)

    def __getstate__(self) -> dict:
        """Pickled by a resting keeper: its epoll object and sockets stay open (``hibernate``
        keeps them by descriptor); the loop it shares and its buffer are made again."""
        state = self.__dict__.copy()
        state["_shared"] = state["_scratch"] = None
        return state

    def close(self) -> None:
        """Close every socket it serves (its published ports are free on return) and its loop,
        which leaves the loop it shares (whose other entries stay as they are)."""
        if self._closed:
            return
        self._closed = True
        for item in list(self.timers):  # the links' followers (their descriptors of /proc/KEEPER)
            close = getattr(item, "close", None)
            if close is not None:
                close()
        for fd, (sock, handler, _mask) in list(self._fds.items()):
            if handler is None or fd not in self._fds:
                continue  # the stop descriptor; a pair's other socket, closed with it
            if isinstance(handler, _Pair):
                handler.close()  # its pipes too
            else:
                self.unwatch(sock)
                sock.close()
        if self._shared is not None:
            try:
                self._shared.unregister(self._epoll.fileno())
            except (KeyError, ValueError):
                pass
        self._epoll.close()

    def forget(self) -> None:
        """In a fork of its process: close that fork's copies of its descriptors, and nothing
        more (its epoll registrations are the serving process's: never unregistered here)."""
        for item in self.timers:  # the links' followers (their descriptors of /proc/KEEPER)
            forget = getattr(item, "forget", None)
            if forget is not None:
                forget()
        for sock, handler, _mask in self._fds.values():
            if handler is not None:
                sock.close()
        self._epoll.close()


def listen_door(directory: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{fd}/{DOOR}")
    finally:
        os.close(fd)
    sock.setblocking(False)
    return sock


def send_through_door(directory: str, sock: socket.socket, port: int, proto: str = "tcp") -> None:
    """Give ``sock`` (a TCP client, or one end of a UDP flow's pair) to the relay behind the door
    in ``directory``, for ``port``: one datagram, ``t``/``u`` and the port, the socket attached."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendmsg([proto[:1].encode() + struct.pack("!H", port)],
                      [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", sock.fileno()))],
                      0, f"/proc/self/fd/{fd}/{DOOR}")
    finally:
        os.close(fd)
