"""A container's network for one start, planned on the CLI's side before the keeper forks.

``prepare`` binds the published ports (so that a port in use fails before anything runs),
resolves links and ``container:`` targets (which must be running), and gives the generated
/etc files. The keeper then follows the plan (see ``rootless.runtime.child.sandbox``): the netns,
slirp4netns, the link namespace, the relay.
"""

from __future__ import annotations

import os

from rootless.base.errors import Conflict, RootlessError, UsageError
from rootless.base.valuetype import KeywordRecord, record

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from netstack.links import LinkPlan
    from netstack.ports import Bound
    from netstack.slirp import Features
    from rootless.runtime import Context
    from rootless.runtime.sharednet import Lease
    from rootless.runtime.spec import ContainerSpec
    from rootless.runtime.state import ContainerRecord

@record
class NetPlan(KeywordRecord):
    """A container's network for one start."""
    kind: str  # slirp4netns | none | host | container
    options: dict[str, Any]  # slirp4netns's
    features: Features | None = None  # slirp4netns's probe
    join_fds: tuple[int, int] | None = None  # (user ns fd, net ns fd) of the container whose network is shared
    bound: Sequence[Bound] = ()  # the published ports, bound
    links: Sequence[LinkPlan] = ()
    door: bool = False  # serve linking containers
    target_ip: str = "127.0.0.1"  # where published ports go inside
    handler: str = "builtin"  # builtin | slirp4netns
    mac: str | None = None
    # a member of a user-defined network: the embedded DNS server's upstream resolvers (None: no server)
    dns: tuple[str, ...] | None = None
    # an address on the shared network (``runtime.sharednet``), not a slirp4netns of its own; or, with
    # no address (``ip`` ""), its holder's user namespace for a container off it
    shared: Lease | None = None


def prepare(ctx: Context, spec: ContainerSpec) -> NetPlan:
    """Everything for one start; published ports are bound (builtin relay) or checked (slirp4netns)."""
    from netstack import spec as netspec
    mode = netspec.parse_network(spec.network)
    if mode.kind == "host":
        if spec.ports or spec.publish_all:
            ctx.warn("published ports are discarded when using host network mode")
        return NetPlan("host", {}, shared=_holders_user_namespace(ctx))
    if mode.kind == "container":
        return NetPlan("container", {}, join_fds=_join_fds(ctx, mode.container))
    features = ctx.slirp_features() if mode.kind == "slirp4netns" else None
    handler = mode.options.get("port_handler", "builtin") if mode.kind == "slirp4netns" else "builtin"
    shared = None
    if mode.kind == "slirp4netns":
        from netstack import slirp
        from rootless.runtime import sharednet
        if sharednet.usable(mode.options) and features is not None:
            shared = sharednet.lease(ctx.paths, ctx.mapping, features, ctx.warn)
        target_ip = shared.ip if shared is not None else slirp.addresses(mode.options).ip
    else:
        target_ip = "127.0.0.1"
    if shared is None:
        shared = _holders_user_namespace(ctx)
    links = _links(ctx, spec)
    if handler == "slirp4netns":
        for m in _mappings(spec):
            if ":" in m.host_ip:
                raise UsageError(f"slirp4netns's forwarder cannot publish on an IPv6 host address ([{m.host_ip}])",
                                 "use the built-in forwarder (drop port_handler=slirp4netns)")
    try:
        bound = _bind(spec, handler)
    except BaseException:
        if shared is not None:
            sharednet.release(shared)
        raise
    if handler == "slirp4netns" and not mode.options.get("allow_host_loopback") and any(
            b.proto == "udp" for b in bound):
        ctx.warn("slirp4netns's forwarder drops UDP replies to clients on the host's loopback unless "
                 "allow_host_loopback=true (the built-in forwarder has no such limit)")
    dns = None
    if spec.networks:  # Docker's embedded DNS server, for user-defined networks only
        dns = tuple(spec.dns) or ((slirp.addresses(mode.options).dns,) if mode.kind == "slirp4netns" else ())
    return NetPlan(kind=mode.kind, options=mode.options, features=features, bound=bound, links=links,
                   door=bool(spec.exposed or spec.ports or spec.networks), target_ip=target_ip, handler=handler,
                   mac=spec.mac, dns=dns, shared=shared)


def shared_address(net: NetPlan) -> Lease | None:
    """The plan's lease of an address on the shared network (None: not on it; a lease of only its
    holder's user namespace is not on it either)."""
    return net.shared if net.shared is not None and net.shared.ip else None


def _holders_user_namespace(ctx: Context) -> Lease | None:
    """A container off the shared network lives in its holder's user namespace if one runs."""
    from rootless.runtime import sharednet
    return sharednet.user_namespace(ctx.paths)


def _mappings(spec):
    from netstack.spec import PortMapping
    maps = [PortMapping(*m) for m in spec.ports]
    if spec.publish_all:
        published = {(m.container_port, m.proto) for m in maps}
        for p in spec.exposed:
            num, _, proto = p.partition("/")
            if (int(num), proto) not in published:
                maps.append(PortMapping("", 0, 0, int(num), proto))
    return maps


def _bind(spec, handler: str):
    maps = _mappings(spec)
    if not maps:
        return []
    from netstack import ports
    return ports.bind(maps, keep=handler == "builtin")


def _running(ctx: Context, ref: str, why: str) -> ContainerRecord:
    from rootless.runtime import records
    try:
        rec = records.lookup(ctx, ref)
    except RootlessError:
        raise RootlessError(f"{why}: No such container: {ref}") from None
    if not records.is_running(rec) or rec["state"].get("status") == "removed":
        raise Conflict(f"{why}: container {rec['name']} is not running",
                       f"start it first: rootless start {rec['name']}")
    return rec


def _join_fds(ctx: Context, ref: str) -> tuple[int, int]:
    rec = _running(ctx, ref, "cannot join the network of a container")
    keeper = rec["state"]["keeper"]
    try:
        user = os.open(f"/proc/{keeper}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RootlessError(f"cannot open the namespaces of container {rec['name']}: {e.strerror}") from None
    try:
        net = os.open(f"/proc/{keeper}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        os.close(user)
        raise RootlessError(f"cannot open the namespaces of container {rec['name']}: {e.strerror}") from None
    return user, net


def _links(ctx: Context, spec: ContainerSpec) -> list[LinkPlan]:
    """``--link``s (their targets must run), then a link to each running fellow member of the
    container's user-defined networks, under its name and its aliases there."""
    from netstack import links
    out = []
    for i, (cid, alias) in enumerate(spec.links):
        rec = _running(ctx, cid, f"cannot link to {alias}")
        target = rec["spec"]
        env = [e for e in target.get("env", []) if e != f"HOSTNAME={target.get('hostname')}"]
        out.append(links.LinkPlan(address=links.address(i), alias=alias, name=rec["name"], cid=rec["id"],
                                  door_dir=ctx.paths.run_dir(rec["id"]), ports=tuple(target.get("exposed", ())),
                                  env=tuple(env)))
    by_id = {link.cid: n for n, link in enumerate(out)}
    linked = endpoint_link_aliases(ctx, spec)
    for rec, aliases in network_peers(ctx, spec):
        aliases = tuple(dict.fromkeys(aliases + linked.get(rec["name"], ()) + linked.get(rec["id"], ())))
        if rec["id"] in by_id:  # linked as well: one address, every name
            n = by_id[rec["id"]]
            out[n] = out[n]._replace(aliases=tuple(dict.fromkeys(out[n].aliases + aliases)),
                                     keeper=_keeper(rec))
            continue
        if len(out) >= MAX_LINKS:
            ctx.warn(f"more than {MAX_LINKS} containers to reach by name: {rec['name']} and the next are left out")
            break
        by_id[rec["id"]] = len(out)
        out.append(links.LinkPlan(address=links.address(len(out)), alias=rec["name"], name=rec["name"], cid=rec["id"],
                                  door_dir=ctx.paths.run_dir(rec["id"]), ports=tuple(rec["spec"].get("exposed", ())),
                                  env=(), aliases=aliases, legacy=False, keeper=_keeper(rec)))
    return out


def _keeper(rec: ContainerRecord) -> int:
    return int((rec.get("state") or {}).get("keeper") or 0)


MAX_LINKS = 252  # 10.0.3.2 to 10.0.3.253 (10.0.3.254 is the container's side)


def endpoint_link_aliases(ctx: Context, spec: ContainerSpec) -> dict[str, tuple[str, ...]]:
    """The names a container's endpoint ``Links`` (Docker's ``NAME:ALIAS`` on one of its networks,
    kept in its record by ``rootless.engine.networks``) give fellow members: ALIAS by NAME (or id)."""
    from rootless.runtime import state
    mine = {nid for nid, _aliases in spec.networks}
    rec = state.read(ctx.paths, spec.id) if mine else None
    return _endpoint_links(rec["spec"] if rec else {}, mine)


def _endpoint_links(spec: dict[str, Any], mine: set[str]) -> dict[str, tuple[str, ...]]:
    endpoints: dict[str, dict[str, Any]] = dict(spec.get("endpoints") or {})
    out: dict[str, tuple[str, ...]] = {}
    for nid, settings in endpoints.items():
        for link in settings.get("Links") or () if nid in mine else ():
            name, _, alias = str(link).partition(":")
            name = name.lstrip("/")
            out[name] = out.get(name, ()) + (alias.rsplit("/", 1)[-1] or name,)
    return out


def network_peers(ctx: Context, spec: ContainerSpec) -> list[tuple[ContainerRecord, tuple[str, ...]]]:
    """The running containers (other than this one) that share a user-defined network with it,
    each with its aliases on those networks; the oldest first (a name two members answer to is
    the first one's)."""
    from rootless.runtime import records, state
    mine = {nid for nid, _aliases in spec.networks}
    if not mine:
        return []
    out: list[tuple[ContainerRecord, tuple[str, ...]]] = []
    for rec in sorted(state.all_records(ctx.paths), key=lambda r: r.get("created", "")):
        theirs = [(nid, aliases) for nid, aliases in rec.get("spec", {}).get("networks") or () if nid in mine]
        if not theirs or rec["id"] == spec.id or not records.is_running(rec):
            continue
        rec = records.current(ctx, rec)  # a keeper that died unrecorded: not running
        if records.is_running(rec):
            out.append((rec, tuple(dict.fromkeys(a for _nid, aliases in theirs for a in aliases))))
    return out


class MemberFinder:
    """The embedded DNS server's ``find`` (``netstack.dns.Server``), run in the relay at each
    query: a name (case aside) of this container, its own address; a name, short id, alias or
    endpoint link alias of a running fellow member on its user-defined networks as they are now
    (``network connect``/``disconnect`` count at once), ``(id, runtime directory, exposed
    ports, keeper)``, the oldest member first; else None. Records are only read (their files are
    replaced whole), never reconciled from here. An object, not a closure: a resting keeper
    pickles its relay (``runtime.hibernate``)."""

    def __init__(self, paths, cid: str, own_ip: str | None):
        self.paths, self.cid, self.own_ip = paths, cid, own_ip

    def __call__(self, name: str):
        from rootless.runtime import records, state
        me = state.read(self.paths, self.cid)
        if me is None:
            return None
        spec = me.get("spec") or {}
        mine = {nid for nid, _aliases in spec.get("networks") or ()}
        if not mine:
            return None
        own = {spec.get("name") or me.get("name"), spec.get("hostname"), self.cid[:12], self.cid,
               *(a for nid, aliases in spec.get("networks") or () if nid in mine for a in aliases)}
        head, dot, domain = name.partition(".")
        if dot and domain in _network_names(self.paths, mine):  # Docker's NAME.NETWORK
            name = head
        if self.own_ip and name in {str(n).lower() for n in own if n}:
            return self.own_ip
        linked = _endpoint_links(spec, mine)
        for rec in sorted(state.all_records(self.paths), key=lambda r: r.get("created", "")):
            theirs = [aliases for nid, aliases in (rec.get("spec") or {}).get("networks") or () if nid in mine]
            if not theirs or rec.get("id") == self.cid or rec.get("corrupt"):
                continue
            names = {rec["name"], rec["id"][:12], *(a for aliases in theirs for a in aliases),
                     *linked.get(rec["name"], ()), *linked.get(rec["id"], ())}
            if name not in {str(n).lower() for n in names}:
                continue
            st = rec.get("state") or {}
            if records.is_running(rec) and records.alive(st.get("keeper", 0), st.get("keeper_start", "")):
                return rec["id"], self.paths.run_dir(rec["id"]), tuple(rec["spec"].get("exposed", ())), _keeper(rec)
        return None


class KeeperLocator:
    """``netstack.linkports.Followers``'s ``locate``, run in the relay: a member's keeper if it
    runs now (its record only read), 0 if it does not, None once it is removed (an object, as
    :class:`MemberFinder`)."""

    def __init__(self, paths):
        self.paths = paths

    def __call__(self, cid: str) -> int | None:
        from rootless.runtime import records, state  # only once a member has stopped: the relay stays small
        rec = state.read(self.paths, cid)
        if rec is None:
            return None
        st = rec.get("state") or {}
        if records.is_running(rec) and records.alive(st.get("keeper", 0), st.get("keeper_start", "")):
            return _keeper(rec)
        return 0


def _network_names(paths, nids) -> set[str]:
    from rootless.base import atomic
    out = set()
    for nid in nids:
        try:
            out.add(str(atomic.read_json(paths.network_record(nid)).get("name", "")).lower())
        except (OSError, ValueError, AttributeError):
            pass
    return out


def link_env(spec, net: NetPlan) -> list[str]:
    """Docker's link variables, for the ``--link``s (not for network members, as in Docker)."""
    from netstack import links
    out = []
    for link in net.links:
        if link.legacy:
            out += links.link_env(spec.name, link)
    return out


def etc_files(ctx: Context, spec: ContainerSpec, net: NetPlan) -> dict[str, str]:
    """The texts of /etc/hostname, /etc/hosts and /etc/resolv.conf for this start."""
    from netstack import etcfiles, slirp
    if net.kind == "container":
        return _shared_etc_files(ctx, spec)
    host_hosts, host_resolv = etcfiles.host_files()
    addrs = slirp.addresses(net.options)
    extra = [(ip if ip != "host-gateway" else addrs.gateway, host) for host, ip in spec.add_hosts]
    if net.links:
        from netstack import links
        extra += links.hosts_entries(net.links)
    lease = shared_address(net)
    own_ip = (lease.ip if lease is not None else addrs.ip) if net.kind == "slirp4netns" else None
    resolver = addrs.dns if net.kind == "slirp4netns" else None
    if net.dns is not None:  # the embedded DNS server, which forwards to the resolvers it replaces
        from netstack import dns
        resolv = etcfiles.resolv_text(host_resolv, net.kind, (dns.ADDRESS,), spec.dns_search,
                                      etcfiles.embedded_options(host_resolv, spec.dns_options))
    else:
        resolv = etcfiles.resolv_text(host_resolv, net.kind, spec.dns, spec.dns_search, spec.dns_options, resolver)
    return {
        "/etc/hostname": spec.hostname + "\n",
        "/etc/hosts": etcfiles.hosts_text(spec.hostname, net.kind, host_hosts, spec.name, own_ip, tuple(extra)),
        "/etc/resolv.conf": resolv,
    }


def _shared_etc_files(ctx: Context, spec: ContainerSpec) -> dict[str, str]:
    """``container:``: the other container's files (its names resolve the same way here)."""
    from netstack import spec as netspec
    ref = netspec.parse_network(spec.network).container
    rec = _running(ctx, ref, "cannot join the network of a container")
    out = {}
    for cpath in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
        try:
            with open(os.path.join(ctx.paths.run_dir(rec["id"]), os.path.basename(cpath))) as f:
                out[cpath] = f.read()
        except OSError:
            out[cpath] = ""
    return out


def close(net: NetPlan) -> None:
    """The CLI's copies of the plan's descriptors (the keeper has its own)."""
    for b in net.bound:
        if b.sock is not None:
            b.sock.close()
    for fd in net.join_fds or ():
        os.close(fd)
    if net.shared is not None:
        from rootless.runtime import sharednet
        sharednet.release(net.shared)


def state_fields(net: NetPlan, mac: str = "") -> dict[str, Any]:
    """What the container's state records about its network while it runs."""
    from netstack import slirp
    fields: dict[str, Any] = {"ports": [], "ip": "", "gateway": "", "mac": mac}
    if net.bound:
        from netstack import ports
        fields["ports"] = ports.records(net.bound)
    if net.kind == "slirp4netns":
        addrs = slirp.addresses(net.options)
        lease = shared_address(net)
        fields.update(ip=lease.ip if lease is not None else addrs.ip, gateway=addrs.gateway)
        if addrs.prefix != slirp.PREFIX_LEN:
            fields["prefix"] = addrs.prefix
    return fields
