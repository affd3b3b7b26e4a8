"""A hijacked stream's first bytes wait until the client has read the head (``api.hijack``): seen
on a Unix socket (our end's unread bytes) and on loopback TCP (the client's row's ``rx_queue``),
a short delay for a client that cannot be seen, and never more than the limit."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from rootless.api import hijack


@contextlib.contextmanager
def _unix_pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        yield ours, theirs


@contextlib.contextmanager
def _tcp_pair(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(1)
        with socket.socket(family) as theirs:
            theirs.connect(srv.getsockname()[:2])
            ours, _ = srv.accept()
            with ours:
                yield ours, theirs


def _loopback_v6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


PAIRS = [pytest.param(_unix_pair, id="unix"), pytest.param(_tcp_pair, id="tcp"),
         pytest.param(lambda: _tcp_pair(socket.AF_INET6, "::1"), id="tcp6",
                      marks=pytest.mark.skipif(not _loopback_v6(), reason="no IPv6 loopback here"))]


def _until(cond, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@pytest.mark.parametrize("pair", PAIRS)
def test_unread_until_the_client_has_read_it_all(pair):
    with pair() as (ours, theirs):
        assert hijack.unread(ours) is False  # nothing sent
        ours.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n")
        assert _until(lambda: hijack.unread(ours) is True, 0.5)  # TCP: once it is in the client's queue, too
        assert hijack.unread(ours) is True
        theirs.recv(5)
        assert hijack.unread(ours) is True  # a part read: not yet
        got = b""
        while len(got) < 20:
            got += theirs.recv(100)
        assert hijack.unread(ours) is False
        ours.sendall(b"more")
        assert hijack.unread(ours) is True
        theirs.recv(100)
        assert hijack.unread(ours) is False


@pytest.mark.parametrize("pair", PAIRS)
def test_await_read_returns_once_the_client_reads(pair):
    with pair() as (ours, theirs):
        ours.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n")
        reader = threading.Timer(0.2, theirs.recv, (100,))  # a client slow to read the head
        reader.start()
        began = time.monotonic()
        assert hijack.await_read(ours) is True
        waited = time.monotonic() - began
        reader.join()
        assert waited > 0.19  # not before the read (True: not the limit's end either)


@pytest.mark.parametrize("pair", PAIRS)
def test_await_read_does_not_wait_for_a_client_that_read(pair, monkeypatch):
    with pair() as (ours, theirs):
        ours.sendall(b"head\r\n\r\n")
        assert theirs.recv(100) == b"head\r\n\r\n"
        assert _until(lambda: hijack.unread(ours) is False)  # TCP: the ack may come an instant later
        slept = []
        monkeypatch.setattr(hijack.time, "sleep", slept.append)
        assert hijack.await_read(ours) is True
        assert slept == []  # no wait at all (not a wall-clock bound: it failed under load)


def test_await_read_gives_up_after_the_limit():
    with _unix_pair() as (ours, _theirs):
        ours.sendall(b"never read")
        began = time.monotonic()
        assert hijack.await_read(ours, limit=0.3) is False
        assert time.monotonic() - began > 0.29


def test_a_client_that_cannot_be_seen_gets_a_short_delay(monkeypatch):
    """A TCP client with no row in our tables (elsewhere): the blind delay, not the limit."""
    with _tcp_pair() as (ours, _theirs):
        ours.sendall(b"head")
        no_table = "  sl  local_address rem_address   st tx_queue rx_queue\n"
        assert hijack.unread(ours, read=lambda _p: no_table) is None
        slept = []
        monkeypatch.setattr(hijack.time, "sleep", slept.append)
        assert hijack.await_read(ours, blind=0.1, read=lambda _p: no_table) is False
        assert slept == [0.1]


def test_after_head_waits_on_the_first_send_only(monkeypatch):
    with _unix_pair() as (ours, theirs):
        ours.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n")
        client = hijack.AfterHead(ours)
        assert client.fileno() == ours.fileno()
        reader = threading.Timer(0.2, theirs.recv, (100,))
        reader.start()
        began = time.monotonic()
        client.sendall(b"replay")
        assert time.monotonic() - began > 0.19  # not before the head was read
        reader.join()
        assert theirs.recv(100) == b"replay"  # alone: a buffered reader of the head could not take it
        slept = []
        monkeypatch.setattr(hijack.time, "sleep", slept.append)
        client.sendall(b"then at once")  # the head is read: no more waiting, read or not
        client.sendall(b"!")
        assert slept == []
        theirs.sendall(b"input")
        assert client.recv(100) == b"input"
        client.shutdown(socket.SHUT_WR)
        rest = b""
        while chunk := theirs.recv(100):
            rest += chunk
        assert rest == b"then at once!"
