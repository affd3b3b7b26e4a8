"""Network flags as data: ``--network``, ``-p``, ``--expose``, ``--link``, ``--add-host``, ``--dns``, MAC.

Every function here is pure: text in, namedtuples out, ``UsageError`` (exit 125) for bad input.
"""

from __future__ import annotations

from collections import namedtuple

from rootless.base.errors import UsageError

# host_port 0: any free port; host_end: the last port of a host range (== host_port otherwise).
PortMapping = namedtuple("PortMapping", "host_ip host_port host_end container_port proto")
# kind: slirp4netns | none | host | container; options: slirp4netns's (a dict); container: name or id.
NetworkMode = namedtuple("NetworkMode", "kind options container")
Link = namedtuple("Link", "name alias")

SLIRP_OPTIONS = {"allow_host_loopback": bool, "port_handler": ("builtin", "slirp4netns"), "mtu": int,
                 "enable_ipv6": bool, "cidr": str}
LINK_NETWORK = "10.0.3.0/24"  # netstack.links' addresses: a slirp4netns network must stay clear of them
DEFAULT_NETWORK = "slirp4netns"
PROTOS = ("tcp", "udp")


def parse_network(text: str) -> NetworkMode:
    """``slirp4netns[:opt=v,...]``, ``none``, ``host``, ``container:NAME|ID`` (``bridge`` and ``default``
    mean slirp4netns, as Podman reads them for a rootless user)."""
    kind, _, rest = text.partition(":")
    if kind in ("bridge", "default", "private", ""):
        kind = DEFAULT_NETWORK
    if kind in ("none", "host"):
        if rest:
            raise UsageError(f"network {kind!r} takes no options: {text!r}")
        return NetworkMode(kind, {}, None)
    if kind == "container":
        if not rest:
            raise UsageError("--network container: needs a container name or id", "--network container:NAME")
        return NetworkMode("container", {}, rest)
    if kind != "slirp4netns":
        raise UsageError(f"network {text!r} not found",
                         "use slirp4netns[:options], none, host or container:NAME")
    options = {"allow_host_loopback": False, "port_handler": "builtin", "mtu": 65520, "enable_ipv6": False}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        want = SLIRP_OPTIONS.get(key)
        if want is None or not eq:
            raise UsageError(f"unknown slirp4netns option {item!r}",
                             "known: " + ", ".join(f"{k}=..." for k in SLIRP_OPTIONS))
        if want is bool:
            if value not in ("true", "false"):
                raise UsageError(f"slirp4netns option {key} takes true or false, not {value!r}")
            options[key] = value == "true"
        elif want is str:
            options[key] = check_cidr(value)
        elif want is int:
            if not value.isdigit() or not 68 <= int(value) <= 65521:
                raise UsageError(f"slirp4netns option mtu takes a number from 68 to 65521, not {value!r}")
            options[key] = int(value)
        else:
            if value not in want:
                raise UsageError(f"slirp4netns option {key} takes {' or '.join(want)}, not {value!r}")
            options[key] = value
    return NetworkMode("slirp4netns", options, None)


def check_cidr(text: str) -> str:
    """slirp4netns' ``cidr``: an IPv4 network of prefix 1 to 25 (it takes .2, .3 and .100 of it),
    clear of loopback and of the link network; normalised (``10.5.7.0/16`` is ``10.5.0.0/16``)."""
    import ipaddress
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise UsageError(f"slirp4netns option cidr takes an IPv4 network (such as 10.5.0.0/16), not {text!r}") \
            from None
    if not 1 <= net.prefixlen <= 25:
        raise UsageError(f"slirp4netns cannot use the network {text}: its prefix length must be 1 to 25")
    for other, what in ((LINK_NETWORK, "the network rootless links containers on"), ("127.0.0.0/8", "loopback")):
        if net.overlaps(ipaddress.IPv4Network(other)):
            raise UsageError(f"slirp4netns cannot use the network {text}: it overlaps {other} ({what})",
                             "choose another subnet")
    return str(net)


def _port(text: str, what: str, given: str | None = None) -> int:
    """A port number; the error quotes what the user typed (``given``: the whole of it)."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise UsageError(f"invalid {what} port {given if given is not None else repr(text)} "
                         "(a number from 1 to 65535)")
    return int(text)


def _range(text: str, what: str, spec: str | None = None) -> tuple[int, int]:
    """``PORT`` or ``FIRST-LAST``; ``spec``, the whole flag value, is quoted in errors."""
    given = repr(text) if spec is None or spec == text else f"{text!r} in {spec!r}"
    first, dash, last = text.partition("-")
    lo = _port(first, what, given)
    hi = _port(last, what, given) if dash else lo
    if hi < lo:
        raise UsageError(f"invalid {what} port range {given}")
    return lo, hi


def _ip(text: str) -> str:
    import ipaddress  # only when an address is given: it costs milliseconds
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"invalid IP address {text!r} in a port mapping") from None


def parse_publish(text: str) -> list[PortMapping]:
    """``-p [IP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/tcp|/udp]``; IPv6 hosts in brackets."""
    body, slash, proto = text.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in PROTOS:
        raise UsageError(f"invalid protocol {proto!r} in {text!r}", "use tcp or udp")
    host_ip = ""
    if body.startswith("["):
        addr, bracket, body = body[1:].partition("]")
        if not bracket or not body.startswith(":"):
            raise UsageError(f"invalid port mapping {text!r}", "IPv6 addresses go in brackets: [::1]:8080:80")
        host_ip = _ip(addr)
        body = body[1:]
        parts = body.split(":")
        if len(parts) == 1:
            parts = ["", parts[0]]
        if len(parts) != 2:
            raise UsageError(f"invalid port mapping {text!r}")
    else:
        parts = body.split(":")
        if len(parts) == 3:
            host_ip = _ip(parts[0]) if parts[0] else ""
            parts = parts[1:]
        elif len(parts) == 1:
            parts = ["", parts[0]]
        elif len(parts) != 2:
            raise UsageError(f"invalid port mapping {text!r}",
                             "use [IP:][HOSTPORT:]CONTAINERPORT[/PROTO], IPv6 addresses in brackets")
    host, cont = parts
    c_lo, c_hi = _range(cont, "container", text)
    if not host:
        return [PortMapping(host_ip, 0, 0, p, proto) for p in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _range(host, "host", text)
    if c_lo == c_hi:  # one container port: any free host port of the range
        return [PortMapping(host_ip, h_lo, h_hi, c_lo, proto)]
    if h_hi - h_lo != c_hi - c_lo:
        raise UsageError(f"invalid port mapping {text!r}: the host and container ranges differ in length")
    return [PortMapping(host_ip, h_lo + i, h_lo + i, c_lo + i, proto) for i in range(c_hi - c_lo + 1)]


def parse_expose(text: str) -> list[str]:
    """``--expose PORT[-END][/PROTO]`` -> ``["80/tcp", ...]``."""
    body, slash, proto = text.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in PROTOS:
        raise UsageError(f"invalid protocol {proto!r} in --expose {text!r}")
    lo, hi = _range(body, "exposed")
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def exposed_ports(image_exposed: dict | None, expose: tuple[str, ...], publish: tuple[PortMapping, ...]) -> list[str]:
    """Docker's ExposedPorts: the image's, ``--expose``'d and published ports, sorted by number."""
    ports = dict.fromkeys(image_exposed or {})
    for text in expose:
        ports.update(dict.fromkeys(parse_expose(text)))
    for m in publish:
        ports[f"{m.container_port}/{m.proto}"] = None
    norm = {}
    for key in ports:
        num, _, proto = key.partition("/")
        if num.isdigit():
            norm[f"{int(num)}/{proto or 'tcp'}"] = None
    return sorted(norm, key=lambda k: (int(k.split("/")[0]), k))


def parse_link(text: str) -> Link:
    name, _, alias = text.partition(":")
    name = name.lstrip("/")
    if not name:
        raise UsageError(f"invalid --link {text!r}", "use --link NAME[:ALIAS]")
    alias = alias or name
    if not all(c.isalnum() or c in "_.-" for c in alias):
        raise UsageError(f"invalid link alias {alias!r}", "an alias takes letters, digits, '_', '.' and '-'")
    return Link(name, alias)


def parse_add_host(text: str) -> tuple[str, str]:
    """``--add-host HOST:IP`` (or ``HOST=IP``; IP may be IPv6 or ``host-gateway``)."""
    sep = "=" if "=" in text else ":"
    host, _, ip = text.partition(sep)
    if not host or not ip:
        raise UsageError(f"invalid --add-host {text!r}", "use --add-host HOST:IP")
    if ip != "host-gateway":
        import ipaddress
        try:
            ip = str(ipaddress.ip_address(ip.strip("[]")))
        except ValueError:
            raise UsageError(f"invalid IP address {ip!r} in --add-host {text!r}") from None
    return host, ip


def check_dns(servers: tuple[str, ...]) -> tuple[str, ...]:
    if not servers:
        return ()
    import ipaddress
    out = []
    for s in servers:
        try:
            out.append(str(ipaddress.ip_address(s)))
        except ValueError:
            raise UsageError(f"invalid --dns address {s!r}", "give the name server's IP address") from None
    return tuple(out)


def check_mac(mac: str | None) -> str | None:
    if not mac:
        return None
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise UsageError(f"invalid MAC address {mac!r}", "use six hex pairs: 02:42:ac:11:00:02")
    if int(parts[0], 16) & 1:
        raise UsageError(f"invalid MAC address {mac!r}: it is a multicast address")
    return mac.lower()


def format_port(m: dict) -> str:
    """``0.0.0.0:8080->80/tcp`` (ps's PORTS column)."""
    ip = m["host_ip"]
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{m['host_port']}->{m['container_port']}/{m['proto']}"
