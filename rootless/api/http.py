"""HTTP/1.1 as the Docker Engine API speaks it, over one accepted connection.

Requests: a request line, headers, and a body by Content-Length or chunked (the docker CLI
sends a build context or an image tar chunked). Responses: JSON, empty, streamed (chunked,
so the connection stays usable), and hijacked (``101 UPGRADED``: the connection becomes a
raw byte stream both ways, for attach and exec). Nothing here knows about containers.
"""

from __future__ import annotations

import json
import select
import socket
import time
from urllib.parse import parse_qs, unquote, urlsplit

TYPE_CHECKING = False  # annotations only: typing is not loaded for them
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Protocol

    class Hijacked(Protocol):
        """A hijacked client connection as the attach and exec relays use it: the socket
        (``hijack.AfterHead``'s, whose first send awaits the client's read of the head), or a
        ``websocket.WebSocket`` over it (whose ``recv`` gives None for a frame that holds
        nothing for the input)."""

        def fileno(self) -> int: ...

        def recv(self, size: int, /) -> bytes | None: ...

        def sendall(self, data: bytes, /) -> None: ...

        def shutdown(self, how: int, /) -> None: ...

MAX_HEADER = 64 * 1024
REASONS = {200: "OK", 201: "Created", 204: "No Content", 101: "UPGRADED", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           413: "Payload Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}


class BadRequest(Exception):
    """A request this server cannot read: answered 400, then the connection is closed."""

    http_status = 400


class Idle(Exception):
    """The client sent nothing for the idle time while a request was awaited (or its headers
    did not come whole within it): the connection is closed unanswered."""


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str], conn: Connection):
        self.method = method
        parts = urlsplit(target)
        self.path = unquote(parts.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers
        self.conn = conn
        self._body: bytes | None = None
        self._reading: Iterator[bytes] | None = None  # the body's reader, once begun
        self._length = conn.content_length

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A query parameter; repeated, its first value counts, as in Docker's Go server (docker-py
        sends ``dockerfile`` twice in some builds)."""
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as Docker reads one: 1, true, True (absent: ``default``)."""
        value = self.arg(name)
        if value is None or value == "":
            return default
        return value.lower() in ("1", "true", "yes")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"invalid value for {name}: {value!r}") from None

    def json_arg(self, name: str) -> dict:
        value = self.arg(name)
        if not value:
            return {}
        try:
            out = json.loads(value)
        except ValueError:
            raise BadRequest(f"invalid JSON in {name}") from None
        if out is None:
            return {}
        if not isinstance(out, dict):
            raise BadRequest(f"{name} must be a JSON object")
        return out

    def filters(self) -> list[str]:
        """Docker's ``filters`` parameter (``{"key": ["v", ...]}``, or the older ``{"key": {"v":
        true}}``) as the CLI's ``KEY=VALUE`` strings."""
        out = []
        for key, values in self.json_arg("filters").items():
            if isinstance(values, dict):
                values = [v for v, on in values.items() if on]
            for v in values if isinstance(values, list) else [values]:
                out.append(f"{key}={v}")
        return out

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def body_chunks(self):
        """The body, piece by piece (for large uploads: build contexts, image tars); what a
        handler left unread when it failed is what ``drain`` reads. A body that cannot be read
        ends the connection (where the next request would begin is unknown)."""
        if self._body is not None:
            yield self._body
            return
        if self._reading is None:
            self._reading = self.conn.read_chunked() if self.chunked else self._read_sized()
        reading = self._reading
        while True:  # not ``yield from``: a handler that stops early must not close the reader
            try:
                data = next(reading)
            except StopIteration:
                return
            except BadRequest:
                self.conn.keep_alive = False
                raise
            yield data

    def _read_sized(self) -> Iterator[bytes]:
        length = self._length
        while length > 0:
            data = self.conn.rfile.read(min(length, 1 << 20))
            if not data:
                raise BadRequest("the body ended early")
            length -= len(data)
            yield data

    def body(self) -> bytes:
        if self._body is None:
            data = b"".join(self.body_chunks())
            self._body = data
        return self._body

    def json(self) -> dict:
        data = self.body()
        if not data.strip():
            return {}
        try:
            out = json.loads(data)
        except ValueError as e:
            raise BadRequest(f"invalid JSON body: {e}") from None
        if not isinstance(out, dict):
            raise BadRequest("the body must be a JSON object")
        return out

    def drain(self) -> None:
        """Read what is left of the body, so that the next request starts in the right place."""
        for _ in self.body_chunks():
            pass

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()


class Reader:
    """Buffered reads from a socket whose buffer can be handed over (a hijacked stream's first
    bytes may already be here)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.deadline: float | None = None  # while set, a read that waits past it raises Idle

    def _fill(self) -> bool:
        if self.deadline is not None:
            self.wait(self.deadline - time.monotonic())
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def wait(self, seconds: float) -> None:
        """Return once something is buffered or readable (or the peer closed); Idle if nothing
        comes within ``seconds``."""
        if self.buf:
            return
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLPRI)
        end = time.monotonic() + max(0.0, seconds)
        while True:
            try:
                if poller.poll(max(0, int((end - time.monotonic()) * 1000))):
                    return
            except InterruptedError:
                continue
            if time.monotonic() >= end:
                raise Idle()

    def readline(self, limit: int) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0 or len(self.buf) >= limit:
                n = i + 1 if i >= 0 else limit
                out = bytes(self.buf[:n])
                del self.buf[:n]
                return out
            if not self._fill():
                out = bytes(self.buf)
                self.buf.clear()
                return out

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the stream)."""
        if not self.buf and n >= 65536:
            return self.sock.recv(n)
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


class Connection:
    """One client connection: read requests, write responses."""

    def __init__(self, sock: socket.socket, idle: float | None = None):
        self.sock = sock
        self.rfile = Reader(sock)
        self.keep_alive = True
        self.responded = False  # this request's answer has begun (a stream cannot become an error)
        self.idle = idle  # seconds a request may be awaited, and then its headers take (None: no limit)
        self.content_length = 0

    def read_request(self) -> Request | None:
        """The next request, or None when the client closed the connection; Idle when it sent
        nothing for the idle time, or did not finish the headers within it after that."""
        if self.idle is not None:
            self.rfile.wait(self.idle)
            self.rfile.deadline = time.monotonic() + self.idle
        try:
            return self._read_head()
        finally:
            self.rfile.deadline = None  # a body, a stream or a hijacked connection is not idle

    def _read_head(self) -> Request | None:
        line = self.rfile.readline(MAX_HEADER)
        while line in (b"\r\n", b"\n"):  # stray blank lines between requests are allowed
            line = self.rfile.readline(MAX_HEADER)
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise BadRequest("request line too long" if len(line) >= MAX_HEADER else "the request ended early")
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            raise BadRequest("malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise BadRequest(f"unsupported protocol {version!r}")
        headers: dict[str, str] = {}
        size = len(line)
        while True:
            h = self.rfile.readline(MAX_HEADER)
            size += len(h)
            if size > MAX_HEADER:
                raise BadRequest("headers too large")
            if h in (b"\r\n", b"\n"):
                break
            if not h.endswith(b"\n"):
                raise BadRequest("the headers ended early")
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep or not name.strip():
                raise BadRequest("malformed header")
            headers[name.strip().lower()] = value.strip()
        self.responded = False
        if version == "HTTP/1.0" or headers.get("connection", "").lower() == "close":
            self.keep_alive = False
        length = headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            raise BadRequest(f"invalid Content-Length {length!r}")
        self.content_length = int(length or 0)
        try:
            return Request(method.upper(), target, headers, self)
        except ValueError as e:  # a target urlsplit cannot read
            raise BadRequest(f"malformed request target: {e}") from None

    def read_chunked(self) -> Iterator[bytes]:
        while True:
            size_line = self.rfile.readline(1024)
            digits = size_line.split(b";")[0].strip()
            if not size_line.endswith(b"\n") or not digits or len(digits) > 16 or \
                    digits.strip(b"0123456789abcdefABCDEF"):
                raise BadRequest("malformed chunk size")
            size = int(digits, 16)
            if size == 0:
                trailers = 0
                while True:
                    line = self.rfile.readline(MAX_HEADER)
                    trailers += len(line)
                    if line in (b"\r\n", b"\n"):
                        return
                    if not line.endswith(b"\n") or trailers > MAX_HEADER:
                        raise BadRequest("malformed chunk trailer")
            left = size
            while left:
                data = self.rfile.read(min(left, 1 << 20))
                if not data:
                    raise BadRequest("the body ended early")
                left -= len(data)
                yield data
            if self.rfile.readline(16) not in (b"\r\n", b"\n"):
                raise BadRequest("malformed chunk: no line end after its data")

    # ---- responses
    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                 "Api-Version: 1.41", "Docker-Experimental: false", "Ostype: linux", "Server: rootless"]
        lines += [f"{k}: {v}" for k, v in headers]
        if not self.keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, status: int, body: bytes = b"", content_type: str | None = "application/json",
             headers: Sequence[tuple[str, str]] = ()) -> None:
        self.responded = True
        hs = list(headers)
        if content_type and (body or status not in (204, 304)):
            hs.append(("Content-Type", content_type))
        if status not in (204, 304):
            hs.append(("Content-Length", str(len(body))))
        self.sock.sendall(self._head(status, hs) + (body if status not in (204, 304) else b""))

    def send_json(self, status: int, obj) -> None:
        self.send(status, json.dumps(obj).encode() + b"\n")

    def start_stream(self, status: int = 200, content_type: str = "application/json",
                     headers: Sequence[tuple[str, str]] = ()) -> Stream:
        self.responded = True
        self.sock.sendall(self._head(status, [("Content-Type", content_type), ("Transfer-Encoding", "chunked"),
                                              *headers]))
        return Stream(self.sock)

    def hijack(self, req: Request, content_type: str = "application/vnd.docker.raw-stream") -> socket.socket:
        """The connection as a raw stream (``101 UPGRADED`` when the client asked to upgrade,
        else a 200 whose body runs until the connection closes)."""
        self.keep_alive = False
        self.responded = True
        if req.wants_upgrade:
            head = ("HTTP/1.1 101 UPGRADED\r\n"
                    f"Content-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                    "Api-Version: 1.41\r\nServer: rootless\r\n\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nApi-Version: 1.41\r\nServer: rootless\r\n\r\n"
        self.sock.sendall(head.encode("latin-1"))
        return self.sock

    def pending_input(self) -> bytes:
        """What the client sent after a hijacked request that the reader already buffered."""
        return self.rfile.take()


class Stream:
    """A chunked response body, written as it is made."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.open = True

    def write(self, data: bytes) -> None:
        if data:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def write_json(self, obj) -> None:
        self.write(json.dumps(obj).encode() + b"\n")

    def end(self) -> None:
        if self.open:
            self.open = False
            self.sock.sendall(b"0\r\n\r\n")


def _fits(value, shape) -> bool:
    if shape in ("strs", "dicts"):
        return isinstance(value, list) and all(isinstance(x, str if shape == "strs" else dict) for x in value)
    if shape == "map":
        return isinstance(value, dict) and all(isinstance(x, str) for x in value.values())
    if shape == "cmd":
        return isinstance(value, str) or _fits(value, "strs")
    if shape is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, shape)


def check_types(obj: dict, shapes: dict, where: str = "") -> None:
    """Refuse (400) a field of ``obj`` whose JSON type is not its shape's, as Docker's decoder
    does: a type, or "strs"/"dicts" (lists of them), "map" (an object of strings), "cmd"
    (a string or strings); ``int`` excludes booleans."""
    for key, shape in shapes.items():
        value = obj.get(key)
        if value is not None and not _fits(value, shape):
            raise BadRequest(f"invalid JSON: {where}{key} has the wrong type ({type(value).__name__})")


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode() + b"\n"
