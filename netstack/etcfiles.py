"""The generated ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` of a container."""

from __future__ import annotations

import os

from rootless.base.atomic import read_text

HOST_RESOLV = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"


def hosts_text(hostname: str, network: str, host_hosts: str = "", name: str = "", own_ip: str | None = None,
               extra: tuple = ()) -> str:
    """Docker's layout: localhost and the IPv6 names, then ``--add-host`` and link entries
    (``extra``: (address, names) pairs), then the container's own address with its hostname
    and name. ``own_ip`` None: no address of its own (``none``), 127.0.1.1 stands in."""
    if network == "host":
        return host_hosts + "".join(f"{ip}\t{names}\n" for ip, names in extra)
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    lines += [f"{ip}\t{names}" for ip, names in extra]
    own = " ".join(dict.fromkeys(n for n in (hostname, name) if n))
    lines.append(f"{own_ip or '127.0.1.1'}\t{own}")
    return "\n".join(lines) + "\n"


def resolv_text(host_resolv: str, network: str, dns: tuple = (), search: tuple = (), options: tuple = (),
                resolver: str | None = None) -> str:
    """Docker's rule: the host's file, without loopback name servers unless the network is the
    host's; ``resolver`` (slirp4netns's built-in one) replaces the host's name servers; ``--dns``,
    ``--dns-search`` (``.``: none) and ``--dns-option`` replace their kind of line."""
    out = []
    for line in host_resolv.splitlines():
        fields = line.split()
        key = fields[0] if fields else ""
        if key == "nameserver" and (dns or resolver or (network != "host" and len(fields) > 1 and (
                fields[1].startswith("127.") or fields[1] == "::1"))):
            continue
        if key in ("search", "domain") and search:
            continue
        if key == "options" and options:
            continue
        out.append(line)
    servers = list(dns) or ([resolver] if resolver else [])
    out += [f"nameserver {s}" for s in servers]
    if search and list(search) != ["."]:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    if network == "host" and not (dns or search or options):
        return host_resolv
    return "\n".join(out) + "\n"


def embedded_options(host_resolv: str, options: tuple = ()) -> tuple[str, ...]:
    """The ``options`` of a resolv.conf naming the embedded DNS server: ``--dns-option``, or the
    host's, with Docker's ``ndots:0`` unless an ``ndots`` is given."""
    if not options:
        options = tuple(word for line in host_resolv.splitlines() if line.split()[:1] == ["options"]
                        for word in line.split()[1:])
    if not any(o.startswith("ndots:") for o in options):
        options = (*options, "ndots:0")
    return tuple(options)


def write(directory: str, files: dict[str, str]) -> dict[str, str]:
    """Write ``{container path: text}`` into ``directory``; container path -> host path."""
    out = {}
    for cpath, text in files.items():
        host = os.path.join(directory, os.path.basename(cpath))
        with open(host, "w") as f:  # a fresh private runtime directory: nothing to make atomic
            f.write(text)
        out[cpath] = host
    return out


def host_files() -> tuple[str, str]:
    """The host's /etc/hosts and /etc/resolv.conf."""
    return read_text(HOST_HOSTS), read_text(HOST_RESOLV)
