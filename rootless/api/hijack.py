"""A hijacked stream's first bytes, sent once the client has read the response's head.

docker-py (every client on Python's ``http.client``) parses the ``101 UPGRADED`` head with a
buffered reader (8 KB reads) and then reads the stream from the raw socket under it: bytes that
arrived together with the head went into that buffer and are lost to it. An attach's log replay,
or a quick exec's output, is ready at once; so the first bytes after the head wait until the
client has read all that was sent before them:

- a Unix stream socket: what the peer has not read yet stays charged to the sender, and our
  end's ``SIOCOUTQ`` (``TIOCOUTQ``) is 0 once it has read it all;
- TCP on loopback: our ``SIOCOUTQ`` is 0 (all of it acknowledged: in the client's receive
  queue), and the client's socket, its row in ``/proc/net/tcp*`` (``api.peer.tcp_peer_row``),
  has an empty ``rx_queue``;
- a client that cannot be seen (no row in this namespace's tables): a short delay, ``BLIND``.

Polled in growing steps from 1 ms, for at most ``LIMIT`` seconds: the bytes go anyway then.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time

from rootless.api import peer

LIMIT = 2.0  # seconds a client may take to read the head before the stream goes on anyway
BLIND = 0.05  # the wait for a client whose reading cannot be seen


def _outq(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def unread(sock: socket.socket, read=None) -> bool | None:
    """Whether the client has yet to read some of what was sent to it; None when that cannot be
    told (not a stream socket of ours we can see the other end of). ``read`` reads a table
    (tests)."""
    try:
        if sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM:
            return _outq(sock) > 0
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            if _outq(sock) > 0:  # not all acknowledged yet: not all in the client's queue either
                return True
            fields = peer.tcp_peer_row(sock, read)
            if fields is None:
                return None
            return int(fields[4].partition(":")[2], 16) > 0
    except (OSError, ValueError, IndexError):
        return None
    return None


def await_read(sock: socket.socket, limit: float = LIMIT, blind: float = BLIND, read=None) -> bool:
    """Return once the client has read all that was sent to it (True), or after ``limit``
    seconds, or ``blind`` seconds when its reading cannot be seen (False)."""
    deadline = time.monotonic() + limit
    step = 0.001
    while True:
        state = unread(sock, read)
        if state is None:
            time.sleep(blind)
            return False
        if not state:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(step, left))
        step = min(step * 1.5, 0.05)


class AfterHead:
    """A hijacked socket (``api.http.Hijacked``) whose first send awaits the client's read of
    what went before it, the response's head (``await_read``); the rest as the socket's."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._first = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int, /) -> bytes:
        return self.sock.recv(size)

    def sendall(self, data: bytes, /) -> None:
        if self._first and data:
            self._first = False
            await_read(self.sock)
        self.sock.sendall(data)

    def shutdown(self, how: int, /) -> None:
        self.sock.shutdown(how)
