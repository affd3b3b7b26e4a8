"""The API server's HTTP reading (malformed requests are 400, never a traceback) and its peer check."""

from __future__ import annotations

import os
import socket

import pytest

from rootless.api import peer


# ---- the peer of a loopback TCP connection -------------------------------------------------------
@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_tcp_peer_uid_is_ours_on_loopback(family, host):
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(1)
        with socket.socket(family) as cli:
            cli.connect(srv.getsockname()[:2])
            conn, _ = srv.accept()
            with conn:
                assert peer.tcp_peer_uid(conn) == os.getuid()
                assert peer.tcp_peer_uid(conn, read=lambda _p: "header\n") is None  # not found: None


def test_table_uid_reads_the_client_row():
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1\n"
             "   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  200999      0 2\n"
             "   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3\n")
    client = peer._hex_address(socket.AF_INET, "127.0.0.1", 0xD431)
    server = peer._hex_address(socket.AF_INET, "127.0.0.1", 0x1F90)
    if client.startswith("0100007F"):  # little-endian host, as the table above is written
        assert peer.table_uid(table, client, server) == 200999
    assert peer.table_uid(table, "0100007F:0001", server) is None


def test_unix_peer_uid():
    a, b = socket.socketpair()
    with a, b:
        assert peer.unix_peer_uid(a) == os.getuid()


# ---- malformed requests: BadRequest (400), never another exception ---------------------------------
def _read(data: bytes, idle: float | None = None):
    """The first request of ``data`` and its whole body, read by the server's reader."""
    from rootless.api import http
    a, b = socket.socketpair()
    with a, b:
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        conn = http.Connection(a, idle)
        req = conn.read_request()
        body = req.body() if req else None
        return conn, req, body


BAD = [
    b"GET /_ping HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nContent-Length: -5\r\n\r\nhello",
    b"GET /_ping HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
    b"GET /_ping HTTP/1.1\r\nContent-Length: 5 5\r\n\r\nhello",
    b"GET /_ping HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nhello",  # a digit to str.isdigit, not to int
    b"GET /_ping HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\nab\r\n0\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 2000 + b"\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nab",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-T: 1\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    b"GET /_ping HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 10000 + b"\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    b"GET /_ping\r\n\r\n",
    b"GET /_ping HTTP/1.1 extra\r\n\r\n",
    b"GET /_ping SPDY/3\r\n\r\n",
    b"GET http://[::1/_ping HTTP/1.1\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\n: empty name\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nHost: x",  # the headers end early
    b"GET /_ping HTTP/1.1",
]


@pytest.mark.parametrize("data", BAD, ids=range(len(BAD)))
def test_malformed_requests_are_bad_requests(data):
    from rootless.api import http
    with pytest.raises(http.BadRequest):
        conn, _req, _body = _read(data)
    # a body that could not be read leaves no way to the next request: the connection closes


def test_a_broken_body_ends_the_connection():
    from rootless.api import http
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\nGET /_ping HTTP/1.1\r\n\r\n")
        conn = http.Connection(a)
        req = conn.read_request()
        with pytest.raises(http.BadRequest):
            req.body()
        assert not conn.keep_alive
        req.drain()  # nothing more is read, nor raised


def test_a_handler_that_stops_early_leaves_the_rest_to_drain():
    from rootless.api import http
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
                  b"GET /_ping HTTP/1.1\r\n\r\n")
        conn = http.Connection(a)
        req = conn.read_request()
        for chunk in req.body_chunks():
            assert chunk == b"ab"
            break
        req.drain()
        assert conn.keep_alive
        nxt = conn.read_request()
        assert (nxt.method, nxt.path) == ("GET", "/_ping")


def test_good_requests_still_read():
    conn, req, body = _read(b"POST /v1.41/x?a=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert (req.method, req.path, req.arg("a"), body) == ("POST", "/v1.41/x", "1", b"hello")
    conn, req, body = _read(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"2;ext=1\r\nab\r\n3\r\ncde\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert body == b"abcde" and conn.keep_alive
    conn, req, body = _read(b"\r\nGET /_ping HTTP/1.0\r\n\r\n")
    assert req.path == "/_ping" and body == b"" and not conn.keep_alive


def test_a_repeated_query_parameter_counts_with_its_first_value():
    """As Docker's Go server (``r.Form.Get``): docker-py sends ``dockerfile`` twice in some builds."""
    _conn, req, _body = _read(b"POST /build?dockerfile=first&t=x&dockerfile=second&q=&q=1&rm=1&rm=0 HTTP/1.1\r\n"
                              b"Content-Length: 0\r\n\r\n")
    assert req.arg("dockerfile") == "first" and req.arg("t") == "x" and req.arg("none", "d") == "d"
    assert req.arg("q") == "" and not req.flag("q") and req.flag("rm")
    assert req.query["dockerfile"] == ["first", "second"]  # every value stays for the lists (names=...)


def test_an_idle_connection_raises_idle():
    import time

    from rootless.api import http
    a, b = socket.socketpair()
    with a, b:
        conn = http.Connection(a, idle=0.3)
        began = time.monotonic()
        with pytest.raises(http.Idle):
            conn.read_request()  # nothing sent
        b.sendall(b"GET /_ping HTTP/1.1\r\n")  # mid-headers, then silence
        with pytest.raises(http.Idle):
            conn.read_request()
        assert time.monotonic() - began < 5
