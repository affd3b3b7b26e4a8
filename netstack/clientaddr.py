"""The client's own address through a published port.

The relay (``netstack.relay``) runs in the container's network namespace. Its connection to the
container's server (and a UDP client's flow) is opened *from the client's address and port*, so
that the server sees the client as it would behind Docker's bridge:

- a client on the host's loopback (127.0.0.1, or ``::1``, which an IPv4 container sees as
  127.0.0.1) is 127.0.0.1 in the container too: the namespace's own loopback has that address, so
  the socket is simply bound to it, and the replies stay on ``lo``;
- any other client (another host, or one of this host's addresses) is a foreign address in the
  namespace: the socket is bound to it with ``IP_TRANSPARENT`` (CAP_NET_ADMIN in the container's
  user namespace is enough), and the server's replies are sent back into the relay by policy
  routing: a rule per published port sends what the server sends from it to a table whose route
  delivers locally. TCP: ``from TARGET ipproto tcp sport PORT lookup 2301`` with ``local default
  dev lo`` there; UDP (whose replies from a wildcard socket have no source yet when routed):
  ``ipproto udp sport PORT lookup 2302`` with a ``local CLIENT/32`` route for each client that has a
  flow, removed with its last flow, so that the server's own datagrams from that port to anyone
  else still leave by tap0.

If the client's port is taken in the namespace, the socket keeps the address and takes another
port. An IPv6 client other than ``::1`` (the container is reached over IPv4), or a kernel that
refuses the rules, leaves the relay's own address, as before.
"""

from __future__ import annotations

import errno
import socket

IP_TRANSPARENT = 19
TCP_TABLE, UDP_TABLE = 2301, 2302
PRIORITY = 2300  # before the main table's rule (32766)


def client_ipv4(host: str) -> str | None:
    """The IPv4 address the container is shown for a client at ``host`` (as the host's socket
    names it); None when it has none (an IPv6 client)."""
    if ":" not in host:
        return host
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    if host == "::1":
        return "127.0.0.1"
    return None


def _exists_ok(call, *args) -> None:
    try:
        call(*args)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def _loopback(ip: str) -> bool:
    return ip.startswith("127.")


class ClientAddresses:
    """What the relay of one container needs: the rules (``route_tcp``/``route_udp`` per published
    port), then one socket per connection or flow, bound to its client's address."""

    def __init__(self, target_ip: str):
        self.target_ip = target_ip
        self._nl = None
        self._lo = 0
        self.foreign = True  # foreign addresses work (else: loopback clients only)
        self._udp_routes: dict[str, int] = {}  # client address -> its flows

    def _netlink(self):
        from netstack import netlink
        if self._nl is None:
            self._nl = netlink.route_socket()
            self._lo = socket.if_nametoindex("lo")
        return netlink

    def route_tcp(self, port: int) -> None:
        self._route(port, socket.IPPROTO_TCP, TCP_TABLE, self.target_ip)

    def route_udp(self, port: int) -> None:
        self._route(port, socket.IPPROTO_UDP, UDP_TABLE, None)

    def _route(self, port: int, proto: int, table: int, src: str | None) -> None:
        if not self.foreign:
            return
        try:
            netlink = self._netlink()
            _exists_ok(netlink.add_port_rule, self._nl, PRIORITY, table, proto, port, src)  # a port published twice
            if table == TCP_TABLE:  # the table's one route (there already for a second TCP port)
                _exists_ok(netlink.add_local_route, self._nl, TCP_TABLE, None, self._lo)
        except OSError:
            self.foreign = False  # an old kernel, or no CAP_NET_ADMIN: loopback clients only

    def source(self, peer) -> str | None:
        """The address to bind for a client whose host-side address is ``peer``; None: none."""
        ip = client_ipv4(peer[0])
        if ip is None or not (self.foreign or _loopback(ip)):
            return None
        return ip

    def bind(self, sock: socket.socket, ip: str, port: int) -> bool:
        """Bind ``sock`` to ``ip`` and, if free in the namespace, ``port``; False if it cannot be."""
        try:
            if not _loopback(ip):
                sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            if sock.type == socket.SOCK_STREAM:  # over our own TIME_WAIT (UDP: never over another's socket)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ip, port))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                sock.bind((ip, 0))
        except OSError:
            return False
        return True

    def udp_socket(self, peer) -> tuple[socket.socket, str | None]:
        """A UDP socket for a client's flow and the address it is bound to (None: it is not).
        A bound socket is to be left unconnected: the server's replies come back from its port
        with whatever source address its routing picks. A foreign address's route goes with its
        last flow (``release_udp``)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ip = self.source(peer)
        if ip is None:
            return s, None
        if not _loopback(ip) and not self._add_udp_route(ip):
            return s, None
        if not self.bind(s, ip, peer[1]):
            self.release_udp(ip)
            s.close()
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM), None
        return s, ip

    def _add_udp_route(self, ip: str) -> bool:
        count = self._udp_routes.get(ip, 0)
        if not count:
            try:
                self._netlink().add_local_route(self._nl, UDP_TABLE, ip, self._lo)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    return False
        self._udp_routes[ip] = count + 1
        return True

    def release_udp(self, ip: str) -> None:
        """A flow from ``ip`` has ended: the last one takes its route away."""
        if _loopback(ip):
            return
        count = self._udp_routes.get(ip, 0) - 1
        if count > 0:
            self._udp_routes[ip] = count
            return
        if self._udp_routes.pop(ip, None) is not None:
            try:
                self._netlink().delete_local_route(self._nl, UDP_TABLE, ip, self._lo)
            except OSError:
                pass
