"""The generated ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` of a container."""

from __future__ import annotations

import os

from rootless.atomic import read_text

HOST_RESOLV = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"


def hosts_text(hostname: str, network: str, host_hosts: str = "") -> str:
    if network == "host":
        return host_hosts
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"127.0.1.1\t{hostname}",
    ]
    return "\n".join(lines) + "\n"


def resolv_text(host_resolv: str, network: str) -> str:
    """Docker's rule: the host's file, without loopback name servers unless the network is the host's."""
    if network == "host":
        return host_resolv
    out = []
    for line in host_resolv.splitlines():
        fields = line.split()
        if fields[:1] == ["nameserver"] and len(fields) > 1 and (
                fields[1].startswith("127.") or fields[1] == "::1"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"



def write(directory: str, hostname: str, network: str) -> dict[str, str]:
    """Write the three files into ``directory``; container path -> host path."""
    files = {
        "/etc/hostname": hostname + "\n",
        "/etc/hosts": hosts_text(hostname, network, read_text(HOST_HOSTS)),
        "/etc/resolv.conf": resolv_text(read_text(HOST_RESOLV), network),
    }
    out = {}
    for cpath, text in files.items():
        host = os.path.join(directory, os.path.basename(cpath))
        with open(host, "w") as f:  # a fresh private runtime directory: nothing to make atomic
            f.write(text)
        out[cpath] = host
    return out
