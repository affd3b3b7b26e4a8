"""User-defined networks as Docker users use them: ``network create``, ``run --network NAME``, and
containers reaching each other by name and alias (links made at each start), ``network
ls/inspect/rm/prune/connect/disconnect``. Real containers, real slirp4netns; traffic stays inside
the tests' own namespaces."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Rootless, one_error

pytestmark = pytest.mark.userns

SERVE = "mkdir -p /www && echo \"$MSG\" > /www/index.html && exec httpd -f -p 8080 -h /www"


def fetch_in(url: str) -> str:
    """A shell line for a client: wget ``url`` until it answers (the server may be starting)."""
    return f"(for i in $(seq 1 50); do wget -qO- {url} && exit 0; sleep 0.1; done; exit 1)"


def serve(rl: Rootless, name: str, msg: str, *flags: str) -> str:
    return rl("run", "-d", "--name", name, "--expose", "8080", "-e", f"MSG={msg}", *flags, "busybox", "sh", "-c",
              SERVE).out.strip()


def test_predefined_networks(busybox):
    out = busybox("network", "ls").out.splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1:] for line in out[1:]] == [["bridge", "bridge", "local"], ["host", "host", "local"],
                                                      ["none", "null", "local"]]
    got = json.loads(busybox("network", "inspect", "bridge", "host", "none").out)
    assert [(n["Name"], n["Driver"], n["Scope"]) for n in got] == [("bridge", "bridge", "local"),
                                                                  ("host", "host", "local"), ("none", "null", "local")]
    for name in ("bridge", "host", "none"):
        r = busybox("network", "rm", name, expect=1)
        one_error(r, f"{name} is a pre-defined network and cannot be removed")
    r = busybox("network", "create", "bridge", expect=1)
    one_error(r, "network with name bridge already exists")


def test_create_ls_inspect_rm(busybox):
    nid = busybox("network", "create", "--label", "tier=back", "app").out.strip()
    assert len(nid) == 64
    one_error(busybox("network", "create", "app", expect=1), "network with name app already exists")
    one_error(busybox("network", "create", "bad name", expect=1), "invalid network name")
    lines = busybox("network", "ls").out.splitlines()
    assert lines[1].split() == [nid[:12], "app", "bridge", "local"]
    assert busybox("network", "ls", "-q", "--filter", "label=tier=back").out.split() == [nid[:12]]
    assert busybox("network", "ls", "--filter", "name=ap", "--format", "{{.Name}} {{.Driver}} {{.Labels}}").out == \
        "app bridge tier=back\n"
    assert len(busybox("network", "ls", "-q", "--filter", "type=builtin").out.split()) == 3
    got = json.loads(busybox("network", "inspect", "app").out)[0]
    assert {k: got[k] for k in ("Name", "Id", "Scope", "Driver", "EnableIPv6", "Internal", "Attachable", "Labels",
                                "Containers", "Options")} == {
        "Name": "app", "Id": nid, "Scope": "local", "Driver": "bridge", "EnableIPv6": False, "Internal": False,
        "Attachable": False, "Labels": {"tier": "back"}, "Containers": {}, "Options": {}}
    assert got["IPAM"] == {"Driver": "default", "Options": {}, "Config": []}
    assert busybox("network", "inspect", "-f", "{{.Name}} {{.Scope}}", nid[:8]).out == "app local\n"
    r = busybox("network", "inspect", "app", "nope", expect=1)
    assert json.loads(r.out)[0]["Name"] == "app"
    one_error(r, "no such network: nope")
    assert busybox("network", "rm", "app").out == "app\n"
    one_error(busybox("network", "rm", "app", expect=1), "network app not found")
    assert busybox("network", "ls", "-q", "--filter", "type=custom").out == ""


def test_members_reach_each_other_by_name_and_alias(busybox):
    busybox("network", "create", "app")
    srv = serve(busybox, "srv", "hello from srv", "--network", "app", "--network-alias", "web")
    r = busybox("run", "--rm", "--network", "app", "busybox", "sh", "-c",
                fetch_in("http://srv:8080/") + " && wget -qO- http://web:8080/ && wget -qO- http://"
                + srv[:12] + ":8080/ && env")
    assert r.out.splitlines()[:3] == ["hello from srv"] * 3
    assert not any(line.startswith(("SRV_", "WEB_")) for line in r.out.splitlines())  # no link variables
    # not on the network: the name means nothing
    r = busybox("run", "--rm", "busybox", "sh", "-c", "wget -qO- http://srv:8080/; echo rc=$?")
    assert "bad address" in r.err + r.out and "rc=1" in r.out
    assert busybox("inspect", "-f", "{{.HostConfig.NetworkMode}}", "srv").out == "app\n"
    nets = json.loads(busybox("inspect", "-f", "{{json .NetworkSettings.Networks}}", "srv").out)
    nid = busybox("network", "inspect", "-f", "{{.Id}}", "app").out.strip()
    assert list(nets) == ["app"] and nets["app"]["NetworkID"] == nid and nets["app"]["Aliases"] == ["web"]
    members = json.loads(busybox("network", "inspect", "-f", "{{json .Containers}}", "app").out)
    assert list(members) == [srv] and members[srv]["Name"] == "srv"
    assert members[srv]["IPv4Address"] == "10.0.2.100/24"


def test_a_member_without_ports_answers_ping_by_name(busybox):
    """A fellow member that exposes no port still has its address (Docker's ``ping NAME`` works):
    the link namespace lives as long as the container, not only while a linked port is listened on."""
    busybox("network", "create", "pings")
    busybox("run", "-d", "--name", "quiet", "--network", "pings", "--network-alias", "q.alias", "busybox",
            "sleep", "300")
    out = busybox("run", "--rm", "--network", "pings", "busybox", "sh", "-c",
                  "ping -c1 -W5 quiet && ping -c1 -W5 q.alias").out
    assert out.count("1 packets received") == 2, out
    busybox("rm", "-f", "quiet")


def test_two_networks_and_a_stopped_member(busybox):
    """Each network's members only; a member that is not running is left out, silently."""
    busybox("network", "create", "front")
    busybox("network", "create", "back")
    serve(busybox, "api", "api here", "--network", "back")
    busybox("create", "--name", "idle", "--network", "back", "--expose", "8080", "busybox", "true")
    r = busybox("run", "--rm", "--network", "back", "busybox", "sh", "-c",
                fetch_in("http://api:8080/") + " && (grep -c idle /etc/hosts || true)")
    assert r.out.splitlines() == ["api here", "0"]
    r = busybox("run", "--rm", "--network", "front", "busybox", "sh", "-c", "wget -qO- http://api:8080/; echo rc=$?")
    assert "rc=1" in r.out


def test_rm_in_use_and_prune(busybox):
    busybox("network", "create", "app")
    busybox("network", "create", "unused")
    cid = busybox("create", "--name", "member", "--network", "app", "busybox", "true").out.strip()
    r = busybox("network", "rm", "app", expect=1)
    one_error(r, "error while removing network: network app has active endpoints", f'id:"{cid[:12]}"')
    assert busybox("network", "prune", "-f").out == "Deleted Networks:\nunused\n"
    busybox("rm", "member")  # removing the container takes it off the network
    assert busybox("network", "rm", "app").out == "app\n"


def test_unknown_network_is_refused_before_a_container_is_made(busybox):
    for cmd in ("run", "create"):
        r = busybox(cmd, "--network", "nope", "busybox", "true", expect=125)
        one_error(r, "network nope not found")
    r = busybox("run", "--network-alias", "x", "busybox", "true", expect=125)
    one_error(r, "network-scoped aliases are only supported for user-defined networks")
    assert busybox("ps", "-aq").out == ""


def test_connect_and_disconnect(busybox):
    busybox("network", "create", "app")
    serve(busybox, "srv", "connected")  # on the default network
    r = busybox("network", "connect", "--alias", "api", "app", "srv")
    assert "srv is running" in r.err  # it reaches the others from its next start
    one_error(busybox("network", "connect", "app", "srv", expect=1), "endpoint with name srv already exists")
    assert busybox("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "srv").out == \
        "app \n"
    r = busybox("run", "--rm", "--network", "app", "busybox", "sh", "-c",
                fetch_in("http://srv:8080/") + " && wget -qO- http://api:8080/")
    assert r.out == "connected\nconnected\n"
    busybox("network", "disconnect", "app", "srv")
    one_error(busybox("network", "disconnect", "app", "srv", expect=1), "is not connected to network app")
    r = busybox("run", "--rm", "--network", "app", "busybox", "sh", "-c", "wget -qO- http://api:8080/; echo rc=$?")
    assert "rc=1" in r.out
    one_error(busybox("network", "connect", "app", "nobody", expect=1), "No such container: nobody")


def test_a_restarted_member_reaches_those_started_before_it(busybox):
    busybox("network", "create", "app")
    busybox("run", "-d", "--name", "early", "--network", "app", "busybox", "sleep", "60")
    serve(busybox, "late", "late one", "--network", "app")
    # the embedded DNS server makes early's link to late when asked (it started before late)
    assert busybox("exec", "early", "sh", "-c", fetch_in("http://late:8080/")).out == "late one\n"
    assert "late" not in busybox("exec", "early", "cat", "/etc/hosts").out
    busybox("restart", "-t", "0", "early")  # then a link made at the start, in /etc/hosts too
    assert "late" in busybox("exec", "early", "cat", "/etc/hosts").out
    assert busybox("exec", "early", "sh", "-c", fetch_in("http://late:8080/")).out == "late one\n"


def test_internal_network(busybox):
    """Members reach each other by name, and nothing else (no slirp4netns: no route out)."""
    busybox("network", "create", "--internal", "inner")
    serve(busybox, "vault", "inside", "--network", "inner")
    r = busybox("run", "--rm", "--network", "inner", "busybox", "sh", "-c",
                fetch_in("http://vault:8080/") + " && ip route && ls /sys/class/net")
    lines = r.out.splitlines()
    assert lines[0] == "inside"
    assert not any(line.startswith("default") for line in lines)
    assert "tap0" not in lines
    assert busybox("network", "inspect", "-f", "{{.Internal}}", "inner").out == "true\n"
    assert busybox("network", "ls", "--filter", "name=inner", "--format", "{{.Internal}}").out == "true\n"


def test_subnet_gateway_and_ipv6_flags(busybox):
    """--subnet/--gateway/--ip-range are checked as Docker checks them and shown; --ipv6 gives the
    members slirp4netns' IPv6 (there is no bridge to give them addresses of the subnet)."""
    busybox("network", "create", "--ipv6", "--subnet", "10.5.0.0/16", "--gateway", "10.5.0.1", "--ip-range",
            "10.5.1.0/24", "--subnet", "2001:db8::/64", "six")
    got = json.loads(busybox("network", "inspect", "six").out)[0]
    assert got["EnableIPv6"] is True
    assert got["IPAM"]["Config"] == [{"Subnet": "10.5.0.0/16", "Gateway": "10.5.0.1", "IPRange": "10.5.1.0/24"},
                                     {"Subnet": "2001:db8::/64"}]
    r = busybox("run", "--rm", "--network", "six", "busybox", "sh", "-c",
                "for i in $(seq 1 50); do ip -6 addr show tap0 | grep -q 'inet6 fd00:' && break; sleep 0.2; done; "
                "ip -6 addr show tap0")
    assert "inet6 fd00:" in r.out
    one_error(busybox("network", "create", "--subnet", "10.6.0.0/16", "--gateway", "10.7.0.1", "bad", expect=1),
              "no matching subnet for gateway 10.7.0.1")
    one_error(busybox("network", "create", "--subnet", "2001:db8::/64", "bad", expect=1), "IPv6 is not enabled")
    one_error(busybox("network", "create", "--subnet", "10.6.0.0/33", "bad", expect=1), "invalid subnet")
    assert "bad" not in busybox("network", "ls", "--format", "{{.Name}}").out.split()


def test_run_ip_flags_are_checked_and_kept_as_network_connects(busybox):
    """``run --ip/--ip6/--link-local-ip`` on a user-defined network: checked against its subnets and
    kept in the endpoint's IPAMConfig, as ``network connect --ip`` keeps them (Docker's words where
    it refuses)."""
    busybox("network", "create", "--subnet", "10.9.0.0/16", "fixed")
    busybox("create", "--name", "pinned", "--network", "fixed", "--ip", "10.9.0.42", "--link-local-ip",
            "169.254.9.9", "busybox", "true")
    ep = json.loads(busybox("inspect", "-f", "{{json .NetworkSettings.Networks.fixed}}", "pinned").out)
    assert ep["IPAMConfig"] == {"IPv4Address": "10.9.0.42", "LinkLocalIPs": ["169.254.9.9"]}
    r = busybox("run", "--rm", "--ip", "10.0.2.50", "busybox", "true", expect=125)
    assert "user specified IP address is supported on user defined networks only" in r.err
    r = busybox("create", "--name", "bad", "--network", "fixed", "--ip", "not-an-ip", "busybox", "true", expect=125)
    assert "invalid IPv4 address not-an-ip" in r.err
    assert "bad" not in busybox("ps", "-a", "--format", "{{.Names}}").out.split()  # refused before it was made


def test_a_networks_subnet_is_its_members_slirp4netns_network(busybox):
    """A member of a network with an IPv4 subnet gets its slirp4netns in that subnet: its address
    is the subnet's .100 (inspect shows it, with the prefix), the gateway .2, the resolver .3;
    published ports and names work as on any network."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    busybox("network", "create", "--subnet", "172.28.0.0/16", "sub")
    serve(busybox, "srv", "in the subnet", "--network", "sub", "-p", f"127.0.0.1:{port}:8080")
    out = busybox("exec", "srv", "sh", "-c", "ip -4 addr show tap0; ip route; cat /etc/resolv.conf").out
    assert "inet 172.28.0.100/16" in out and "default via 172.28.0.2" in out and "nameserver 127.0.0.11" in out
    ep = json.loads(busybox("inspect", "-f", "{{json .NetworkSettings.Networks.sub}}", "srv").out)
    assert (ep["IPAddress"], ep["IPPrefixLen"], ep["Gateway"]) == ("172.28.0.100", 16, "172.28.0.2")
    (member,) = json.loads(busybox("network", "inspect", "sub").out)[0]["Containers"].values()
    assert member["IPv4Address"] == "172.28.0.100/16"
    r = busybox("run", "--rm", "--network", "sub", "busybox", "sh", "-c", fetch_in("http://srv:8080/"))
    assert r.out == "in the subnet\n"
    import urllib.request
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                assert resp.read() == b"in the subnet\n"
                break
        except OSError:
            import time
            time.sleep(0.1)
    else:
        pytest.fail("the published port did not answer")
    busybox("rm", "-f", "srv")
    one_error(busybox("network", "create", "--subnet", "10.0.0.0/16", "bad", expect=1),
              "slirp4netns cannot use the network 10.0.0.0/16: it overlaps 10.0.3.0/24")
    one_error(busybox("network", "create", "--subnet", "10.9.0.0/28", "bad", expect=1),
              "its prefix length must be 1 to 25")
