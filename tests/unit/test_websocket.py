"""The WebSocket framing of ``attach/ws`` (RFC 6455): the handshake's key, masking, fragments,
pings and the close, over a socket pair."""

from __future__ import annotations

import socket
import struct

import pytest

from rootless.api import websocket as ws

MASK = b"\x37\xfa\x21\x3d"


def test_accept_key_is_the_rfcs_example():
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455, 1.3


@pytest.mark.parametrize("headers,why", [
    ({"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13"}, None),
    ({"connection": "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13"},
     "Upgrade"),
    ({"upgrade": "websocket", "connection": "keep-alive", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13"}, "Connection"),
    ({"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-key": "short",
      "sec-websocket-version": "13"}, "Sec-WebSocket-Key"),
    ({"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "8"}, "Version"),
])
def test_handshake_checks(headers, why):
    got = ws.handshake_error(headers)
    assert got is None if why is None else why in got


def test_handshake_response_names_the_accept():
    head = ws.handshake_response("dGhlIHNhbXBsZSBub25jZQ==").decode()
    assert head.startswith("HTTP/1.1 101 ") and head.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head and "Upgrade: websocket\r\n" in head


def test_masking_is_the_rfcs_example():
    # RFC 6455 5.7: a masked "Hello"
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert ws.encode(ws.TEXT, b"Hello", mask=MASK) == frame
    buf = bytearray(frame)
    assert ws.parse(buf) == (True, ws.TEXT, b"Hello") and not buf
    assert ws.unmask(ws.unmask(b"any payload at all", MASK), MASK) == b"any payload at all"


@pytest.mark.parametrize("size,header", [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_lengths_and_partial_frames(size, header):
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    frame = ws.encode(ws.BINARY, payload, mask=MASK)
    assert len(frame) == header + 4 + size
    for cut in (1, header - 1, header + 3, len(frame) - 1):  # a part of a frame is not a frame yet
        assert ws.parse(bytearray(frame[:cut])) is None
    buf = bytearray(frame + b"next")
    assert ws.parse(buf) == (True, ws.BINARY, payload) and buf == b"next"
    assert ws.encode(ws.BINARY, payload)[:header][1] & 0x80 == 0  # the server's are not masked


def test_unmasked_client_frames_and_bad_control_frames_are_refused():
    with pytest.raises(ws.ProtocolError, match="masked"):
        ws.parse(bytearray(ws.encode(ws.TEXT, b"x")))
    with pytest.raises(ws.ProtocolError, match="control"):
        ws.parse(bytearray(ws.encode(ws.PING, b"x" * 126, mask=MASK)))
    with pytest.raises(ws.ProtocolError, match="reserved"):
        ws.parse(bytearray(b"\xc1\x80" + MASK))


def _frames(data: bytes) -> list[tuple[bool, int, bytes]]:
    buf, out = bytearray(data), []
    while (f := ws.parse(buf, need_mask=False)) is not None:
        out.append(f)
    assert not buf
    return out


def _pair():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return ws.WebSocket(a), b


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(0.2)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def test_fragmented_message_with_a_ping_between():
    server, client = _pair()
    client.sendall(ws.encode(ws.TEXT, b"hel", fin=False, mask=MASK))
    assert server.recv() == b"hel"  # a message's first fragment: its bytes go on at once
    client.sendall(ws.encode(ws.PING, b"are you there", mask=MASK) + ws.encode(ws.CONT, b"lo", mask=MASK)[:3])
    assert server.recv() is None  # a ping and a part of a frame: nothing for the input
    client.sendall(ws.encode(ws.CONT, b"lo", mask=MASK)[3:])
    assert server.recv() == b"lo"
    assert _frames(_read_all(client)) == [(True, ws.PONG, b"are you there")]


def test_binary_out_and_the_close_both_ways():
    server, client = _pair()
    server.sendall(b"output")
    client.sendall(ws.encode(ws.BINARY, b"input", mask=MASK) + ws.encode(ws.CLOSE, struct.pack(">H", 1000), mask=MASK))
    assert server.recv() == b"input"  # what came before the close
    got = _frames(_read_all(client))
    assert got == [(True, ws.BINARY, b"output"), (True, ws.CLOSE, struct.pack(">H", 1000))]
    with pytest.raises(OSError):  # nothing after a close
        server.sendall(b"late")


def test_the_servers_end_is_a_close_frame():
    server, client = _pair()
    text = ws.WebSocket(server.sock, opcode=ws.TEXT)
    text.sendall(b"old API")
    text.shutdown()
    assert _frames(_read_all(client)) == [(True, ws.TEXT, b"old API"), (True, ws.CLOSE, struct.pack(">H", 1000))]


def test_a_protocol_error_closes_with_its_code():
    server, client = _pair()
    client.sendall(ws.encode(ws.TEXT, b"unmasked"))
    assert server.recv() == b""  # the end of the input
    assert _frames(_read_all(client))[0][1:] == (ws.CLOSE, struct.pack(">H", 1002) + b"a client's frame must be masked")
