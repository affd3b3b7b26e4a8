"""Who is at the other end of an accepted connection: the uid of a Unix socket's peer
(``SO_PEERCRED``), and of a loopback TCP peer, read from the kernel's socket tables
(``/proc/net/tcp``, ``/proc/net/tcp6``) as this process's namespaces see them.

A loopback client's socket is a row of those tables whose local end is the address the
connection came from and whose remote end is ours; its ``uid`` column is the owner of the
client's socket (in this user namespace), its ``rx_queue`` what the client has not read yet
(``api.hijack``). ``None`` when it cannot be told: callers refuse then.
"""

from __future__ import annotations

import socket
import struct


def unix_peer_uid(conn: socket.socket) -> int | None:
    from rootless.base import forkconn
    _pid, uid = forkconn.peer(conn)
    return None if uid < 0 else uid


def _hex_address(family: int, host: str, port: int) -> str:
    """An address as the tables print it: the address's 32-bit words in host byte order, in hex,
    a colon, the port in hex (``0100007F:0016`` for 127.0.0.1:22 on a little-endian machine)."""
    packed = socket.inet_pton(family, host)
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _as_v4(host: str) -> str | None:
    """The IPv4 address of an IPv4-mapped IPv6 one (``::ffff:127.0.0.1``), else None."""
    if host.lower().startswith("::ffff:") and "." in host:
        return host[7:]
    return None


def table_row(text: str, local: str, remote: str) -> list[str] | None:
    """The fields of the row of a ``/proc/net/tcp*`` table whose local and remote addresses are
    these (already in the table's hex form), or None."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[1].upper() == local and fields[2].upper() == remote:
            return fields
    return None


def table_uid(text: str, local: str, remote: str) -> int | None:
    """The uid column of that row, or None."""
    fields = table_row(text, local, remote)
    try:
        return int(fields[7]) if fields else None
    except ValueError:
        return None


def tcp_peer_uid(conn: socket.socket, read=None) -> int | None:
    """The uid owning the client end of an accepted loopback TCP connection, or None (not
    found, not loopback, or the tables unreadable)."""
    fields = tcp_peer_row(conn, read)
    try:
        return int(fields[7]) if fields else None
    except ValueError:
        return None


def tcp_peer_row(conn: socket.socket, read=None) -> list[str] | None:
    """The fields of the client end's row of an accepted loopback TCP connection (its uid, its
    queues: ``tx_queue:rx_queue`` in hex is the fifth), or None when it is not found."""
    read = read or _read
    try:
        ours = conn.getsockname()
        theirs = conn.getpeername()
    except OSError:
        return None
    candidates = []  # (table, the client's end, our end)
    if conn.family == socket.AF_INET:
        candidates.append(("tcp", (socket.AF_INET, theirs[0], theirs[1]), (socket.AF_INET, ours[0], ours[1])))
    elif conn.family == socket.AF_INET6:
        candidates.append(("tcp6", (socket.AF_INET6, theirs[0], theirs[1]), (socket.AF_INET6, ours[0], ours[1])))
        v4_theirs, v4_ours = _as_v4(theirs[0]), _as_v4(ours[0])
        if v4_theirs and v4_ours:  # an IPv4 client of a dual-stack listener sits in the IPv4 table
            candidates.append(("tcp", (socket.AF_INET, v4_theirs, theirs[1]), (socket.AF_INET, v4_ours, ours[1])))
    else:
        return None
    for table, client, server in candidates:
        try:
            text = read(f"/proc/net/{table}")
            local, remote = _hex_address(*client), _hex_address(*server)
        except (OSError, ValueError):
            continue
        fields = table_row(text, local, remote)
        if fields is not None:
            return fields
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()
