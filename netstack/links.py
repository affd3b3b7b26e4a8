"""Legacy ``--link``: names, addresses and environment, and the namespace their listeners live in.

A linking container gets a second, private network namespace (the *link namespace*) joined
to its own by a veth pair: ``links0`` with 10.0.3.254/24 on the container's side, and on the
other side one address per link, 10.0.3.2, 10.0.3.3, ... The link's sockets live there, so
they never take a port from the container's own programs. Each TCP client they accept (each
UDP client's flow) is sent through the linked container's door (see ``netstack.relay``), which
joins it to the port inside that container. A fellow member's link listens on its exposed ports
and on every port its programs listen on, followed while the link lives (``netstack.linkports``).
No bridge, no NAT, nothing on the host's network. A member of a
user-defined network gets the namespace even with no link at its start: its DNS server
(``netstack.dns``) adds links there (``add``) for members that start later.
"""

from __future__ import annotations

import os
import socket

from rootless.base.valuetype import KeywordRecord, record

SUBNET_PREFIX = "10.0.3."
NETMASK = "255.255.255.0"
CONTAINER_SIDE = "10.0.3.254"
IFNAME = "links0"
MAX_LINKS = 252  # 10.0.3.2 to 10.0.3.253 (10.0.3.254 is the container's side)


@record
class LinkPlan(KeywordRecord):
    """One link as the keeper needs it."""
    address: str  # here
    alias: str
    name: str  # the linked container's name and id
    cid: str
    door_dir: str  # its runtime directory (its door)
    ports: tuple[str, ...]  # its exposed ports ("80/tcp")
    env: tuple[str, ...]  # its environment
    aliases: tuple[str, ...] = ()  # more names for it (its aliases on a user-defined network)
    # a ``--link`` (Docker's link variables), not a fellow member of a user-defined network (names only)
    legacy: bool = True
    # a fellow member's keeper: the ports it listens on are reached too (``netstack.linkports``); 0: exposed ports only
    keeper: int = 0


def address(index: int) -> str:
    return f"{SUBNET_PREFIX}{index + 2}"


def _port_key(p: str) -> tuple[int, int]:
    num, _, proto = p.partition("/")
    return int(num), 0 if proto == "tcp" else 1


def link_env(linking_name: str, link: LinkPlan) -> list[str]:
    """The variables Docker sets for a link (its ``links.Link.ToEnv``), in Docker's order."""
    alias = link.alias.upper().replace("-", "_")
    ip = link.address
    env = []
    ports = sorted(link.ports, key=_port_key)
    start = end = None
    for i, p in enumerate(ports):
        num, proto = int(p.split("/")[0]), p.split("/")[1]
        if i == 0:
            start = end = (num, proto)
            env.append(f"{alias}_PORT={proto}://{ip}:{num}")
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        env += [f"{prefix}={proto}://{ip}:{num}", f"{prefix}_ADDR={ip}", f"{prefix}_PORT={num}",
                f"{prefix}_PROTO={proto}"]
        if num == end[0] + 1 and proto == start[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{prefix}_START={start[1]}://{ip}:{start[0]}", f"{prefix}_PORT_START={start[0]}",
                    f"{prefix}_END={end[1]}://{ip}:{end[0]}", f"{prefix}_PORT_END={end[0]}"]
        start = end = (num, proto)
    env.append(f"{alias}_NAME=/{linking_name}/{link.alias}")
    for item in link.env:
        key, eq, value = item.partition("=")
        if eq and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env


def hosts_entries(links) -> list[tuple[str, str]]:
    """``/etc/hosts`` lines as Docker writes them: address, then alias, short id and name (and a
    network member's aliases)."""
    out = []
    for link in links:
        names = [link.alias, link.cid[:12], link.name, *link.aliases]
        out.append((link.address, " ".join(dict.fromkeys(names))))
    return out


def setup(links, hold: list[int] | None = None) -> list[tuple[socket.socket, str, int, str]]:
    """Build the link namespace beside the current one and listen there on every linked port:
    ``(socket, linked door directory, port, proto)`` for the relay. Returns in the container's
    namespace. ``hold`` gets a descriptor of the link namespace, which keeps it (and so the
    linked addresses, which answer ping) alive while the caller keeps it open, even when no
    linked container exposes a port (no listener then holds the namespace)."""
    from netstack import netlink
    from rootless.base import syscalls
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    nl = netlink.route_socket()
    ctl_own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        syscalls.unshare(syscalls.CLONE_NEWNET)  # now in the link namespace
        try:
            other = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                netlink.set_up(ctl, "lo")
                netlink.create_veth(nl, IFNAME, IFNAME, other)
                netlink.set_address(ctl_own, IFNAME, CONTAINER_SIDE, NETMASK)
                netlink.set_up(ctl_own, IFNAME)
                for i, _link in enumerate(links):
                    label = IFNAME if i == 0 else f"{IFNAME}:{i}"
                    netlink.set_address(ctl, label, address(i), NETMASK)
                netlink.set_up(ctl, IFNAME)
                listeners = []
                for link in links:
                    listeners += [(s, link.door_dir, port, proto)
                                  for s, port, proto in _listen(link.address, link.ports + _listened(link))]
            finally:
                ctl.close()
                if hold is None:
                    os.close(other)
                else:
                    hold.append(other)
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNET)
    finally:
        os.close(own)
        nl.close()
        ctl_own.close()
    return listeners


def _listened(link: LinkPlan) -> tuple[str, ...]:
    """The ports a fellow member listens on now beyond its exposed ones ("3000/tcp")."""
    from netstack import linkports
    fd = linkports.open_proc(link.keeper)
    if fd is None:
        return ()
    try:
        found = linkports.listening(fd)
    except OSError:
        return ()
    finally:
        os.close(fd)
    fixed = set(link.ports)
    return tuple(p for p in (f"{n}/{proto}" for n, proto in sorted(found)) if p not in fixed)


def _listen(addr: str, ports) -> list[tuple[socket.socket, int, str]]:
    out = []
    try:
        for p in ports:
            num, _, proto = p.partition("/")
            tcp = proto == "tcp"
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
            out.append((s, int(num), proto))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, int(num)))
            if tcp:
                s.listen(128)
            s.setblocking(False)
    except OSError:
        for s, _n, _p in out:
            s.close()
        raise
    return out


def listen_in(ns_fd: int, addr: str, ports) -> list[tuple[socket.socket, int, str]]:
    """Listeners on ``addr`` in the link namespace ``ns_fd`` for more ``ports`` ("3000/tcp"),
    ``(socket, port, proto)``; a port that cannot be bound is left out. Returns in the caller's
    namespace."""
    from rootless.base import syscalls
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(ns_fd, syscalls.CLONE_NEWNET)
        try:
            out = []
            for p in ports:
                try:
                    out += _listen(addr, (p,))
                except OSError:
                    pass
            return out
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNET)
    finally:
        os.close(own)


def add(ns_fd: int, index: int, ports) -> list[tuple[socket.socket, int, str]]:
    """One more link in the link namespace ``ns_fd`` (a member that started after this container):
    its address, ``address(index)``, and a listener on each of its ports, ``(socket, port, proto)``.
    Returns in the caller's namespace."""
    from netstack import netlink
    from rootless.base import syscalls
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(ns_fd, syscalls.CLONE_NEWNET)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
                netlink.set_address(ctl, f"{IFNAME}:{index}" if index else IFNAME, address(index), NETMASK)
            return _listen(address(index), ports)
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNET)
    finally:
        os.close(own)
