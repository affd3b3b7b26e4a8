"""Published ports: bound on the host before the container starts.

Two forwarders sit behind one small interface: the built-in relay (``netstack.relay``), which
keeps the sockets bound here and moves bytes into the container's namespace, and slirp4netns's
own ``add_hostfwd``, for which the port is only checked here and then handed to slirp4netns.
Either way a port in use or a privileged port is a one-line error before anything runs.
"""

from __future__ import annotations

import errno
import socket
from collections import namedtuple

from netstack.spec import PortMapping
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence

# A published port once bound: where (host) and to what (container); ``sock`` for the relay.
Bound = namedtuple("Bound", "host_ip host_port container_port proto sock")


def unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024


def _error(m: PortMapping, host_ip: str, port: int, e: OSError) -> RootlessError:
    what = f"cannot publish port {m.container_port}/{m.proto} on {host_ip or '0.0.0.0'}:{port or 'any'}"
    if e.errno == errno.EADDRINUSE:
        return RootlessError(f"{what}: the host port is already in use",
                             f"choose another host port (-p OTHER:{m.container_port}) or stop what uses {port}")
    if e.errno == errno.EACCES:
        start = unprivileged_port_start()
        return RootlessError(f"{what}: ports below {start} are privileged "
                             f"(net.ipv4.ip_unprivileged_port_start={start})",
                             f"use a host port of {start} or more (-p {max(start, 8080)}:{m.container_port}), or "
                             f"as root: sysctl -w net.ipv4.ip_unprivileged_port_start={port}")
    if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return RootlessError(f"{what}: this host has no address {host_ip}", "publish on an address the host has")
    return RootlessError(f"{what}: {e.strerror}")


def _socket(host_ip: str, proto: str) -> tuple[socket.socket, str]:
    """A socket for ``host_ip`` ('' = every address: dual-stack where the host has IPv6)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    if host_ip == "":
        try:
            s = socket.socket(socket.AF_INET6, kind)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            return s, "::"
        except OSError:
            return socket.socket(socket.AF_INET, kind), "0.0.0.0"
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    s = socket.socket(family, kind)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return s, host_ip


def _bind_one(m: PortMapping, port: int) -> socket.socket:
    s, addr = _socket(m.host_ip, m.proto)
    try:
        if m.proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError as e:
            if addr == "::" and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                s.close()  # IPv6 is off on this host: IPv4 only
                s = socket.socket(socket.AF_INET, s.type)
                if m.proto == "tcp":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
            else:
                raise
        if m.proto == "tcp":
            s.listen(128)
        s.setblocking(False)
        return s
    except BaseException:
        s.close()
        raise


def bind(mappings, keep: bool = True) -> list[Bound]:
    """Bind every mapping (a host range: its first free port). ``keep``: the sockets stay open for
    the relay; else they are closed at once (slirp4netns binds the port itself). All or nothing."""
    out: list[Bound] = []
    try:
        for m in mappings:
            out.append(_bind_mapping(m))
    except BaseException:
        for b in out:
            b.sock.close()
        raise
    if not keep:
        for b in out:
            b.sock.close()
        out = [b._replace(sock=None) for b in out]
    return out


def _bind_mapping(m: PortMapping) -> Bound:
    ports = range(m.host_port, m.host_end + 1) if m.host_port else (0,)
    last = None
    for port in ports:
        try:
            s = _bind_one(m, port)
        except OSError as e:
            last = e
            if e.errno == errno.EADDRINUSE and len(ports) > 1:
                continue
            raise _error(m, m.host_ip, port, e) from None
        return Bound(m.host_ip or "0.0.0.0", s.getsockname()[1], m.container_port, m.proto, s)
    raise _error(m, m.host_ip, m.host_port, last) from None


def records(bound: Sequence[Bound]) -> list[dict]:
    """The bindings as the container's state keeps them (``port``, ``ps``, ``inspect``)."""
    return [{"host_ip": b.host_ip, "host_port": b.host_port, "container_port": b.container_port, "proto": b.proto}
            for b in bound]
