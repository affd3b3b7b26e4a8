"""The server side of a WebSocket (RFC 6455), as Docker's ``/containers/{id}/attach/ws`` speaks it.

The handshake (``Sec-WebSocket-Accept`` from the client's key), then frames: the client's are
masked and may come in fragments, with pings and a close among them; ours are unmasked binary
(text before API 1.28, as Docker sends), one per write. ``WebSocket`` looks like the hijacked
socket that ``containers.relay`` drives (``fileno``, ``recv``, ``sendall``, ``shutdown``): ``recv``
gives the payload of the messages' frames that came whole, ``b""`` once the client closed, None
when only control frames (or a part of a frame) came. Nothing here knows about containers.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_FRAME = 16 << 20  # a client frame longer than this ends the connection (1009, message too big)


class ProtocolError(Exception):
    """A frame this server cannot take: answered with a close frame of ``code``."""

    def __init__(self, message: str, code: int = 1002):
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.strip().encode("latin-1") + GUID).digest()).decode()


def handshake_error(headers: dict[str, str]) -> str | None:
    """Why the request's headers are not a WebSocket opening handshake (None: they are one)."""
    if "websocket" not in headers.get("upgrade", "").lower():
        return "not a WebSocket request: the Upgrade header must be websocket"
    if "upgrade" not in headers.get("connection", "").lower():
        return "not a WebSocket request: the Connection header must name Upgrade"
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        return "invalid Sec-WebSocket-Key: it must be 16 bytes in base64"
    if headers.get("sec-websocket-version", "").strip() != "13":
        return "unsupported Sec-WebSocket-Version: only 13 is spoken"
    return None


def handshake_response(key: str) -> bytes:
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\nApi-Version: 1.41\r\nServer: rootless\r\n\r\n"
            ).encode("latin-1")


def accept(conn, req, opcode: int = BINARY) -> WebSocket:
    """Answer the handshake on ``conn`` (an ``http.Connection``): the connection is the WebSocket's."""
    conn.keep_alive = False
    conn.responded = True
    conn.sock.sendall(handshake_response(req.headers["sec-websocket-key"]))
    return WebSocket(conn.sock, conn.pending_input(), opcode)


def encode(opcode: int, payload: bytes = b"", fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame; ``mask`` (4 bytes) is a client's (the server's frames are never masked)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask:
        return head + mask + unmask(payload, mask)
    return head + payload


def unmask(data: bytes, mask: bytes) -> bytes:
    """The payload XORed with the 4-byte key (masking and unmasking are the same)."""
    if not data:
        return b""
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


def parse(buf: bytearray, need_mask: bool = True):
    """The first whole frame of ``buf`` as (fin, opcode, payload), removed from it; None when it
    holds only a part of one."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b0 & 0x70:
        raise ProtocolError("reserved bits set without an extension")
    fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
    if need_mask and not masked:
        raise ProtocolError("a client's frame must be masked")
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from(">H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from(">Q", buf, 2)[0], 10
    if opcode >= CLOSE and (n > 125 or not fin):
        raise ProtocolError("a control frame must be whole and at most 125 bytes")
    if n > MAX_FRAME:
        raise ProtocolError(f"frame of {n} bytes is too big", 1009)
    mask = bytes(buf[pos:pos + 4]) if masked else None
    pos += 4 if masked else 0
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    del buf[:pos + n]
    return fin, opcode, unmask(payload, mask) if mask else payload


class WebSocket:
    """A hijacked connection after the handshake, with the socket's calls that the attach relay
    makes: messages' payloads in, binary (or text) frames out."""

    def __init__(self, sock: socket.socket, early: bytes = b"", opcode: int = BINARY):
        self.sock = sock
        self.buf = bytearray(early)
        self.opcode = opcode
        self.fragmented: int | None = None  # the opcode of a message whose fragments are coming
        self.closed = False  # a close frame was sent: nothing more may be

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self):
        """What the bytes already here hold (the client's frames that came with its request)."""
        return self._frames()

    def recv(self, size: int = 65536):
        try:
            data = self.sock.recv(size)
        except OSError:
            data = b""
        if not data:
            self.closed = True  # the peer is gone: no close frame can reach it
            return b""
        self.buf += data
        return self._frames()

    def _frames(self):
        out = bytearray()
        got = False
        try:
            while (frame := parse(self.buf)) is not None:
                fin, opcode, payload = frame
                if opcode == CLOSE:
                    self._close(1000 if len(payload) < 2 else struct.unpack(">H", payload[:2])[0])
                    return bytes(out) if out else b""  # what came before the close, then the end
                if opcode == PING:
                    self._send(PONG, payload)
                    continue
                if opcode == PONG:
                    continue
                if opcode not in (CONT, TEXT, BINARY):
                    raise ProtocolError(f"unknown opcode {opcode:#x}")
                if (opcode == CONT) != (self.fragmented is not None):
                    raise ProtocolError("a continuation frame must follow a fragment, and only one")
                self.fragmented = None if fin else (self.fragmented or opcode)
                out += payload
                got = True
        except ProtocolError as e:
            self._close(e.code, str(e))
            return b""
        return bytes(out) if got and out else None

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.closed:
            raise BrokenPipeError("the WebSocket is closed")
        self.sock.sendall(encode(opcode, payload))

    def sendall(self, data: bytes) -> None:
        self._send(self.opcode, data)

    def _close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            if code in (1005, 1006, 1015):  # codes a close frame must not carry
                code = 1000
            try:
                self._send(CLOSE, struct.pack(">H", code) + reason.encode()[:120])
            except OSError:
                pass
            self.closed = True

    def shutdown(self, how: int = socket.SHUT_WR) -> None:
        """The end: a close frame (normal closure), then the socket's own shutdown."""
        self._close(1000)
        try:
            self.sock.shutdown(how)
        except OSError:  # the peer is gone already
            pass
