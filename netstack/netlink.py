"""The few interface operations links need: a veth pair (rtnetlink), IPv4 addresses and ``up`` (ioctl).

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
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 4, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
NLA_F_NESTED = 0x8000

SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
SIOCSIFADDR, SIOCSIFNETMASK = 0x8916, 0x891C
IFF_UP = 0x1


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _ifinfo() -> bytes:
    return struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)


def route_socket() -> socket.socket:
    """An rtnetlink socket in the caller's current network namespace."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    s.bind((0, 0))
    return s


def create_veth(nl: socket.socket, name: str, peer: str, peer_netns_fd: int, mtu: int = 65520) -> None:
    """A veth pair in ``nl``'s namespace: ``name`` stays there, ``peer`` moves to ``peer_netns_fd``."""
    peer_info = _ifinfo() + _attr(IFLA_IFNAME, peer.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu)) \
        + _attr(IFLA_NET_NS_FD, struct.pack("I", peer_netns_fd))
    linkinfo = _attr(IFLA_INFO_KIND, b"veth") + _attr(
        IFLA_INFO_DATA | NLA_F_NESTED, _attr(VETH_INFO_PEER | NLA_F_NESTED, peer_info))
    body = _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu)) \
        + _attr(IFLA_LINKINFO | NLA_F_NESTED, linkinfo)
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    nl.send(struct.pack("IHHII", 16 + len(body), RTM_NEWLINK, flags, 1, 0) + body)
    reply = nl.recv(65536)
    _length, kind, _flags, _seq, _pid = struct.unpack_from("IHHII", reply)
    if kind == NLMSG_ERROR:
        (err,) = struct.unpack_from("i", reply, 16)
        if err:
            raise OSError(-err, f"create veth {name}: {os.strerror(-err)}")


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
