"""The few interface operations links and the shared network need: a veth pair, a bridge, a default
route (rtnetlink), IPv4 addresses and ``up`` (ioctl);
and what brings a client's address through a published port (``netstack.clientaddr``): policy
rules and local routes (rtnetlink).

Each call acts in the network namespace of the socket it is given, not of the caller: a
socket keeps the namespace it was created in. That lets the keeper configure both ends of
a veth pair with a single hop between namespaces.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWRULE = 24, 25, 32
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
NLA_F_NESTED = 0x8000
FRA_SRC, FRA_PRIORITY, FRA_TABLE, FRA_IP_PROTO, FRA_SPORT_RANGE = 2, 6, 15, 22, 23
FR_ACT_TO_TBL = 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RTN_UNICAST, RTN_LOCAL, RT_SCOPE_UNIVERSE, RT_SCOPE_HOST, RTPROT_STATIC = 1, 2, 0, 254, 4
RT_TABLE_MAIN = 254

SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
SIOCSIFADDR, SIOCSIFNETMASK = 0x8916, 0x891C
IFF_UP = 0x1


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _ifinfo(up: bool = False) -> bytes:
    return struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, IFF_UP if up else 0, IFF_UP if up else 0)


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def route_socket() -> socket.socket:
    """An rtnetlink socket in the caller's current network namespace."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    s.bind((0, 0))
    return s


def create_veth(nl: socket.socket, name: str, peer: str, peer_netns_fd: int, mtu: int = 65520,
                master: int = 0, peer_mac: str | None = None) -> None:
    """A veth pair in ``nl``'s namespace: ``name`` stays there, ``peer`` moves to ``peer_netns_fd``.
    ``master``: the index of a bridge in ``nl``'s namespace that ``name`` joins, up (the peer stays
    down: its side configures it); ``peer_mac``: the peer's address (else the kernel's random one)."""
    peer_info = _ifinfo() + _attr(IFLA_IFNAME, peer.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu)) \
        + _attr(IFLA_NET_NS_FD, struct.pack("I", peer_netns_fd))
    if peer_mac:
        peer_info += _attr(IFLA_ADDRESS, _mac(peer_mac))
    linkinfo = _attr(IFLA_INFO_KIND, b"veth") + _attr(
        IFLA_INFO_DATA | NLA_F_NESTED, _attr(VETH_INFO_PEER | NLA_F_NESTED, peer_info))
    body = _ifinfo(up=bool(master)) + _attr(IFLA_IFNAME, name.encode() + b"\0") \
        + _attr(IFLA_MTU, struct.pack("I", mtu)) + _attr(IFLA_LINKINFO | NLA_F_NESTED, linkinfo)
    if master:
        body += _attr(IFLA_MASTER, struct.pack("I", master))
    _request(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {name}")


def create_bridge(nl: socket.socket, name: str, mtu: int = 65520) -> None:
    """A bridge ``name``, up, in ``nl``'s namespace (no address: it only switches)."""
    body = _ifinfo(up=True) + _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu)) \
        + _attr(IFLA_LINKINFO | NLA_F_NESTED, _attr(IFLA_INFO_KIND, b"bridge"))
    _request(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create bridge {name}")


def join_bridge(nl: socket.socket, name: str, master: int) -> None:
    """``ip link set NAME master MASTER up`` in ``nl``'s namespace."""
    body = _ifinfo(up=True) + _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_MASTER, struct.pack("I", master))
    _request(nl, RTM_NEWLINK, 0, body, f"add {name} to the bridge")


def add_default_route(nl: socket.socket, gateway: str) -> None:
    """``ip route add default via GATEWAY`` in ``nl``'s namespace."""
    head = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE,
                       RTN_UNICAST, 0)
    _request(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, head + _attr(RTA_GATEWAY, socket.inet_aton(gateway)),
             f"add the default route via {gateway}")


def _request(nl: socket.socket, kind: int, flags: int, body: bytes, what: str) -> None:
    """Send one request and wait for its acknowledgement; OSError if the kernel refuses it."""
    nl.send(struct.pack("IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 1, 0) + body)
    reply = nl.recv(65536)
    _length, answer, _flags, _seq, _pid = struct.unpack_from("IHHII", reply)
    if answer == NLMSG_ERROR:
        (err,) = struct.unpack_from("i", reply, 16)
        if err:
            raise OSError(-err, f"{what}: {os.strerror(-err)}")


def add_port_rule(nl: socket.socket, priority: int, table: int, proto: int, sport: int, src: str | None = None) -> None:
    """``ip rule add [from SRC] ipproto PROTO sport SPORT lookup TABLE priority PRIORITY`` (IPv4)."""
    head = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 32 if src else 0, 0, 0, 0, 0, FR_ACT_TO_TBL, 0)
    body = head + _attr(FRA_PRIORITY, struct.pack("I", priority)) + _attr(FRA_TABLE, struct.pack("I", table)) \
        + _attr(FRA_IP_PROTO, struct.pack("B", proto)) + _attr(FRA_SPORT_RANGE, struct.pack("HH", sport, sport))
    if src:
        body += _attr(FRA_SRC, socket.inet_aton(src))
    _request(nl, RTM_NEWRULE, NLM_F_CREATE, body, f"add a rule for {'tcp' if proto == 6 else 'udp'} port {sport}")


def _local_route(table: int, dst: str | None, ifindex: int) -> bytes:
    head = struct.pack("BBBBBBBBI", socket.AF_INET, 32 if dst else 0, 0, 0, 0, RTPROT_STATIC, RT_SCOPE_HOST,
                       RTN_LOCAL, 0)
    body = head + _attr(RTA_TABLE, struct.pack("I", table)) + _attr(RTA_OIF, struct.pack("I", ifindex))
    return body + _attr(RTA_DST, socket.inet_aton(dst)) if dst else body


def add_local_route(nl: socket.socket, table: int, dst: str | None, ifindex: int) -> None:
    """``ip route add local DST/32 dev IFINDEX table TABLE`` (``dst`` None: ``default``): what is
    sent there is delivered on this host."""
    _request(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, _local_route(table, dst, ifindex),
             f"add a local route to {dst or 'any address'}")


def delete_local_route(nl: socket.socket, table: int, dst: str | None, ifindex: int) -> None:
    _request(nl, RTM_DELROUTE, 0, _local_route(table, dst, ifindex), f"delete the local route to {dst}")


def _ifreq_addr(name: str, ip: str) -> bytes:
    return struct.pack("16sHH4s8x", name.encode(), socket.AF_INET, 0, socket.inet_aton(ip))


def set_address(ctl: socket.socket, name: str, ip: str, netmask: str) -> None:
    """``ip``/``netmask`` on interface ``name`` (an alias label like ``links0:1`` adds one more)."""
    fcntl.ioctl(ctl, SIOCSIFADDR, _ifreq_addr(name, ip))
    fcntl.ioctl(ctl, SIOCSIFNETMASK, _ifreq_addr(name, netmask))


def set_up(ctl: socket.socket, name: str) -> None:
    req = struct.pack("16sH22x", name.encode(), 0)
    flags = struct.unpack("16sH22x", fcntl.ioctl(ctl, SIOCGIFFLAGS, req))[1]
    fcntl.ioctl(ctl, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))


def hardware_address(ctl: socket.socket, name: str) -> str:
    SIOCGIFHWADDR = 0x8927
    try:
        raw = fcntl.ioctl(ctl, SIOCGIFHWADDR, struct.pack("16s24x", name.encode()))
    except OSError as e:
        if e.errno == errno.ENODEV:
            return ""
        raise
    return ":".join(f"{b:02x}" for b in raw[18:24])
