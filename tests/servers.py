"""Loopback servers for tests, run by threads of the test process.

A thread blocked in a socket must be stopped before the socket is closed: closing frees the fd
number for the next socket this process makes (another test's channel), and a thread that then
calls into it reads that socket's messages. ``Server.close`` stops the thread first.
"""

from __future__ import annotations

import os
import select
import socket
import threading


def listener(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    return s


class Server:
    """A loopback server whose thread calls ``on_ready(sock)`` each time its socket is readable;
    ``close`` stops the thread, then closes the socket."""

    def __init__(self, kind, on_ready):
        self.sock = listener(kind)
        self.port = self.sock.getsockname()[1]
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, args=(on_ready,), daemon=True)
        self._thread.start()

    def _loop(self, on_ready):
        while self._stop_r not in select.select([self.sock, self._stop_r], [], [])[0]:
            on_ready(self.sock)

    def close(self):
        os.write(self._stop_w, b"x")
        self._thread.join()
        self.sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


def serve(handler) -> Server:
    """A TCP server running ``handler(conn)`` in a thread per connection."""
    def accept(srv):
        conn, _ = srv.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()
    return Server(socket.SOCK_STREAM, accept)


def udp_echo(transform) -> Server:
    """A UDP server answering each datagram with ``transform(datagram)``."""
    def echo(srv):
        data, addr = srv.recvfrom(65535)
        srv.sendto(transform(data), addr)
    return Server(socket.SOCK_DGRAM, echo)
