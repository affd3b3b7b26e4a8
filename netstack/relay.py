"""The built-in port forwarder: one event loop per container, bytes moved with ``splice``.

It runs in the container's network namespace and holds sockets created elsewhere:

- *published ports*: listeners bound on the host before the container started. A TCP client
  is accepted, a connection to the container's address is opened here, and the two are joined
  by a pair of pipes: ``splice`` moves pages socket -> pipe -> socket without copying them
  through user space. Half-closes are passed on (``shutdown``), resets too.
- *UDP ports*: one connected socket per client address, idle flows closed after a while.
- the *door*: an AF_UNIX datagram socket in the container's runtime directory. A linking
  container's relay sends an accepted client socket through it (SCM_RIGHTS) with the port it
  wants; it is joined to that port here, as a published port's client would be.
- *link listeners*: sockets in the linking container's link namespace; their clients are sent
  through the linked container's door.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import socket
import struct
import time

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
DOOR = "relay.door"
UDP_IDLE = 120.0
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.EHOSTUNREACH,
         errno.ENETUNREACH, errno.ECONNABORTED)


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


class _Half:
    """One direction of a connection: src -> pipe -> dst."""

    __slots__ = ("src", "dst", "r", "w", "pending", "eof", "shut")

    def __init__(self, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.r, self.w = _pipe()
        self.pending = 0
        self.eof = False
        self.shut = False

    def done(self) -> bool:
        return self.eof and not self.pending


class _Pair:
    """A client socket joined to an upstream socket, once the upstream has connected."""

    def __init__(self, relay: Relay, client: socket.socket, upstream: socket.socket):
        self.relay = relay
        self.client, self.upstream = client, upstream
        self.halves: tuple[_Half, _Half] | None = None
        self.masks = {}
        self.closed = False
        relay.watch(upstream, _WRITE, self)

    # events ---------------------------------------------------------------------------------
    def handle(self, sock: socket.socket, events: int) -> None:
        if self.halves is None:
            self._connected()
            return
        out, back = self.halves
        if events & _WRITE:
            for h in (out, back):
                if h.dst is sock and h.pending and not self._flush(h):
                    return
        if events & _READ:
            for h in (out, back):
                if h.src is sock and not self._pump(h):
                    return
        self._update()

    def _connected(self) -> None:
        err = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.abort()
            return
        self.halves = (_Half(self.client, self.upstream), _Half(self.upstream, self.client))
        self._update()

    # moving bytes -----------------------------------------------------------------------------
    def _pump(self, h: _Half) -> bool:
        """Read from h.src while the pipe takes it and h.dst takes the pipe; False once closed."""
        for _ in range(8):
            if h.pending or h.eof:
                return True
            try:
                n = os.splice(h.src.fileno(), h.w, PIPE_SIZE, flags=SPLICE)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno in _GONE:
                    self.abort()
                    return False
                raise
            if n == 0:
                h.eof = True
            else:
                h.pending += n
            if not self._flush(h):
                return False
        return True

    def _flush(self, h: _Half) -> bool:
        while h.pending:
            try:
                n = os.splice(h.r, h.dst.fileno(), h.pending, flags=SPLICE)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno in _GONE:
                    self.abort()
                    return False
                raise
            h.pending -= n
        if h.eof and not h.shut:
            h.shut = True
            try:
                h.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return True

    def _update(self) -> None:
        if self.closed:
            return
        out, back = self.halves
        if out.done() and back.done():
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
            os.close(h.r)
            os.close(h.w)


class _TcpPort:
    """A listener whose clients are joined to ``target`` in this namespace."""

    def __init__(self, relay: Relay, sock: socket.socket, target: tuple[str, int]):
        self.relay, self.sock, self.target = relay, sock, target
        relay.watch(sock, _READ, self)

    def handle(self, _sock, _events) -> None:
        for _ in range(16):
            try:
                client, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED):
                    return
                raise
            self.relay.join(client, self.target)


class _LinkPort:
    """A listener in the link namespace whose clients go through a linked container's door."""

    def __init__(self, relay: Relay, sock: socket.socket, door_dir: str, port: int):
        self.relay, self.sock, self.door_dir, self.port = relay, sock, door_dir, port
        relay.watch(sock, _READ, self)

    def handle(self, _sock, _events) -> None:
        for _ in range(16):
            try:
                client, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                send_through_door(self.door_dir, client, self.port)
            except OSError:
                _reset(client)  # the linked container is not running: as a refused connection
            else:
                client.close()


class _Door:
    """Client sockets sent by linking containers, each with the port it is for."""

    def __init__(self, relay: Relay, sock: socket.socket):
        self.relay, self.sock = relay, sock
        relay.watch(sock, _READ, self)

    def handle(self, _sock, _events) -> None:
        for _ in range(16):
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.sock, 16, 1)
            except (BlockingIOError, InterruptedError):
                return
            if not fds:
                continue
            client = socket.socket(fileno=fds[0])
            for extra in fds[1:]:
                os.close(extra)
            if len(msg) != 2:
                _reset(client)
                continue
            client.setblocking(False)
            self.relay.join(client, (self.relay.target_ip, struct.unpack("!H", msg)[0]))


class _UdpPort:
    """Datagrams from host clients to ``target``, replies back to each client."""

    def __init__(self, relay: Relay, sock: socket.socket, target: tuple[str, int]):
        self.relay, self.sock, self.target = relay, sock, target
        self.flows: dict = {}  # client address -> [upstream socket, last use, client address]
        self.by_fd: dict = {}  # upstream fd -> the same flow
        relay.watch(sock, _READ, self)

    def handle(self, sock, _events) -> None:
        now = time.monotonic()
        if sock is self.sock:
            for _ in range(64):
                try:
                    data, addr = self.sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                flow = self.flows.get(addr)
                if flow is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.setblocking(False)
                    up.connect(self.target)
                    flow = self.flows[addr] = self.by_fd[up.fileno()] = [up, now, addr]
                    self.relay.watch(up, _READ, self)
                flow[1] = now
                try:
                    flow[0].send(data)
                except OSError:
                    pass
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
            except OSError:  # ICMP port unreachable from the container: nothing listens (yet)
                return
            try:
                self.sock.sendto(data, flow[2])
            except OSError:
                pass

    def sweep(self, now: float) -> None:
        for addr, flow in list(self.flows.items()):
            if now - flow[1] > UDP_IDLE:
                self.relay.unwatch(flow[0])
                self.by_fd.pop(flow[0].fileno(), None)
                flow[0].close()
                del self.flows[addr]


class Relay:
    """The event loop. ``target_ip``: the container's address in its own network namespace."""

    def __init__(self, target_ip: str):
        self.target_ip = target_ip
        self.sel = selectors.DefaultSelector()
        self.udp: list[_UdpPort] = []

    def watch(self, sock: socket.socket, mask: int, handler) -> None:
        fd = sock.fileno()
        key = self.sel.get_map().get(fd)
        if key is None:
            if mask:
                self.sel.register(fd, mask, (sock, handler))
        elif not mask:
            self.sel.unregister(fd)
        elif key.events != mask:
            self.sel.modify(fd, mask, (sock, handler))

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd >= 0 and fd in self.sel.get_map():
            self.sel.unregister(fd)

    def join(self, client: socket.socket, target: tuple[str, int]) -> None:
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setblocking(False)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = up.connect_ex(target)
        if err not in (0, errno.EINPROGRESS):
            up.close()
            _reset(client)
            return
        _Pair(self, client, up)

    # what to serve ------------------------------------------------------------------------------
    def publish(self, sock: socket.socket, proto: str, port: int) -> None:
        if proto == "tcp":
            _TcpPort(self, sock, (self.target_ip, port))
        else:
            self.udp.append(_UdpPort(self, sock, (self.target_ip, port)))

    def link(self, sock: socket.socket, door_dir: str, port: int) -> None:
        _LinkPort(self, sock, door_dir, port)

    def door(self, sock: socket.socket) -> None:
        _Door(self, sock)

    def run(self, stop_fd: int | None = None) -> None:
        """Serve until ``stop_fd`` is readable (or closed by the other side)."""
        if stop_fd is not None:
            self.sel.register(stop_fd, _READ, None)
        while True:
            events = self.sel.select(30.0 if self.udp else None)
            for key, mask in events:
                if key.data is None:
                    return
                if key.fd not in self.sel.get_map():
                    continue  # unregistered by an earlier event of this round
                sock, handler = self.sel.get_key(key.fd).data
                handler.handle(sock, mask)
            if self.udp:
                now = time.monotonic()
                for port in self.udp:
                    port.sweep(now)


def listen_door(directory: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{fd}/{DOOR}")
    finally:
        os.close(fd)
    sock.setblocking(False)
    return sock


def send_through_door(directory: str, client: socket.socket, port: int) -> None:
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendmsg([struct.pack("!H", port)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   struct.pack("i", client.fileno()))],
                       0, f"/proc/self/fd/{fd}/{DOOR}")
    finally:
        os.close(fd)
