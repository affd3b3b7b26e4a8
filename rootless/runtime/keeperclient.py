"""The keeper's attach protocol: its socket, its message tags and their framing, for both ends.

A container's keeper (:mod:`rootless.runtime.keeper`) listens on ``attach.sock`` in the
container's run directory; its clients (``attach``, ``wait``, the API's attach, wait and
resize, finding a keeper without its record) connect with :func:`connect` or, before the
container runs, wait for the keeper with :func:`register_pending`. The socket speaks
SOCK_SEQPACKET datagrams whose first byte says what they carry: the container's output
and, last, its exit code (keeper -> client); input, the window size and the end of input
(client -> keeper). This module alone knows those bytes.
"""

from __future__ import annotations

import os
import socket
import struct

ATTACH_SOCKET = "attach.sock"
MAX_MESSAGE = 65537  # a tag and up to 64 KiB

_OUT, _ERR = b"o", b"e"  # keeper -> client: output of the container
_EXIT = b"x"  # keeper -> client, last: the container's exit code, once its end is recorded
_IN, _WINSIZE, _CLOSE_STDIN = b"i", b"w", b"c"  # client -> keeper
_SYNC, _SYNCED = b"s", b"y"  # client -> keeper: log what the container wrote so far; keeper -> client: done

_STREAM_TAG = {"stdout": _OUT, "stderr": _ERR}
_TAG_STREAM = {_OUT: "stdout", _ERR: "stderr"}
_REQUEST = {_IN: "input", _WINSIZE: "winsize", _CLOSE_STDIN: "close-stdin", _SYNC: "sync"}


# ---- the keeper's end ---------------------------------------------------------------------------
def output_message(stream: str, data: bytes) -> bytes:
    """What the keeper sends for ``data`` the container wrote to ``stream`` (stdout or stderr)."""
    return _STREAM_TAG[stream] + data


def exit_message(code: int) -> bytes:
    """The keeper's last message: the container's exit code."""
    return _EXIT + str(code).encode()


def synced_message() -> bytes:
    """The keeper's answer to ``sync``: what the container had written is in its log."""
    return _SYNCED


def parse_request(msg: bytes) -> tuple[str | None, bytes]:
    """A client's message as (``input`` | ``winsize`` | ``close-stdin`` | None if unknown, payload)."""
    return _REQUEST.get(msg[:1]), msg[1:]


def short_path(directory: str, name: str, use) -> None:
    """Socket paths are limited to 108 bytes: reach ``directory`` through a short fd path."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        use(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


# ---- a client's end -----------------------------------------------------------------------------
class Link:
    """A client's connection to a keeper."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send_input(self, data: bytes) -> None:
        self.sock.send(_IN + data)

    def send_winsize(self, size: bytes) -> None:
        """``size``: a ``struct winsize`` (rows, columns, x and y pixels: four unsigned shorts)."""
        self.sock.send(_WINSIZE + size)

    def resize(self, rows: int, columns: int) -> None:
        self.send_winsize(struct.pack("HHHH", rows, columns, 0, 0))

    def close_stdin(self) -> None:
        self.sock.send(_CLOSE_STDIN)

    def receive(self) -> tuple[str, bytes | int | None]:
        """The keeper's next message: (``stdout`` | ``stderr``, bytes), (``exit``, the code), or
        (``end``, None) when the keeper closed without saying."""
        msg = self.sock.recv(MAX_MESSAGE)
        if not msg:
            return "end", None
        tag = msg[:1]
        if tag == _EXIT:
            return "exit", int(msg[1:])
        return _TAG_STREAM.get(tag, "stderr"), msg[1:]

    def exit_code(self) -> int | None:
        """Skip the output until the keeper says the exit code (None: it ended without saying)."""
        while True:
            kind, value = self.receive()
            if kind == "end":
                return None
            if kind == "exit":
                assert isinstance(value, int)  # receive gives the exit code as an int
                return value

    def sync(self, timeout: float = 2.0) -> bool:
        """Ask the keeper to log what the container has written so far, and wait until it has
        (True), or ended, or did not answer in ``timeout`` seconds (a keeper from before ``sync``)."""
        self.sock.settimeout(timeout)
        try:
            self.sock.send(_SYNC)
            while True:
                msg = self.sock.recv(MAX_MESSAGE)
                if not msg or msg[:1] == _EXIT:
                    return False
                if msg == _SYNCED:
                    return True
        except OSError:  # a timeout too
            return False

    def peer_pid(self) -> int:
        """The keeper's pid (SO_PEERCRED)."""
        pid, _uid, _gid = struct.unpack("3i", self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return pid


def connect(directory: str) -> Link:
    """Connect to the keeper of the container whose run directory is ``directory`` (OSError if none)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        short_path(directory, ATTACH_SOCKET, sock.connect)
    except OSError:
        sock.close()
        raise
    return Link(sock)


def register_pending(directory: str) -> tuple[socket.socket, str]:
    """A client's socket in ``directory`` (a container's ``Paths.pending``) that the container's
    next keeper connects to before the container runs: that client sees all of its output and
    its exit code, however fast it ends. Listening, not yet accepted, and its path: the caller
    takes the keeper's connection with :func:`accept_pending` and removes the socket
    (:func:`unregister_pending`) when no keeper came."""
    os.makedirs(directory, 0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    name = f"{os.getpid()}-{os.urandom(4).hex()}.sock"
    short_path(directory, name, sock.bind)
    sock.listen(1)
    return sock, os.path.join(directory, name)


def accept_pending(sock: socket.socket) -> Link:
    """The keeper's connection to a socket of :func:`register_pending` (blocking)."""
    conn, _ = sock.accept()
    conn.setblocking(True)
    return Link(conn)


def unregister_pending(sock: socket.socket, path: str) -> None:
    sock.close()
    for remove in (os.unlink, os.rmdir):  # the directory too, when no other client waits there
        try:
            remove(path)
        except OSError:
            pass
        path = os.path.dirname(path)
