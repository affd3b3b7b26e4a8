"""A network's IPAM settings and a container's endpoint settings, as Docker's client sends them
(pure: parsing and Docker's refusals, no I/O).

A rootless network has no bridge: each member has its own slirp4netns, whose addresses are its
network's .100 (gateway .2, resolver .3). What a network's ``IPAM.Config`` (``--subnet``,
``--gateway``, ``--ip-range``, ``--aux-address``) and a member's ``IPAMConfig`` (``--ip``, ``--ip6``,
``--link-local-ip``) say is checked as Docker checks it and kept, and ``network inspect`` / ``inspect``
show it as Docker does; the first IPv4 subnet is the members' slirp4netns network
(``rootless.engine.networks``), ``EnableIPv6`` gives them slirp4netns' IPv6. The endpoint's
``MacAddress`` is the member's slirp4netns MAC address, its ``Links`` and ``DriverOpts`` are kept and
shown.
"""

from __future__ import annotations

import ipaddress

from rootless.base.errors import UsageError

POOL_KEYS = ("Subnet", "IPRange", "Gateway", "AuxiliaryAddresses")
ENDPOINT_IPAM_KEYS = ("IPv4Address", "IPv6Address", "LinkLocalIPs")


def _net(text: str, what: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"invalid network config:\ninvalid {what} {text}: invalid CIDR address: {text}",
                         exit_code=1) from None


def _ip(text: str, what: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"invalid network config:\ninvalid {what} {text}", exit_code=1) from None


def pools(config, ipv6: bool) -> list[dict]:
    """``IPAM.Config`` checked as Docker checks it: each subnet a CIDR, the range, gateway and
    auxiliary addresses inside it, an IPv6 subnet only with IPv6 enabled, no two subnets
    overlapping. Docker's shape, keys without a value left out."""
    out: list[dict] = []
    seen: list = []
    for pool in config or ():
        if not isinstance(pool, dict):
            raise UsageError("invalid network config: each IPAM Config entry is an object", exit_code=1)
        unknown = [k for k in pool if k not in POOL_KEYS]
        if unknown:
            raise UsageError(f"invalid network config: unknown IPAM field {unknown[0]!r}", exit_code=1)
        subnet_text = pool.get("Subnet") or ""
        if not subnet_text:
            if any(pool.get(k) for k in POOL_KEYS):
                raise UsageError("invalid network config: an ip-range, gateway or aux-address needs a subnet",
                                 exit_code=1)
            continue
        subnet = _net(subnet_text, "subnet")
        if subnet.version == 6 and not ipv6:
            raise UsageError(f"invalid network config: IPv6 subnet {subnet_text} given, but IPv6 is not enabled "
                             "(--ipv6, EnableIPv6)", exit_code=1)
        for other in seen:
            if other.version == subnet.version and other.overlaps(subnet):
                raise UsageError(f"invalid pool request: Pool overlaps with other one on this address space "
                                 f"({other} and {subnet})", exit_code=1)
        seen.append(subnet)
        entry: dict = {"Subnet": subnet_text}
        if pool.get("IPRange"):
            rng = _net(pool["IPRange"], "ip-range")
            if rng.version != subnet.version or not rng.subnet_of(subnet):
                raise UsageError(f"invalid network config: no matching subnet for range {pool['IPRange']}",
                                 exit_code=1)
            entry["IPRange"] = pool["IPRange"]
        if pool.get("Gateway"):
            if _ip(pool["Gateway"], "gateway") not in subnet:
                raise UsageError(f"invalid network config: no matching subnet for gateway {pool['Gateway']}",
                                 exit_code=1)
            entry["Gateway"] = pool["Gateway"]
        aux = pool.get("AuxiliaryAddresses") or {}
        if not isinstance(aux, dict):
            raise UsageError("invalid network config: AuxiliaryAddresses is an object of names to addresses",
                             exit_code=1)
        for name, addr in aux.items():
            if _ip(str(addr), f"auxiliary address {name}") not in subnet:
                raise UsageError(f"invalid network config: no matching subnet for aux-address {addr}", exit_code=1)
        if aux:
            entry["AuxiliaryAddresses"] = {str(k): str(v) for k, v in aux.items()}
        out.append(entry)
    return out


def cli_pools(subnets, gateways, ranges) -> list[dict]:
    """``--subnet``, ``--gateway`` and ``--ip-range`` as Docker's CLI pairs them: each gateway and
    range with the subnet that holds it."""
    pools = [{"Subnet": s} for s in subnets]
    nets = [_net(s, "subnet") for s in subnets]
    for key, flag, values in (("Gateway", "gateway", gateways), ("IPRange", "ip-range", ranges)):
        for text in values:
            if key == "Gateway":
                addr = _ip(text, flag)
                matching = [i for i, n in enumerate(nets) if addr in n]
            else:
                rng = _net(text, flag)
                matching = [i for i, n in enumerate(nets) if rng.version == n.version and rng.subnet_of(n)]
            if not matching:
                raise UsageError(f"no matching subnet for {flag} {text}", exit_code=1)
            if key in pools[matching[0]]:
                raise UsageError(f"cannot configure multiple {flag}s for the same subnet {subnets[matching[0]]}",
                                 exit_code=1)
            pools[matching[0]][key] = text
    return pools


def endpoint_ipam(ipam, net: dict) -> dict:
    """A member's ``IPAMConfig`` (``--ip``, ``--ip6``, ``--link-local-ip``) checked against its
    network as Docker checks it: a chosen address only on a network whose subnets the user set, and
    inside one of them. Only the keys given."""
    if not ipam:
        return {}
    if not isinstance(ipam, dict):
        raise UsageError("invalid endpoint config: IPAMConfig is an object", exit_code=1)
    out: dict = {}
    subnets = [ipaddress.ip_network(p["Subnet"], strict=False) for p in net.get("ipam") or ()]
    for key, version in (("IPv4Address", 4), ("IPv6Address", 6)):
        text = ipam.get(key) or ""
        if not text:
            continue
        addr = _ip(text, "IPv4 address" if version == 4 else "IPv6 address")
        if addr.version != version:
            raise UsageError(f"invalid endpoint config: {text} is not an IPv{version} address", exit_code=1)
        if net.get("predefined") or not subnets:
            raise UsageError("user specified IP address is supported only when connecting to networks with user "
                             "configured subnets", exit_code=1)
        if not any(addr in s for s in subnets):
            raise UsageError(f"Invalid address {text}: It does not belong to any of this network's subnets",
                             exit_code=1)
        out[key] = text
    local = ipam.get("LinkLocalIPs") or []
    if local:
        if not isinstance(local, list):
            raise UsageError("invalid endpoint config: LinkLocalIPs is a list of addresses", exit_code=1)
        for text in local:
            if not _ip(str(text), "link-local IP").is_link_local:
                raise UsageError(f"invalid endpoint config: {text} is not a link-local address", exit_code=1)
        out["LinkLocalIPs"] = [str(t) for t in local]
    return out


def endpoint(config, net: dict) -> dict:
    """A member's endpoint settings kept in its record (``EndpointConfig`` / ``EndpointsConfig[N]``):
    ``IPAMConfig``, ``Links`` (``NAME:ALIAS``), ``DriverOpts``, ``MacAddress``; only what was given."""
    from netstack.spec import check_mac
    config = config or {}
    out: dict = {}
    ipam = endpoint_ipam(config.get("IPAMConfig"), net)
    if ipam:
        out["IPAMConfig"] = ipam
    links = [str(x) for x in config.get("Links") or ()]
    if links:
        out["Links"] = [x if ":" in x else f"{x}:{x}" for x in links]
    opts = config.get("DriverOpts") or {}
    if not isinstance(opts, dict):
        raise UsageError("invalid endpoint config: DriverOpts is an object", exit_code=1)
    if opts:
        out["DriverOpts"] = {str(k): str(v) for k, v in opts.items()}
    mac = check_mac(config.get("MacAddress") or None)
    if mac:
        out["MacAddress"] = mac
    return out
