"""The built-in relay with real sockets on loopback: bytes, half-close, resets, UDP, the door.

The relay runs in a forked process (as in a container's keeper) in front of servers run by
the test; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import struct

import pytest

from netstack import relay
from tests.servers import listener, serve, udp_echo

MOVERS = ["copy", "splice", "auto"]


@pytest.fixture(params=MOVERS, autouse=True)
def mover(request):
    """Every test runs with each way of moving bytes (auto: copy, the clients here are local)."""
    RelayProcess.mover = request.param
    return request.param


class RelayProcess:
    open_stops: set[int] = set()  # every relay's stop pipe: a later fork must not keep an earlier one open
    mover = "auto"

    def __init__(self, setup):
        self.stop_r, self.stop_w = os.pipe()
        self.open_stops.add(self.stop_w)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                for fd in self.open_stops:
                    os.close(fd)
                r = relay.Relay("127.0.0.1", self.mover)
                setup(r)
                r.run(self.stop_r)
            finally:
                os._exit(0)
        os.close(self.stop_r)

    def stop(self):
        self.open_stops.discard(self.stop_w)
        os.close(self.stop_w)
        _, status = os.waitpid(self.pid, 0)
        return status


def published(target_port: int, proto: str = "tcp"):
    """A relay publishing a fresh host port to ``target_port``; (relay, host port)."""
    sock = listener(socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    rp = RelayProcess(lambda r: r.publish(sock, proto, target_port))
    sock.close()
    return rp, port


def linked_relays(door_dir: str, port: int, proto: str):
    """A linked container's relay (its door in ``door_dir``) and a linking one whose link socket
    forwards to ``port``: (linked, linking, the link socket's port)."""
    door = relay.listen_door(door_dir)
    linked = RelayProcess(lambda r: r.door(door))
    door.close()
    link_sock = listener(socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    link_sock.setblocking(False)
    link_port = link_sock.getsockname()[1]
    linking = RelayProcess(lambda r: r.link(link_sock, door_dir, port, proto))
    link_sock.close()
    return linked, linking, link_port


def udp_clients(port: int, payloads: list[bytes]) -> list[socket.socket]:
    """One client socket per payload, each having sent its payload to ``port``."""
    clients = []
    for p in payloads:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(10)
        c.sendto(p, ("127.0.0.1", port))
        clients.append(c)
    return clients


def recv_all(s) -> bytes:
    if s.gettimeout() is None:
        s.settimeout(30)  # a relay that loses a half-close fails the test instead of hanging it
    chunks = []
    while True:
        data = s.recv(1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def hashing_server(conn):
    """Read to EOF, answer the sha256 of what came, close."""
    h = hashlib.sha256()
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        h.update(data)
    conn.sendall(h.hexdigest().encode())
    conn.close()


@pytest.fixture
def hashing():
    srv = serve(hashing_server)
    yield srv.port
    srv.close()


def test_large_transfer_and_half_close(hashing):
    rp, port = published(hashing)
    try:
        payload = os.urandom(1 << 20) * 40  # 40 MB: many pipe fills, partial splices
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)  # the server sees EOF only if the relay passes the half-close on
            assert recv_all(c).decode() == hashlib.sha256(payload).hexdigest()
    finally:
        rp.stop()


def test_many_connections_at_once(hashing):
    rp, port = published(hashing)
    try:
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
        for i, c in enumerate(conns):
            c.sendall(str(i).encode() * 1000)
            c.shutdown(socket.SHUT_WR)
        for i, c in enumerate(conns):
            assert recv_all(c).decode() == hashlib.sha256(str(i).encode() * 1000).hexdigest()
            c.close()
    finally:
        rp.stop()


def test_server_to_client_stream_after_client_half_close():
    def talker(conn):
        assert recv_all(conn) == b"go"
        for _ in range(100):
            conn.sendall(b"x" * 65536)
        conn.close()
    srv = serve(talker)
    rp, port = published(srv.port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"go")
            c.shutdown(socket.SHUT_WR)
            assert len(recv_all(c)) == 100 * 65536
    finally:
        rp.stop()
        srv.close()


def test_refused_upstream_resets_the_client():
    dead = listener()
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    rp, port = published(dead_port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.settimeout(10)
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                c.sendall(b"x")
                if c.recv(1) == b"":
                    raise ConnectionResetError
    finally:
        rp.stop()


def test_upstream_reset_reaches_the_client():
    def resetter(conn):
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    srv = serve(resetter)
    rp, port = published(srv.port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.settimeout(10)
            c.sendall(b"x")
            with pytest.raises(ConnectionResetError):
                while c.recv(65536):
                    pass
                raise ConnectionResetError  # an orderly EOF would be wrong, but is not what we got
    finally:
        rp.stop()
        srv.close()


def test_udp_echo_and_replies_per_client():
    srv = udp_echo(bytes.upper)
    rp, port = published(srv.port, "udp")
    try:
        clients = udp_clients(port, [f"hello {i}".encode() for i in range(3)])
        for i, c in enumerate(clients):
            assert c.recvfrom(100)[0] == f"HELLO {i}".encode()
            c.sendto(b"again", ("127.0.0.1", port))
            assert c.recvfrom(100)[0] == b"AGAIN"
            c.close()
    finally:
        rp.stop()
        srv.close()


def test_door_and_link_listener(tmp_path, hashing):
    """A link listener sends its clients through another relay's door, which joins them to the port."""
    linked, linking, port = linked_relays(str(tmp_path), hashing, "tcp")
    try:
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"through the door")
            c.shutdown(socket.SHUT_WR)
            assert recv_all(c).decode() == hashlib.sha256(b"through the door").hexdigest()
    finally:
        linked.stop()
    try:
        # the linked side is gone: the client is refused (reset), not left hanging
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.settimeout(10)
            with pytest.raises(ConnectionResetError):
                c.sendall(b"x")
                if c.recv(1) == b"":
                    raise ConnectionResetError
    finally:
        linking.stop()


def test_stop_ends_the_relay_and_frees_the_port(hashing):
    rp, port = published(hashing)
    status = rp.stop()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))  # the relay held the only copy
    s.close()
    assert signal.SIGTERM  # (the keeper also sends SIGTERM; the pipe alone is enough)


def test_udp_through_a_link_and_door(tmp_path):
    """A link's UDP socket: each client's flow goes through the door to the linked relay."""
    srv = udp_echo(lambda d: d[::-1])
    linked, linking, port = linked_relays(str(tmp_path), srv.port, "udp")
    try:
        clients = udp_clients(port, [f"abc{i}".encode() for i in range(2)])
        for i, c in enumerate(clients):
            assert c.recvfrom(100)[0] == f"{i}cba".encode()
        linked.stop()
        clients[0].settimeout(0.3)
        clients[0].sendto(b"lost", ("127.0.0.1", port))  # the linked side is gone: dropped, as UDP may
        with pytest.raises(TimeoutError):
            clients[0].recvfrom(100)
        for c in clients:
            c.close()
    finally:
        if linked.stop_w in RelayProcess.open_stops:
            linked.stop()
        linking.stop()
        srv.close()


def test_a_handler_watching_for_read_and_write_is_told_of_each(mover):
    """What the relay's users ask of ``watch``: the epoll masks (the DNS server's TCP answers that
    do not fit at once wait for EPOLLOUT with EPOLLIN)."""
    import select
    import threading
    a, b = socket.socketpair()
    stop_r, stop_w = os.pipe()
    seen = []
    first = threading.Event()

    class Handler:
        def handle(self, sock, events):
            seen.append(events)
            if events & select.EPOLLIN:
                sock.recv(100)
            r.watch(sock, select.EPOLLIN, self)  # written: only reads from now on
            first.set()
            if len(seen) == 2:
                os.write(stop_w, b"x")

    r = relay.Relay("127.0.0.1", mover)
    r.watch(a, select.EPOLLIN | select.EPOLLOUT, Handler())
    t = threading.Thread(target=r.run, args=(stop_r,), daemon=True)
    t.start()
    assert first.wait(10)
    b.sendall(b"hello")
    t.join(10)
    assert not t.is_alive()
    assert seen == [select.EPOLLOUT, select.EPOLLIN]
    for fd in (stop_r, stop_w):
        os.close(fd)
    a.close()
    b.close()
