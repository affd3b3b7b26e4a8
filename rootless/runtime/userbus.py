"""The user's systemd manager over D-Bus, spoken directly (no ``busctl`` to start): a container's
transient scope costs one round trip on the user bus, not a helper process.

Only what :mod:`rootless.runtime.cgroups` needs: :class:`ScopeRequest` sends ``Hello`` and
``StartTransientUnit(NAME, "fail", [PIDs, Delegate, CollectMode], [])`` in one write right after
the keeper is forked (the authentication pipelined, as sd-bus does) and reads the answer later,
so the manager works while the CLI writes the id maps; :func:`attach` puts an ``exec``'s process
in the container's ``ctr`` (``AttachProcessesToUnit``). The wire format is the D-Bus
specification's (little-endian messages, ``AUTH EXTERNAL`` with this uid).
"""

from __future__ import annotations

import os
import struct

SYSTEMD = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
METHOD_CALL, METHOD_RETURN, ERROR = 1, 2, 3


class _Out:
    """A D-Bus marshaller (little-endian); offsets count from the message's start (or its body's,
    which begins 8-aligned)."""

    def __init__(self) -> None:
        self.b = bytearray()

    def align(self, n: int) -> None:
        self.b += b"\0" * (-len(self.b) % n)

    def byte(self, v: int) -> None:
        self.b.append(v)

    def u32(self, v: int) -> None:
        self.align(4)
        self.b += struct.pack("<I", v)

    def string(self, s: str) -> None:  # also an object path
        data = s.encode()
        self.u32(len(data))
        self.b += data + b"\0"

    def signature(self, s: str) -> None:
        data = s.encode()
        self.b.append(len(data))
        self.b += data + b"\0"

    def array(self, element_align: int, fill) -> None:
        self.u32(0)
        at = len(self.b) - 4
        self.align(element_align)
        start = len(self.b)
        fill()
        struct.pack_into("<I", self.b, at, len(self.b) - start)


def message(serial: int, target: tuple[str, str, str], member: str, signature: str = "", body: bytes = b"") -> bytes:
    """A method call to ``target`` (destination, path, interface)."""
    dest, path, iface = target
    h = _Out()
    h.b += b"l"
    h.byte(METHOD_CALL)
    h.byte(0)
    h.byte(1)
    h.u32(len(body))
    h.u32(serial)

    def fields() -> None:
        for code, sig, value in ((1, "o", path), (2, "s", iface), (3, "s", member), (6, "s", dest),
                                 (8, "g", signature)):
            if not value:
                continue
            h.align(8)
            h.byte(code)
            h.signature(sig)
            if sig == "g":
                h.signature(value)
            else:
                h.string(value)
    h.array(8, fields)
    h.align(8)
    return bytes(h.b) + body


def start_transient_scope_body(name: str, pid: int) -> bytes:
    """``StartTransientUnit``'s arguments (``ssa(sv)a(sa(sv))``): a scope holding ``pid``,
    delegated to the user, collected once it is empty or failed."""
    b = _Out()
    b.string(name)
    b.string("fail")

    def props() -> None:
        b.align(8)
        b.string("PIDs")
        b.signature("au")
        b.array(4, lambda: b.u32(pid))
        b.align(8)
        b.string("Delegate")
        b.signature("b")
        b.u32(1)
        b.align(8)
        b.string("CollectMode")
        b.signature("s")
        b.string("inactive-or-failed")
    b.array(8, props)
    b.array(8, lambda: None)
    return bytes(b.b)


def reply_of(buf: bytes, serial: int) -> tuple[int | None, int]:
    """The type of the reply to ``serial`` among the whole messages at the start of ``buf``
    (None: not there yet) and how many bytes the messages looked at take."""
    at = 0
    while len(buf) - at >= 16:
        order = "<" if buf[at:at + 1] == b"l" else ">"
        kind = buf[at + 1]
        body_len, _serial, fields_len = struct.unpack_from(order + "III", buf, at + 4)
        end_fields = at + 16 + fields_len
        total = end_fields + (-(end_fields - at) % 8) + body_len
        if len(buf) < total:
            break
        i = at + 16
        while i < end_fields:
            i += -(i - at) % 8
            code, siglen = buf[i], buf[i + 1]
            sig = buf[i + 2:i + 2 + siglen]
            i += 3 + siglen
            if sig == b"g":
                i += 2 + buf[i]
            elif len(sig) == 1 and sig in b"so":  # a string or an object path
                i += -(i - at) % 4
                (n,) = struct.unpack_from(order + "I", buf, i)
                i += 5 + n
            else:  # u
                i += -(i - at) % 4
                (value,) = struct.unpack_from(order + "I", buf, i)
                i += 4
                if code == 5 and value == serial and kind in (METHOD_RETURN, ERROR):
                    return kind, total
        at = total
    return None, at


def attach_body(unit: str, subcgroup: str, pid: int) -> bytes:
    """``AttachProcessesToUnit``'s arguments (``ssau``)."""
    b = _Out()
    b.string(unit)
    b.string(subcgroup)
    b.array(4, lambda: b.u32(pid))
    return bytes(b.b)


class Call:
    """A method call of systemd's manager on the user bus at ``bus_path``, sent at once
    (:meth:`answer` reads the result). Any failure (no bus, refused authentication) makes
    :attr:`sock` None."""

    CALL = 2

    def __init__(self, bus_path: str, member: str, signature: str, body: bytes):
        import socket
        self.sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(10)
            self.sock.connect(bus_path)
            auth = b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\nBEGIN\r\n"
            self.sock.sendall(auth + message(1, DBUS, "Hello") + message(self.CALL, SYSTEMD, member, signature, body))
        except OSError:
            self.close()

    def answer(self) -> bool:
        """Whether systemd answered the call without an error."""
        if self.sock is None:
            return False
        try:
            buf = b""
            while b"\r\n" not in buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            line, _, buf = buf.partition(b"\r\n")
            if not line.startswith(b"OK"):
                return False
            while True:
                kind, _used = reply_of(buf, self.CALL)
                if kind is not None:
                    return kind == METHOD_RETURN
                chunk = self.sock.recv(65536)
                if not chunk:
                    return False
                buf += chunk
        except (OSError, IndexError, struct.error):
            return False
        finally:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class ScopeRequest(Call):
    """``StartTransientUnit`` of scope ``name`` for ``pid`` (answered once its start job is queued)."""

    def __init__(self, bus_path: str, name: str, pid: int):
        super().__init__(bus_path, "StartTransientUnit", "ssa(sv)a(sa(sv))", start_transient_scope_body(name, pid))


def attach(bus_path: str, unit: str, subcgroup: str, pid: int) -> bool:
    """``AttachProcessesToUnit``: ``pid`` into ``subcgroup`` of ``unit``; whether it was done."""
    return Call(bus_path, "AttachProcessesToUnit", "ssau", attach_body(unit, subcgroup, pid)).answer()


def path_of(address: str) -> str | None:
    """The socket path of a bus address ``unix:path=...`` (None: another kind)."""
    return address[len("unix:path="):].split(",")[0] if address.startswith("unix:path=") else None
