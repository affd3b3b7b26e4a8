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
