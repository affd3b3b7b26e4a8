"""Network use cases: ``network create|ls|inspect|rm|prune|connect|disconnect``, and the
user-defined network a new container joins (``run --network NAME``).

rootless has no bridge: each container has a network namespace of its own (slirp4netns). A
user-defined network is a record (``networks/ID.json``) and its members are the containers whose
spec names it (``spec.networks``: [network id, [aliases]] pairs), so removing a container needs
nothing here. At each start a member is linked (``rootless.runtime.network``, ``netstack.links``)
to every running fellow member, under its name and its aliases there; the members started later
(or connected later) are answered by its embedded DNS server (``netstack.dns``, in its relay), which
reads this module's records at each query and links them then. An ``--internal`` network's members run without
slirp4netns (``none``): they reach each other and nothing else. Docker's predefined networks
``bridge`` (the default slirp4netns network), ``host`` and ``none`` always exist.
"""

from __future__ import annotations

import os
import re

from rootless.base import atomic, locking
from rootless.base.clock import now_iso
from rootless.base.errors import Conflict, NetworkNotFound, RootlessError, UsageError

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord

NETWORK_VERSION = 1
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# name: (driver, the --network mode its containers run in)
PREDEFINED = {"bridge": ("bridge", "slirp4netns"), "host": ("host", "host"), "none": ("null", "none")}
RESERVED = ("default", "private", "slirp4netns", "container")  # other words --network takes
FILTERS = ("name", "id", "label", "driver", "type", "scope", "dangling")
SLIRP_SUBNET, SLIRP_GATEWAY, SLIRP_IP = "10.0.2.0/24", "10.0.2.2", "10.0.2.100"


# ---- names and records ------------------------------------------------------------------------
def check_name(name: str) -> None:
    if not _NAME.fullmatch(name or "") or len(name) > 255:
        raise UsageError(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                         exit_code=1)


def predefined_id(name: str) -> str:
    """A predefined network's id: the same in every store (Docker's are random per daemon)."""
    import hashlib
    return hashlib.sha256(f"rootless predefined network {name}".encode()).hexdigest()


def _predefined(paths) -> list[dict]:
    try:  # as old as the store (Docker's are as old as the daemon's state)
        import time
        t = os.stat(paths.version_file).st_mtime
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
    except OSError:
        created = ""
    return [{"version": NETWORK_VERSION, "id": predefined_id(name), "name": name, "created": created,
             "driver": driver, "labels": {}, "internal": False, "attachable": False, "options": {},
             "predefined": True} for name, (driver, _mode) in PREDEFINED.items()]


def _read(paths, nid: str) -> dict | None:
    try:
        rec = atomic.read_json(paths.network_record(nid))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("id") == nid and isinstance(rec.get("name"), str) else None


def user_networks(paths) -> list[dict]:
    """The user-defined networks' records."""
    try:
        ids = [n[:-5] for n in os.listdir(paths.networks) if n.endswith(".json") and not n.startswith(".")]
    except FileNotFoundError:
        return []
    return [r for r in (_read(paths, nid) for nid in ids) if r is not None]


def all_networks(paths) -> list[dict]:
    """Predefined and user-defined, by name (as ``network ls`` shows them)."""
    return sorted(_predefined(paths) + user_networks(paths), key=lambda r: r["name"])


def find(paths, ref: str) -> dict:
    """A network by full id, name or unique id prefix (Docker's order)."""
    nets = _predefined(paths) + user_networks(paths)
    for key in ("id", "name"):
        for r in nets:
            if r[key] == ref:
                return r
    found = [r for r in nets if ref and r["id"].startswith(ref)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise RootlessError(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)",
                            "give more characters or the name", exit_code=1)
    raise NetworkNotFound(f"network {ref} not found")


def name_of(paths, nid: str) -> str:
    """A network's name (its short id if its record is gone)."""
    rec = _read(paths, nid)
    return rec["name"] if rec else nid[:12]


# ---- membership --------------------------------------------------------------------------------
def member_of(rec: ContainerRecord, net: dict) -> bool:
    """Whether a container is on the network: named in its spec (user-defined), or run in the
    predefined network's mode without a user-defined one."""
    spec = rec.get("spec") or {}
    joined = spec.get("networks") or ()
    if not net.get("predefined"):
        return any(nid == net["id"] for nid, _aliases in joined)
    return not joined and (spec.get("network") or "").partition(":")[0] == PREDEFINED[net["name"]][1]


def members(ctx: Context, net: dict) -> list[ContainerRecord]:
    """The containers on the network, running or not, the oldest first."""
    from rootless.runtime import records, state
    recs = [records.current(ctx, r) for r in state.all_records(ctx.paths) if member_of(r, net)]
    return sorted((r for r in recs if r["state"].get("status") != "removed"), key=lambda r: r.get("created", ""))


def aliases_on(rec: ContainerRecord, nid: str) -> list[str]:
    for joined, aliases in (rec.get("spec") or {}).get("networks") or ():
        if joined == nid:
            return list(aliases)
    return []


def endpoint_id(nid: str, cid: str) -> str:
    import hashlib
    return hashlib.sha256(f"{nid}/{cid}".encode()).hexdigest()


# ---- use cases ---------------------------------------------------------------------------------
def create(ctx: Context, name: str, driver: str = "bridge", labels=(), internal: bool = False, attachable: bool = False,
           options=(), ipv6: bool = False, subnets=(), ipam_driver: str = "default", ipam_options=None) -> str:
    """``network create``: the new network's id. ``labels``, ``options``: dicts or ``K=V`` strings;
    ``subnets``: Docker's ``IPAM.Config`` entries (checked and kept: ``rootless.engine.netipam``);
    ``ipam_options``: ``IPAM.Options`` as given (None when the client sent none, as Docker keeps it)."""
    from rootless.engine import netipam
    from rootless.runtime import names
    from rootless.runtime.spec import parse_labels
    check_name(name)
    if (driver or "bridge") != "bridge":
        raise RootlessError(f'plugin "{driver}" not found', "rootless networks use the bridge driver (the default)",
                            exit_code=1)
    if (ipam_driver or "default") != "default":
        raise UsageError(f'plugin "{ipam_driver}" not found', "rootless networks use the default IPAM driver",
                         exit_code=1)
    pools = netipam.pools(subnets, ipv6)
    _slirp_cidr(pools)  # a subnet slirp4netns cannot use: said now
    if name in RESERVED:
        raise Conflict(f"{name} is a pre-defined network and cannot be created", exit_code=1)
    labels = dict(labels) if isinstance(labels, dict) else parse_labels(labels, "label")
    options = dict(options) if isinstance(options, dict) else parse_labels(options, "opt")
    rec = {"version": NETWORK_VERSION, "id": names.new_id(), "name": name, "created": now_iso(),
           "driver": "bridge", "labels": labels, "internal": bool(internal), "attachable": bool(attachable),
           "options": options}
    if pools or ipv6 or ipam_options is not None:
        rec.update(ipam=pools, ipv6=bool(ipv6), ipam_options=ipam_options)
    os.makedirs(ctx.paths.networks, 0o700, exist_ok=True)
    with locking.locked(ctx.paths.networks_lock):
        if any(r["name"] == name for r in _predefined(ctx.paths) + user_networks(ctx.paths)):
            raise Conflict(f"network with name {name} already exists", exit_code=1)
        atomic.write_json(ctx.paths.network_record(rec["id"]), rec)
    return rec["id"]


def parse_filters(filters) -> dict[str, list[str]]:
    """``KEY=VALUE`` items by key (values of one key are alternatives; keys must all match)."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in FILTERS:
            raise UsageError(f"invalid filter {f!r}", "use " + ", ".join(f"{k}=" for k in FILTERS))
        if key == "type" and value not in ("custom", "builtin"):
            raise UsageError(f"invalid filter 'type={value}'", "type takes custom or builtin")
        if key == "dangling" and value not in ("true", "false", "1", "0"):
            raise UsageError(f"invalid filter 'dangling={value}'", "dangling takes true or false")
        out.setdefault(key, []).append(value)
    return out


def matches(net: dict, filters: dict[str, list[str]], used: set[str] | None = None) -> bool:
    """Docker's network filters: name (a part of it), id (a prefix), label (KEY or KEY=VALUE),
    driver, type (custom|builtin), scope, dangling (true: no container; ``used``: the ids of the
    networks with containers)."""
    def one(key: str, value: str) -> bool:
        if key == "name":
            return value in net["name"]
        if key == "id":
            return net["id"].startswith(value)
        if key == "label":
            k, has_v, v = value.partition("=")
            return k in net["labels"] and (not has_v or net["labels"][k] == v)
        if key == "driver":
            return net["driver"] == value
        if key == "type":
            return bool(net.get("predefined")) == (value == "builtin")
        if key == "scope":
            return value == "local"
        return (not net.get("predefined") and net["id"] not in (used or set())) == (value in ("true", "1"))
    return all(any(one(key, v) for v in values) for key, values in filters.items())


def ls(ctx: Context, filters=()) -> list[dict]:
    """``network ls``: the records (predefined ones too) that pass the filters, by name."""
    wanted = parse_filters(filters)
    used = _used(ctx) if "dangling" in wanted else None
    return [n for n in all_networks(ctx.paths) if matches(n, wanted, used)]


def _used(ctx: Context) -> set[str]:
    from rootless.runtime import state
    return {nid for r in state.all_records(ctx.paths) for nid, _aliases in (r.get("spec") or {}).get("networks") or ()}


def inspect(ctx: Context, ref: str) -> dict:
    """Docker's ``network inspect`` object."""
    net = find(ctx.paths, ref)
    return view(net, members(ctx, net))


def view(net: dict, recs: list[ContainerRecord]) -> dict:
    """Docker's JSON of a network record and its member containers (pure)."""
    containers = {}
    for r in recs:
        st = r["state"]
        running = st.get("status") == "running"
        ip = (st.get("net") or {}).get("ip", "") if running else ""
        prefix = (st.get("net") or {}).get("prefix", 24)
        containers[r["id"]] = {"Name": r["name"], "EndpointID": endpoint_id(net["id"], r["id"]) if running else "",
                               "MacAddress": (st.get("net") or {}).get("mac", "") if running else "",
                               "IPv4Address": f"{ip}/{prefix}" if ip else "", "IPv6Address": ""}
    config = [{"Subnet": SLIRP_SUBNET, "Gateway": SLIRP_GATEWAY}] if net["name"] == "bridge" and net.get(
        "predefined") else [dict(p) for p in net.get("ipam") or ()]
    options = None if net.get("predefined") else net.get("ipam_options", {})
    return {
        "Name": net["name"], "Id": net["id"], "Created": net.get("created", ""), "Scope": "local",
        "Driver": net["driver"], "EnableIPv6": bool(net.get("ipv6")),
        "IPAM": {"Driver": "default", "Options": options, "Config": config},
        "Internal": bool(net.get("internal")), "Attachable": bool(net.get("attachable")), "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
        "Options": dict(net.get("options") or {}), "Labels": dict(net.get("labels") or {}),
    }


def rm(ctx: Context, ref: str) -> None:
    """``network rm``: not a predefined one, not while a container (running or not) is on it."""
    net = find(ctx.paths, ref)
    if net.get("predefined"):
        raise Conflict(f"{net['name']} is a pre-defined network and cannot be removed", exit_code=1)
    with locking.locked(ctx.paths.containers_lock):  # no container is made on it meanwhile
        _refuse_in_use(ctx, net)
        with locking.locked(ctx.paths.networks_lock):
            try:
                os.unlink(ctx.paths.network_record(net["id"]))
            except FileNotFoundError:
                raise NetworkNotFound(f"network {ref} not found") from None


def _refuse_in_use(ctx: Context, net: dict) -> None:
    users = members(ctx, net)
    if users:
        endpoints = " ".join(f'(name:"{r["name"]}" id:"{r["id"][:12]}")' for r in users)
        raise Conflict(f"error while removing network: network {net['name']} has active endpoints {endpoints}",
                       f"remove those containers, or disconnect them: rootless network disconnect {net['name']} "
                       "CONTAINER", exit_code=1)


def prune(ctx: Context) -> list[str]:
    """``network prune``: the names of the user-defined networks removed (those no container is on)."""
    used = _used(ctx)
    out = []
    for net in sorted(user_networks(ctx.paths), key=lambda r: r["name"]):
        if net["id"] in used:
            continue
        try:
            rm(ctx, net["id"])
        except (Conflict, NetworkNotFound):  # a container joined it meanwhile, or another prune won
            continue
        out.append(net["name"])
    return out


def connect(ctx: Context, network: str, container: str, aliases=(), endpoint=None) -> ContainerRecord:
    """``network connect``: the container joins a user-defined network (its fellow members reach
    it by name at once, through their DNS server; it reaches them at once too if it was started on
    a user-defined network, else from its own next start). ``endpoint``: Docker's
    ``EndpointConfig`` (``rootless.engine.netipam.endpoint``). The container's record. Connecting it
    to a network it is on is Docker's error."""
    from rootless.engine import netipam
    from rootless.runtime import records
    net = find(ctx.paths, network)
    settings = netipam.endpoint(endpoint, net)
    rec = records.lookup(ctx, container)
    if net.get("predefined"):
        raise RootlessError(f"rootless cannot connect a container to the predefined network {net['name']}",
                            "its network mode is chosen when it is created (--network)", exit_code=1)
    mode = (rec["spec"].get("network") or "").partition(":")[0]
    if mode in ("host", "container"):
        raise Conflict("container sharing network namespace with another container or host cannot be connected "
                       "to any other network", exit_code=1)
    if mode == "none" and not rec["spec"].get("networks"):
        raise Conflict("container cannot be connected to multiple networks with one of the networks in private "
                       "(none) mode", exit_code=1)

    def join(joined: list) -> list:
        if any(nid == net["id"] for nid, _a in joined):
            raise Conflict(f"endpoint with name {rec['name']} already exists in network {net['name']}", exit_code=1)
        return joined + [[net["id"], list(dict.fromkeys(aliases))]]
    return _change_networks(ctx, rec, join, net["id"], settings)


def disconnect(ctx: Context, network: str, container: str, force: bool = False) -> ContainerRecord | dict:
    """``network disconnect``: the container leaves a user-defined network (the record; ``{}`` when
    ``force`` and the container is gone)."""
    from rootless.runtime import records
    net = find(ctx.paths, network)
    try:
        rec = records.lookup(ctx, container)
    except RootlessError:
        if force:  # Docker's -f: a container that is gone is not on it anyway
            return {}
        raise

    def leave(joined: list) -> list:
        kept = [[nid, a] for nid, a in joined if nid != net["id"]]
        if len(kept) == len(joined):
            raise RootlessError(f"container {rec['id'][:12]} is not connected to network {net['name']}", exit_code=1)
        return kept
    return _change_networks(ctx, rec, leave, net["id"], None)


def check_endpoint(ctx: Context, opts) -> None:
    """``run``/``create``'s ``--ip``, ``--ip6``, ``--link-local-ip`` (``opts.endpoint``): only on a
    user-defined network (Docker's words), and in its subnets; kept by :func:`set_endpoint`."""
    from rootless.engine import netipam
    if not opts.networks:
        raise UsageError("user specified IP address is supported on user defined networks only",
                         "create one (rootless network create NAME) and run with --network NAME")
    try:
        netipam.endpoint(opts.endpoint, find(ctx.paths, opts.networks[0][0]))
    except UsageError as e:
        raise UsageError(e.message, e.hint) from None  # a flag of run's: 125, where connect's is 1


def set_endpoint(ctx: Context, rec: ContainerRecord, network: str, config) -> ContainerRecord:
    """Keep a new container's endpoint settings on ``network`` (``NetworkingConfig.EndpointsConfig``
    of ``create``): checked, and its MAC address becomes the container's."""
    from rootless.engine import netipam
    net = find(ctx.paths, network)
    settings = netipam.endpoint(config, net)
    if not settings:
        return rec
    return _change_networks(ctx, rec, lambda joined: joined, net["id"], settings)


def endpoint_settings(spec: dict, nid: str) -> dict:
    """What a member's record keeps of its endpoint on network ``nid`` (``{}`` if nothing)."""
    return dict((spec.get("endpoints") or {}).get(nid) or {})


def _change_networks(ctx: Context, rec: ContainerRecord, change, nid: str | None = None,
                     settings: dict | None = None) -> ContainerRecord:
    from rootless.runtime import state
    cid = rec["id"]
    with locking.locked(ctx.paths.container_lock(cid)):
        fresh = state.read(ctx.paths, cid)
        if fresh is None:
            from rootless.base.errors import ContainerNotFound
            raise ContainerNotFound(f"No such container: {rec['name']}")
        fresh["spec"]["networks"] = change([list(x) for x in fresh["spec"].get("networks") or ()])
        if nid is not None:
            _keep_endpoint(fresh["spec"], nid, settings)
        atomic.write_json(ctx.paths.container_record(cid), fresh)
    return fresh


def _keep_endpoint(spec: dict, nid: str, settings: dict | None) -> None:
    """Set (or with None remove) the endpoint settings on ``nid``; a MAC address asked for is the one
    slirp4netns gives the container from its next start."""
    endpoints = dict(spec.get("endpoints") or {})
    if settings is None:
        endpoints.pop(nid, None)
    else:
        endpoints[nid] = settings
        mac = settings.get("MacAddress")
        if mac:
            if (spec.get("network") or "").partition(":")[0] != "slirp4netns":
                raise UsageError("conflicting options: mac-address and the network mode",
                                 f"a MAC address needs the slirp4netns network, not {spec.get('network')}",
                                 exit_code=1)
            spec["mac"] = mac
    if endpoints:
        spec["endpoints"] = endpoints
    else:
        spec.pop("endpoints", None)


def _slirp_cidr(pools) -> str | None:
    """The network's first IPv4 subnet, which its members' slirp4netns use (their address is its
    .100, the gateway .2, the resolver .3); one line if slirp4netns cannot use it."""
    from netstack.spec import check_cidr
    for pool in pools:
        if ":" not in pool["Subnet"]:
            try:
                return check_cidr(pool["Subnet"])
            except UsageError as e:
                raise UsageError(e.message, e.hint, exit_code=1) from None
    return None


def resolve(ctx: Context, opts):
    """``run/create --network NAME`` of a user-defined network: the run options with the network's
    mode (``slirp4netns``, ``none`` if it is internal) and ``networks`` set; other modes unchanged.
    An unknown name is Docker's "network NAME not found" (exit 125), before anything is made."""
    kind = opts.network.partition(":")[0]
    if kind in ("", "slirp4netns", "bridge", "default", "private", "none", "host", "container"):
        return opts
    try:
        net = find(ctx.paths, opts.network)
    except NetworkNotFound as e:
        raise NetworkNotFound(e.message, "create it first: rootless network create " + opts.network,
                              exit_code=125) from None
    if net.get("predefined"):  # given by id
        return opts._replace(network=PREDEFINED[net["name"]][1])
    cidr = _slirp_cidr(net.get("ipam") or ())
    options = ",".join(o for o in ("enable_ipv6=true" if net.get("ipv6") else "", f"cidr={cidr}" if cidr else "") if o)
    mode = "none" if net.get("internal") else ("slirp4netns:" + options if options else "slirp4netns")
    return opts._replace(network=mode,
                         networks=((net["id"], tuple(dict.fromkeys(opts.network_aliases))),))
