"""Parent <-> child messages over a SOCK_SEQPACKET socket pair: typed JSON, optional fds.

A failure on the child side travels back as ``{"type": "error", ...}`` and is
raised on the parent side as the RootlessError it was.
"""

from __future__ import annotations

import array
import json
import socket

from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

_MAX = 65536


def received_fds(ancdata: list) -> list[int]:
    """The descriptors an ``SCM_RIGHTS`` message of ``recvmsg``'s ancillary data carried."""
    fds = array.array("i")
    for level, typ, cdata in ancdata:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    return list(fds)


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, type_: str, fds: list[int] | None = None, **fields: Any) -> None:
        data = json.dumps({"type": type_, **fields}).encode()
        if fds:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.sock.send(data)

    def send_error(self, exc: BaseException, step: str = "") -> None:
        if isinstance(exc, RootlessError):
            msg, hint, code = exc.message, exc.hint, exc.exit_code
        elif isinstance(exc, OSError):
            from rootless.base.errors import from_oserror
            err = from_oserror(step or "container setup", exc)
            msg, hint, code = err.message, err.hint, err.exit_code
        else:
            msg, hint, code = f"{step or 'container setup'}: {exc!r}", None, 125
        from rootless.base.errors import is_no_space
        extra: dict[str, Any] = {"no_space": True} if is_no_space(exc) else {}  # the CLI names the store for it
        try:
            self.send("error", message=msg, hint=hint, exit_code=code, **extra)
        except OSError:
            pass

    def recv(self) -> tuple[dict | None, list[int]]:
        """The next message and any fds it carried; (None, []) at EOF, and when the peer has gone
        with messages of ours unread (the kernel's reset: a CLI killed while its keeper spoke)."""
        fds = array.array("i")
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(_MAX, socket.CMSG_SPACE(16 * fds.itemsize))
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            except ConnectionResetError:
                return None, []
        received = received_fds(ancdata)
        if not data:
            return None, received
        return json.loads(data), received

    def expect(self, type_: str) -> dict:
        """Receive a message of ``type_``; an error message or EOF raises."""
        msg, _ = self.recv()
        if msg is None:
            raise RootlessError(f"container setup ended before {type_!r}", "run with --debug for details")
        if msg["type"] == "error":
            raise error_of(msg)
        if msg["type"] != type_:
            raise RootlessError(f"container setup: expected {type_!r}, got {msg['type']!r}")
        return msg

    def close(self) -> None:
        self.sock.close()


def error_of(msg: dict) -> RootlessError:
    """The exception an ``error`` message stands for."""
    from rootless.base.errors import NoSpace
    cls = NoSpace if msg.get("no_space") else RootlessError
    return cls(msg["message"], msg.get("hint"), msg.get("exit_code"))
