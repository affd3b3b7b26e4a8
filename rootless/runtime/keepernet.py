"""The keeper's network helpers: slirp4netns started against the container's network namespace
and its own port forwards, the tap's MAC, and the port relay (published ports, link listeners,
the door, a network member's DNS server: ``netstack.relay``, served in the keeper's own loop, no
process of its own), each ended in reverse order of its start (:class:`Helpers`).
``runtime.child``'s keeper calls them in its named phases."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from rootless.runtime.launchplan import LaunchPlan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netstack.relay import Relay
    from netstack.slirp import Slirp


class Helpers:
    """The keeper's network helpers, ended in reverse order of their start."""

    def __init__(self) -> None:
        self.slirp: Slirp | None = None
        self.relay: Relay | None = None  # served by the keeper's supervise loop

    def stop_relay(self) -> None:
        """Close the relay's sockets: once the container is recorded as stopped, its host ports
        are free for the next container."""
        if self.relay is not None:
            relay, self.relay = self.relay, None
            relay.close()

    def forget_relay(self) -> None:
        """In the container's fork, before it runs anything: close the copies of the relay's
        descriptors it inherited (no host socket of the keeper's reaches the container)."""
        if self.relay is not None:
            relay, self.relay = self.relay, None
            relay.forget()

    def stop_slirp(self) -> None:
        if self.slirp:
            slirp, self.slirp = self.slirp, None
            slirp.stop()


def start_slirp(proc, net) -> int:
    """Start slirp4netns against this network namespace; a descriptor of the namespace, to close
    once slirp4netns is ready. slirp4netns is given that descriptor's path, not /proc/PID/ns/net:
    it opens the path when it gets round to it, and by then the keeper may be in the link
    namespace for a moment (``links.setup`` hops there and back), whose tap0 nobody would use."""
    from netstack import slirp
    fds = proc.fds()
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    proc.start(slirp.argv(net.features, f"/proc/{os.getpid()}/fd/{netns}", fds["ready"], fds["exit"], fds["api"],
                          net.options, net.mac))
    return netns


def slirp_forward(proc, net, at: Callable[[str], None]) -> None:
    """slirp4netns is up: forward the ports it handles itself."""
    if net.handler == "slirp4netns" and net.bound:
        from netstack import slirp, slirp_api
        for b in net.bound:
            at(f"publish {b.host_ip}:{b.host_port}->{b.container_port}/{b.proto} with slirp4netns")
            slirp_api.add_hostfwd(proc.run_dir, slirp.API_SOCKET, b.proto, b.host_ip, b.host_port,
                                  b.container_port)


def tap_mac() -> str:
    """The MAC address of slirp4netns' tap."""
    from netstack import netlink, slirp
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
            return netlink.hardware_address(ctl, slirp.TAP)
    except OSError:
        return ""  # not expected; the command runs already: the record shows no MAC rather than fail it


def start_relay(plan: LaunchPlan, link_listeners: list, link_ns: list[int], warn,
                at: Callable[[str], None]) -> Relay:
    """The port relay, served in the keeper's own loop (``keeper.supervise``): no process of its
    own. It takes the published ports, the link listeners, the door and a network member's DNS
    server; the keeper closes them all with :meth:`Helpers.stop_relay`."""
    import signal

    from netstack import relay
    net = plan.net
    # a peer gone mid-write is an error to the relay, never a signal that ends the keeper (one
    # started by the restart monitor has SIGPIPE at its default); the container's command gets
    # its signals reset before its exec
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    origins = None
    if net.kind == "slirp4netns":  # the relay is in the container's network namespace
        from netstack import clientaddr
        origins = clientaddr.ClientAddresses(net.target_ip)
    r = relay.Relay(net.target_ip, origins=origins)
    for b in net.bound:
        if b.sock is not None:
            r.publish(b.sock, b.proto, b.container_port)
    follow = [link for link in net.links if link.keeper]
    followers = _followers(r, plan, follow, link_ns[0] if link_ns else None)
    by_door = {link.door_dir: followers.by_cid.get(link.cid) for link in follow} if followers else {}
    for s, door_dir, port, proto in link_listeners:
        f = by_door.get(door_dir)
        if f is None or not f.adopt(s, port, proto):
            r.link(s, door_dir, port, proto)
    if net.door:
        r.door(relay.listen_door(plan.run_dir))
    if net.dns is not None:
        at("listen on 127.0.0.11:53 (the embedded DNS server)")
        from netstack import dns
        try:
            dns_socks = dns.listen()
        except OSError as e:  # not expected: the container's user namespace owns its network namespace
            warn(f"no DNS server on {dns.ADDRESS}:{dns.PORT} ({e.strerror}): the network's members resolve only "
                 "through /etc/hosts, as it was when the container started")
        else:
            _serve_dns(r, plan, dns_socks, link_ns[0] if link_ns else None, followers)
    return r


def _followers(r, plan: LaunchPlan, follow: list, link_ns: int | None):
    """The fellow members whose listening ports the links follow (``netstack.linkports``); None
    without a link namespace or a member linked at the start (the DNS server makes them then)."""
    if link_ns is None or not follow:
        return None
    from netstack import linkports, links
    from rootless.runtime import network
    followers = linkports.Followers(r, network.KeeperLocator(plan.paths))
    for link in follow:
        followers.add(link.cid, linkports.Follower(
            r, link.door_dir, link.ports, lambda more, addr=link.address: links.listen_in(link_ns, addr, more),
            link.keeper))
    return followers


def _serve_dns(r, plan: LaunchPlan, socks: tuple, link_ns: int | None, followers=None) -> None:
    """The relay's DNS server: names looked up in the records at each query (``network.MemberFinder``);
    a member without a link yet gets one in the link namespace."""
    from netstack import dns
    from rootless.runtime import network
    net = plan.net
    own_ip = net.target_ip if net.kind == "slirp4netns" else None
    book = dns.LinkBook(r, link_ns, {link.cid: link.address for link in net.links}, followers,
                        network.KeeperLocator(plan.paths))
    server = dns.Server(r, network.MemberFinder(plan.paths, plan.spec.id, own_ip), book, net.dns or ())
    server.listen(*socks)
