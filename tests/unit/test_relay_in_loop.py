"""The port relay as a part of another process's loop (the keeper's): one round at a time, its
sockets closed on demand, and a fork's copies dropped without touching the server's loop."""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time

from netstack.relay import Relay


def _listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def _echo_once(server: socket.socket) -> threading.Thread:
    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def _ask(port: int, relay: Relay) -> bytes:
    """A request through the relay's published ``port``, the relay served a round at a time here."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"ping")
        c.setblocking(False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            relay.serve(0.01)
            try:
                data = c.recv(100)
            except BlockingIOError:
                continue
            return data
    raise AssertionError("no answer through the relay")


def _published(relay: Relay) -> tuple[socket.socket, int]:
    backend = _listener()
    front = _listener()
    front.setblocking(False)  # as netstack.ports binds them
    relay.publish(front, "tcp", backend.getsockname()[1])
    return backend, front.getsockname()[1]


def test_a_round_at_a_time_joins_a_client_and_timeout_says_when_to_sweep():
    relay = Relay("127.0.0.1")
    backend, port = _published(relay)
    assert relay.timeout() is None  # nothing to sweep: the keeper's loop may sleep
    _echo_once(backend)
    assert _ask(port, relay) == b"PING"
    relay.close()
    backend.close()


def test_close_frees_the_published_port_at_once():
    relay = Relay("127.0.0.1")
    backend, port = _published(relay)
    relay.close()
    relay.close()  # twice is nothing
    again = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    again.bind(("127.0.0.1", port))  # nobody listens there any more
    again.close()
    backend.close()


def test_a_forks_forget_leaves_the_servers_loop_as_it_was():
    """The container's PID 1 is a fork of the keeper: it drops its copies of the relay's
    descriptors, and the keeper's relay goes on serving (its registrations are not the fork's)."""
    relay = Relay("127.0.0.1")
    backend, port = _published(relay)
    pid = os.fork()
    if pid == 0:
        try:
            relay.forget()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    _echo_once(backend)
    assert _ask(port, relay) == b"PING"
    relay.close()
    backend.close()


def test_shared_with_another_loops_selector_it_is_served_there_and_closes_only_its_own():
    relay = Relay("127.0.0.1")
    backend, port = _published(relay)
    sel = selectors.DefaultSelector()
    r, w = os.pipe()
    sel.register(r, selectors.EVENT_READ, "the other loop's")
    relay.share(sel)
    _echo_once(backend)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"ping")
        c.setblocking(False)
        answer = b""
        deadline = time.monotonic() + 5
        while not answer and time.monotonic() < deadline:
            for key, _mask in sel.select(0.01):
                if callable(key.data):  # the relay's loop is readable: a round of it
                    key.data()
            relay.tick()
            try:
                answer = c.recv(100)
            except BlockingIOError:
                pass
    assert answer == b"PING"
    relay.close()
    assert [k.data for k in sel.get_map().values()] == ["the other loop's"]  # its own entries only
    sel.close()
    os.close(r)
    os.close(w)
    backend.close()
