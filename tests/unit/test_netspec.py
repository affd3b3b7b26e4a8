"""Tests for the network flags as data: netstack.spec, netstack.links (env, hosts), netstack.slirp (argv)."""

import pytest

from netstack import links, slirp
from netstack import spec as ns
from netstack.spec import PortMapping as P
from rootless.base.errors import UsageError


@pytest.mark.parametrize("text, expected", [
    ("80", [P("", 0, 0, 80, "tcp")]),
    ("8080:80", [P("", 8080, 8080, 80, "tcp")]),
    ("8080:80/udp", [P("", 8080, 8080, 80, "udp")]),
    ("8080:80/UDP", [P("", 8080, 8080, 80, "udp")]),
    ("127.0.0.1:8080:80", [P("127.0.0.1", 8080, 8080, 80, "tcp")]),
    ("127.0.0.1::80", [P("127.0.0.1", 0, 0, 80, "tcp")]),
    ("[::1]:8080:80", [P("::1", 8080, 8080, 80, "tcp")]),
    ("[::1]::80/udp", [P("::1", 0, 0, 80, "udp")]),
    ("[::]:80", [P("::", 0, 0, 80, "tcp")]),
    ("8000-8002:80-82", [P("", 8000, 8000, 80, "tcp"), P("", 8001, 8001, 81, "tcp"), P("", 8002, 8002, 82, "tcp")]),
    ("8000-8010:80", [P("", 8000, 8010, 80, "tcp")]),
    ("80-81", [P("", 0, 0, 80, "tcp"), P("", 0, 0, 81, "tcp")]),
    ("0.0.0.0:1:65535", [P("0.0.0.0", 1, 1, 65535, "tcp")]),
])
def test_parse_publish(text, expected):
    assert ns.parse_publish(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "invalid container port"), ("0", "invalid container port"), ("65536", "invalid container port"),
    ("x:80", "invalid host port"), ("8080:80/sctp", "invalid protocol"), ("1.2.3:8080:80", "invalid IP"),
    ("8000-8001:80-82", "differ in length"), ("90-80", "range"), ("a:b:c:d", "invalid port mapping"),
    ("[::1:8080:80", "invalid port mapping"), ("::1:8080:80", "invalid port mapping"),
    ("8080:", "invalid container port"),
])
def test_parse_publish_refused(text, message):
    with pytest.raises(UsageError, match=message):
        ns.parse_publish(text)


@pytest.mark.parametrize("text, expected", [
    ("80", ["80/tcp"]), ("53/udp", ["53/udp"]), ("8000-8002", ["8000/tcp", "8001/tcp", "8002/tcp"]),
])
def test_parse_expose(text, expected):
    assert ns.parse_expose(text) == expected


def test_exposed_ports_union_sorted():
    got = ns.exposed_ports({"443/tcp": {}, "53/udp": {}, "53": {}}, ("80", "8000-8001/udp"),
                           (P("", 0, 0, 53, "tcp"), P("", 1, 1, 9, "udp")))
    assert got == ["9/udp", "53/tcp", "53/udp", "80/tcp", "443/tcp", "8000/udp", "8001/udp"]


@pytest.mark.parametrize("text, expected", [
    ("db", ("db", "db")), ("db:database", ("db", "database")), ("/db:x", ("db", "x")),
])
def test_parse_link(text, expected):
    assert tuple(ns.parse_link(text)) == expected


@pytest.mark.parametrize("text", ["", ":alias", "db:bad alias", "db:a/b"])
def test_parse_link_refused(text):
    with pytest.raises(UsageError):
        ns.parse_link(text)


@pytest.mark.parametrize("text, expected", [
    ("h:1.2.3.4", ("h", "1.2.3.4")), ("h=1.2.3.4", ("h", "1.2.3.4")), ("h:::1", ("h", "::1")),
    ("h:[2001:db8::1]", ("h", "2001:db8::1")), ("h:host-gateway", ("h", "host-gateway")),
])
def test_parse_add_host(text, expected):
    assert ns.parse_add_host(text) == expected


@pytest.mark.parametrize("text", ["h", "h:", ":1.2.3.4", "h:999.1.1.1", "h:name"])
def test_parse_add_host_refused(text):
    with pytest.raises(UsageError):
        ns.parse_add_host(text)


def test_network_options():
    m = ns.parse_network("slirp4netns:allow_host_loopback=true,port_handler=slirp4netns,mtu=1500")
    assert m.kind == "slirp4netns"
    assert m.options == {"allow_host_loopback": True, "port_handler": "slirp4netns", "mtu": 1500,
                         "enable_ipv6": False}
    assert ns.parse_network("slirp4netns").options["port_handler"] == "builtin"
    assert ns.parse_network("container:web") == ns.NetworkMode("container", {}, "web")


@pytest.mark.parametrize("mac, ok", [("02:42:ac:11:00:02", True), ("02:42:AC:11:00:02", True),
                                     ("01:42:ac:11:00:02", False), ("02:42:ac:11:00", False),
                                     ("zz:42:ac:11:00:02", False)])
def test_check_mac(mac, ok):
    if ok:
        assert ns.check_mac(mac) == mac.lower()
    else:
        with pytest.raises(UsageError):
            ns.check_mac(mac)


def test_format_port():
    assert ns.format_port({"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "proto": "tcp"}) \
        == "0.0.0.0:8080->80/tcp"
    assert ns.format_port({"host_ip": "::1", "host_port": 5353, "container_port": 53, "proto": "udp"}) \
        == "[::1]:5353->53/udp"


# ---- links: Docker's environment variables ----------------------------------------------------
def link(ports, env=(), alias="db"):
    return links.LinkPlan("10.0.3.2", alias, "mydb", "f" * 64, "/run/x", tuple(ports), tuple(env))


def test_link_env_one_port():
    env = links.link_env("web", link(["5432/tcp"], ["PATH=/bin", "HOME=/root", "POSTGRES_DB=app", "EMPTY="]))
    assert env == [
        "DB_PORT=tcp://10.0.3.2:5432",
        "DB_PORT_5432_TCP=tcp://10.0.3.2:5432",
        "DB_PORT_5432_TCP_ADDR=10.0.3.2",
        "DB_PORT_5432_TCP_PORT=5432",
        "DB_PORT_5432_TCP_PROTO=tcp",
        "DB_NAME=/web/db",
        "DB_ENV_POSTGRES_DB=app",
        "DB_ENV_EMPTY=",
    ]


def test_link_env_range_and_udp_and_alias_dashes():
    env = links.link_env("web", link(["8002/tcp", "8000/tcp", "8001/tcp", "53/udp", "53/tcp"], alias="my-db"))
    assert env[0] == "MY_DB_PORT=tcp://10.0.3.2:53"  # the lowest port, tcp before udp
    assert env[1:9] == [
        "MY_DB_PORT_53_TCP=tcp://10.0.3.2:53", "MY_DB_PORT_53_TCP_ADDR=10.0.3.2", "MY_DB_PORT_53_TCP_PORT=53",
        "MY_DB_PORT_53_TCP_PROTO=tcp",
        "MY_DB_PORT_53_UDP=udp://10.0.3.2:53", "MY_DB_PORT_53_UDP_ADDR=10.0.3.2", "MY_DB_PORT_53_UDP_PORT=53",
        "MY_DB_PORT_53_UDP_PROTO=udp",
    ]
    assert "MY_DB_PORT_8000_TCP_START=tcp://10.0.3.2:8000" in env
    assert "MY_DB_PORT_8000_TCP_PORT_START=8000" in env
    assert "MY_DB_PORT_8000_TCP_END=tcp://10.0.3.2:8002" in env
    assert "MY_DB_PORT_8000_TCP_PORT_END=8002" in env
    assert env.index("MY_DB_PORT_8002_TCP_PROTO=tcp") < env.index("MY_DB_PORT_8000_TCP_START=tcp://10.0.3.2:8000")
    assert env[-1] == "MY_DB_NAME=/web/my-db"


def test_link_env_without_ports():
    assert links.link_env("web", link([])) == ["DB_NAME=/web/db"]


def test_link_hosts_entries():
    assert links.hosts_entries([link([]), link([], alias="mydb")]) == [
        ("10.0.3.2", f"db {'f' * 12} mydb"), ("10.0.3.2", f"mydb {'f' * 12}")]
    assert [links.address(i) for i in range(3)] == ["10.0.3.2", "10.0.3.3", "10.0.3.4"]


# ---- slirp4netns: probe and command line ---------------------------------------------------------
HELP = """Usage: slirp4netns [OPTION]... PID|PATH [TAPNAME]
-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--enable-sandbox         create a new mount namespace
--enable-seccomp         enable seccomp to limit syscalls (experimental)
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
"""
VERSION = "slirp4netns version 1.2.0\ncommit: 656041d\nlibslirp: 4.7.0\nSLIRP_CONFIG_VERSION_MAX: 4\n"


def test_parse_probe():
    f = slirp.parse_probe("/usr/bin/slirp4netns", VERSION, HELP)
    assert (f.version, f.libslirp) == ("1.2.0", "4.7.0")
    assert {"configure", "exit-fd", "ready-fd", "disable-host-loopback", "enable-sandbox", "enable-seccomp",
            "macaddress"} <= set(f.options)


def test_argv_full():
    f = slirp.parse_probe("/usr/bin/slirp4netns", VERSION, HELP)
    argv = slirp.argv(f, "/proc/7/ns/net", 5, 6, "/proc/self/fd/9/s.sock", {"mtu": 65520}, "02:00:00:00:00:01")
    assert argv == ["/usr/bin/slirp4netns", "--configure", "--mtu=65520", "--ready-fd=5", "--exit-fd=6",
                    "--api-socket=/proc/self/fd/9/s.sock", "--disable-host-loopback", "--enable-sandbox",
                    "--enable-seccomp", "--macaddress=02:00:00:00:00:01", "--netns-type=path", "/proc/7/ns/net",
                    "tap0"]


def test_argv_host_loopback_and_old_slirp():
    old = slirp.parse_probe("/bin/slirp4netns", "slirp4netns version 0.4.0\n",
                            "--configure --exit-fd --ready-fd --disable-host-loopback")
    argv = slirp.argv(old, "/p", 3, 4, "/s", {"allow_host_loopback": True, "mtu": 1500}, None)
    assert "--disable-host-loopback" not in argv and "--enable-sandbox" not in argv and "--mtu=1500" in argv
    with pytest.raises(Exception, match="MAC"):
        slirp.argv(old, "/p", 3, 4, "/s", {}, "02:00:00:00:00:01")
    older = slirp.parse_probe("/bin/slirp4netns", "", "--configure --exit-fd --ready-fd")
    with pytest.raises(Exception, match="loopback"):
        slirp.argv(older, "/p", 3, 4, "/s", {}, None)


def test_slirp_log_tail_is_one_informative_line(tmp_path):
    (tmp_path / slirp.LOG).write_text('open("/dev/net/tun"): Permission denied\n'
                                      "WARNING: Support for seccomp is experimental\nchild failed(1)\n"
                                      "WARNING: Support for seccomp is experimental\n")
    proc = object.__new__(slirp.Slirp)
    proc.run_dir = str(tmp_path)
    assert proc.log_tail() == 'open("/dev/net/tun"): Permission denied; child failed(1)'
    (tmp_path / slirp.LOG).write_text("")
    assert proc.log_tail() == "no message"


@pytest.mark.parametrize("text, cidr", [
    ("slirp4netns:cidr=172.28.0.0/16", "172.28.0.0/16"),
    ("slirp4netns:cidr=10.5.7.9/24", "10.5.7.0/24"),
    ("slirp4netns:cidr=192.168.0.0/25,enable_ipv6=true", "192.168.0.0/25"),
])
def test_slirp_cidr_option(text, cidr):
    assert ns.parse_network(text).options["cidr"] == cidr


@pytest.mark.parametrize("text, message", [
    ("slirp4netns:cidr=nope", "takes an IPv4 network"),
    ("slirp4netns:cidr=2001:db8::/64", "takes an IPv4 network"),
    ("slirp4netns:cidr=10.9.0.0/28", "prefix length must be 1 to 25"),
    ("slirp4netns:cidr=10.0.0.0/16", "overlaps 10.0.3.0/24"),
    ("slirp4netns:cidr=127.1.0.0/16", "overlaps 127.0.0.0/8"),
])
def test_slirp_cidr_refused(text, message):
    with pytest.raises(UsageError, match=message):
        ns.parse_network(text)


def test_slirp_addresses_and_argv_in_a_chosen_network():
    assert slirp.addresses({}) == ("10.0.2.100", "10.0.2.2", "10.0.2.3", 24)
    assert slirp.addresses({"cidr": "172.28.0.0/16"}) == ("172.28.0.100", "172.28.0.2", "172.28.0.3", 16)
    f = slirp.parse_probe("/usr/bin/slirp4netns", VERSION, HELP + "\n  --cidr=CIDR  specify network address CIDR")
    assert "--cidr=172.28.0.0/16" in slirp.argv(f, "/p", 3, 4, "/s", {"cidr": "172.28.0.0/16"}, None)
    old = slirp.parse_probe("/bin/slirp4netns", "", "--configure --exit-fd --ready-fd --disable-host-loopback")
    with pytest.raises(Exception, match="--cidr"):
        slirp.argv(old, "/p", 3, 4, "/s", {"cidr": "172.28.0.0/16"}, None)
