"""Networking as users see it: slirp4netns, published ports (both forwarders), links, container: mode.

Real slirp4netns, real sockets. Traffic stays on 127.0.0.1 and inside the tests' own
namespaces; no container reaches out anywhere else.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import Rootless, status, wait_for
from tests.servers import Server, serve

pytestmark = pytest.mark.userns

HTTPD = "mkdir -p /www && echo \"$MSG\" > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


@pytest.fixture(params=["builtin", "slirp4netns"])
def fwd(request) -> str:
    """The --network value for each port forwarder: one shared suite runs against both."""
    return f"slirp4netns:port_handler={request.param}"


def record(rl: Rootless, ref: str) -> dict:
    cid = rl("inspect", "-f", "{{.Id}}", ref).out.strip()
    with open(rl.root / "containers" / cid / "container.json") as f:
        return json.load(f)


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def fetch_eventually(url: str) -> str:
    def attempt():
        try:
            return fetch(url)
        except OSError:
            return None
    return wait_for(attempt, what=f"{url} to answer")


def host_port(rl: Rootless, ref: str, port: str) -> int:
    line = rl("port", ref, port).out.splitlines()[0]
    return int(line.rsplit(":", 1)[1])


def helpers_of(keeper: int) -> list[int]:
    """Processes whose parent is the keeper (slirp4netns, the relay, fuse-overlayfs...)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == keeper:
                out.append(int(d))
    return out


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# ---- published ports: the same suite for both forwarders -------------------------------------
def test_published_httpd_is_fetched_from_the_host(bb, fwd):
    bb("run", "-d", "--name", "web", "--network", fwd, "-e", "MSG=hello from web", "-p", "127.0.0.1::80",
       "busybox", "sh", "-c", HTTPD)
    port = host_port(bb, "web", "80")
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "hello from web\n"
    assert bb("port", "web").out == f"80/tcp -> 127.0.0.1:{port}\n"
    assert bb("port", "web", "80/tcp").out == f"127.0.0.1:{port}\n"
    assert bb("ps", "--format", "{{.Ports}}").out.strip() == f"127.0.0.1:{port}->80/tcp"
    ports = json.loads(bb("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web").out)
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    r = bb("port", "web", "81", expect=1)
    assert "no public port '81/tcp' published for web" in r.err
    bb("rm", "-f", "web")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this host has no IPv6 loopback")
def test_ipv6_host_addresses(bb):
    """The built-in forwarder: [::1] explicitly, and the default binding answers on both families."""
    bb("run", "-d", "--name", "web", "-e", "MSG=six", "-p", "[::1]::80", "-p", "::80",
       "busybox", "sh", "-c", HTTPD)
    lines = sorted(bb("port", "web").out.splitlines())
    assert lines[0].startswith("80/tcp -> 0.0.0.0:") and lines[1].startswith("80/tcp -> [::1]:")
    both = int(lines[0].rsplit(":", 1)[1])
    v6 = int(lines[1].rsplit(":", 1)[1])
    assert fetch_eventually(f"http://[::1]:{v6}/") == "six\n"
    assert fetch(f"http://[::1]:{both}/") == "six\n"
    assert fetch(f"http://127.0.0.1:{both}/") == "six\n"
    bb("rm", "-f", "web")
    r = bb("run", "--rm", "--network", "slirp4netns:port_handler=slirp4netns", "-p", "[::1]::80", "busybox", "true",
           expect=125)
    assert "cannot publish on an IPv6 host address" in r.err


def test_port_ranges(bb, fwd):
    """A container range gets one free host port each; a host range for one port takes a free one."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        first = taken.getsockname()[1]
        if first > 65500:
            pytest.skip("no room for a range above the taken port")
        bb("run", "-d", "--name", "r", "--network", fwd, "-e", "MSG=range", "-p", "127.0.0.1::80-81",
           "-p", f"127.0.0.1:{first}-{first + 20}:80", "busybox", "sh", "-c", HTTPD)
        lines = bb("port", "r").out.splitlines()
        assert [ln.split(" -> ")[0] for ln in lines] == ["80/tcp", "80/tcp", "81/tcp"]
        in_range = [int(ln.rsplit(":", 1)[1]) for ln in lines if ln.startswith("80/tcp")]
        assert any(first < p <= first + 20 for p in in_range)  # the taken first port was skipped
        for p in in_range:
            assert fetch_eventually(f"http://127.0.0.1:{p}/") == "range\n"
    bb("rm", "-f", "r")


def test_publish_all_publishes_exposed_ports(bb, fwd):
    bb("run", "-d", "--name", "web", "--network", fwd, "-P", "--expose", "80", "--expose", "7000-7001/udp",
       "-e", "MSG=all", "busybox", "sh", "-c", HTTPD)
    lines = bb("port", "web").out.splitlines()
    assert [ln.split(" -> ")[0] for ln in lines] == ["80/tcp", "7000/udp", "7001/udp"]
    port = host_port(bb, "web", "80")
    assert port >= 1024
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "all\n"
    bb("rm", "-f", "web")


# A script's first lines: into the user and network namespaces of the process argv[1].
IN_NETNS = r"""
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
for ns, flag in (("user", 0x10000000), ("net", 0x40000000)):
    fd = os.open(f"/proc/{sys.argv[1]}/ns/{ns}", os.O_RDONLY)
    if libc.setns(fd, flag):
        raise OSError(ctypes.get_errno(), "setns " + ns)
"""

UDP_ECHO = IN_NETNS + r"""
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(data.upper(), addr)
"""


def test_udp_echo_through_a_published_port(bb, fwd):
    """busybox has no UDP server: the echo server joins the container's network namespace.
    slirp4netns's forwarder sends the replies to a loopback client from 10.0.2.2, the host's
    loopback as the container sees it: without allow_host_loopback they are dropped (we warn)."""
    if fwd.endswith("slirp4netns"):
        r = bb("run", "--rm", "--network", fwd, "-p", "127.0.0.1::9999/udp", "busybox", "true")
        assert "drops UDP replies" in r.err and "allow_host_loopback=true" in r.err
        fwd += ",allow_host_loopback=true"
    r = bb("run", "-d", "--name", "u", "--network", fwd, "-p", "127.0.0.1::9999/udp", "busybox", "sleep", "60")
    assert r.err == ""
    port = host_port(bb, "u", "9999/udp")
    keeper = record(bb, "u")["state"]["keeper"]
    server = subprocess.Popen([sys.executable, "-c", UDP_ECHO, str(keeper), "9999"], stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"ready\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(0.5)

            def echoed():
                c.sendto(b"ping", ("127.0.0.1", port))
                try:
                    return c.recvfrom(100)[0]
                except TimeoutError:
                    return None
            assert wait_for(echoed, what="the UDP echo") == b"PING"
    finally:
        server.kill()
        server.wait()
        bb("rm", "-f", "u")


def test_port_is_free_for_the_next_run_at_once(bb, fwd):
    port = free_port()
    for _ in range(3):
        bb("run", "--rm", "--network", fwd, "-p", f"127.0.0.1:{port}:80", "busybox", "true")


def test_port_in_use_is_a_clear_error_and_nothing_runs(bb, fwd):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = bb("run", "--rm", "--network", fwd, "-p", f"127.0.0.1:{port}:80", "busybox", "true", expect=125)
        assert "already in use" in r.err and f"{port}" in r.err
        assert len(r.err.strip().splitlines()) == 2  # error and hint, no traceback
        assert bb("ps", "-aq").out == ""  # --rm: nothing left
        r = bb("run", "-d", "--name", "kept", "--network", fwd, "-p", f"127.0.0.1:{port}:80", "busybox", "sleep",
               "60", expect=125)
        assert status(bb, "kept") == "created"  # as Docker: created, not started


def test_privileged_host_port_is_refused_with_the_fix(bb, fwd):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start <= 80:
        pytest.skip(f"this host lets anyone bind port 80 (ip_unprivileged_port_start={start})")
    r = bb("run", "--rm", "--network", fwd, "-p", "80:80", "busybox", "true", expect=125)
    assert "privileged" in r.err and "ip_unprivileged_port_start" in r.err


def test_restart_rebinds_the_published_port(bb, fwd):
    port = free_port()
    bb("run", "-d", "--name", "web", "--network", fwd, "-e", "MSG=again", "-p", f"127.0.0.1:{port}:80",
       "busybox", "sh", "-c", HTTPD)
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "again\n"
    bb("stop", "-t", "1", "web")
    assert port_is_free(port)  # at once: stop returns when the container is recorded stopped
    assert bb("port", "web").out == ""
    bb("start", "web")
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "again\n"
    bb("restart", "-t", "1", "web")
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "again\n"
    bb("rm", "-f", "web")


@pytest.mark.parametrize("how", ["stop", "kill the keeper"])
def test_no_helper_outlives_the_container(bb, fwd, how):
    port = free_port()
    bb("run", "-d", "--name", "web", "--network", fwd, "-e", "MSG=x", "-p", f"127.0.0.1:{port}:80",
       "busybox", "sh", "-c", HTTPD)
    fetch_eventually(f"http://127.0.0.1:{port}/")
    keeper = record(bb, "web")["state"]["keeper"]
    helpers = helpers_of(keeper)
    assert helpers  # slirp4netns at least (and the relay for the built-in forwarder)
    if how == "stop":
        bb("stop", "-t", "1", "web")
    else:
        os.kill(keeper, signal.SIGKILL)
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and _not_zombie(p) for p in helpers),
             what="slirp4netns and the relay to end")
    wait_for(lambda: port_is_free(port), what="the host port to be free")
    assert status(bb, "web") == "exited"
    bb("rm", "web")


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- what the container sees -----------------------------------------------------------------------
def test_default_network_is_slirp4netns(bb):
    r = bb("run", "--rm", "--name", "n1", "-h", "box", "busybox", "sh", "-c",
           "ip -o -4 addr show eth0; ip route; cat /etc/resolv.conf; tail -1 /etc/hosts")
    assert "inet 10.0.2.100/24" in r.out
    assert "default via 10.0.2.2 dev eth0" in r.out
    assert "nameserver 10.0.2.3" in r.out.splitlines()
    assert r.out.splitlines()[-1] == "10.0.2.100\tbox n1"


def test_host_loopback_only_when_allowed(bb):
    def greeter(conn):
        conn.sendall(b"hello from the host\n")
        conn.close()
    srv = serve(greeter)
    port = srv.port
    try:
        r = bb("run", "--rm", "busybox", "sh", "-c", f"nc -w 2 10.0.2.2 {port} </dev/null", expect=None)
        assert "hello" not in r.out
        r = bb("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true", "busybox", "sh", "-c",
               f"nc -w 5 10.0.2.2 {port} </dev/null")
        assert r.out == "hello from the host\n"
    finally:
        srv.close()


def test_etc_files_and_mac_from_the_flags(bb):
    r = bb("run", "--rm", "--name", "flags", "--hostname", "h1", "--add-host", "db.lan:10.9.9.9",
           "--add-host", "gw:host-gateway", "--dns", "10.1.1.1", "--dns-search", "example.test",
           "--dns-option", "ndots:3", "--mac-address", "02:42:ac:11:00:09", "busybox", "sh", "-c",
           "cat /etc/hostname /etc/hosts /etc/resolv.conf; cat /sys/class/net/eth0/address; hostname")
    lines = r.out.splitlines()
    assert lines[0] == "h1" and lines[-1] == "h1"
    assert "10.9.9.9\tdb.lan" in lines and "10.0.2.2\tgw" in lines and "10.0.2.100\th1 flags" in lines
    assert "nameserver 10.1.1.1" in lines and "search example.test" in lines and "options ndots:3" in lines
    assert not any(ln.startswith("nameserver 10.0.2.3") for ln in lines)
    assert "02:42:ac:11:00:09" in lines


def test_inspect_and_info_show_the_network(bb):
    bb("run", "-d", "--name", "n", "--mac-address", "02:42:ac:11:00:0a", "-p", "127.0.0.1::80", "busybox",
       "sleep", "60")
    ns = json.loads(bb("inspect", "-f", "{{json .NetworkSettings}}", "n").out)
    assert (ns["IPAddress"], ns["Gateway"], ns["MacAddress"]) == ("10.0.2.100", "10.0.2.2", "02:42:ac:11:00:0a")
    assert ns["Networks"]["slirp4netns"]["IPAddress"] == "10.0.2.100"
    assert list(ns["Ports"]) == ["80/tcp"]
    assert bb("inspect", "-f", "{{.HostConfig.NetworkMode}}", "n").out.strip() == "slirp4netns"
    bb("rm", "-f", "n")
    info = bb("info").out
    assert "slirp4netns" in info and "libslirp" in info


@pytest.mark.parametrize("flags, message", [
    (["--network", "bogus"], "network bogus not found"),
    (["--network", "slirp4netns:nope=1"], "unknown slirp4netns option"),
    (["-p", "99999:80"], "invalid host port"),
    (["--network", "host", "--link", "x:y"], "could not get container for x"),
    (["--link", "missing"], "could not get container for missing"),
    (["--network", "container:missing"], "No such container: missing"),
])
def test_bad_network_flags(bb, flags, message):
    r = bb("run", "--rm", *flags, "busybox", "true", expect=125)
    assert message in r.err
    assert "Traceback" not in r.err
    assert bb("ps", "-aq").out == ""


# ---- links ---------------------------------------------------------------------------------------
def test_link_by_alias_with_docker_env(bb):
    bb("run", "-d", "--name", "web", "--expose", "80", "-e", "MSG=linked", "-e", "SECRET=s3", "busybox", "sh",
       "-c", HTTPD)
    web_id = bb("inspect", "-f", "{{.Id}}", "web").out.strip()
    r = bb("run", "--rm", "--name", "client", "--link", "web:site", "busybox", "sh", "-c",
           "env | grep ^SITE_ | sort; grep site /etc/hosts; "
           "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://site/ && break; sleep 0.2; done; "
           "wget -qO- http://web/")
    lines = r.out.splitlines()
    assert lines[:7] == [
        "SITE_ENV_MSG=linked",
        "SITE_ENV_SECRET=s3",
        "SITE_NAME=/client/site",
        "SITE_PORT=tcp://10.0.3.2:80",
        "SITE_PORT_80_TCP=tcp://10.0.3.2:80",
        "SITE_PORT_80_TCP_ADDR=10.0.3.2",
        "SITE_PORT_80_TCP_PORT=80",
    ]
    assert lines[7] == "SITE_PORT_80_TCP_PROTO=tcp"
    assert lines[8] == f"10.0.3.2\tsite {web_id[:12]} web"
    assert lines[9:] == ["linked", "linked"]
    bb("rm", "-f", "web")


def test_link_listener_leaves_the_linking_containers_ports_alone(bb):
    """Both containers serve port 80: the link's listener lives in its own namespace."""
    bb("run", "-d", "--name", "web", "--expose", "80", "-e", "MSG=from web", "busybox", "sh", "-c", HTTPD)
    r = bb("run", "--rm", "--link", "web", "-e", "MSG=from me", "busybox", "sh", "-c",
           HTTPD.replace("exec httpd -f", "httpd") + "; sleep 0.2; wget -qO- http://127.0.0.1/; "
           "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web/ && break; sleep 0.2; done")
    assert r.out.splitlines() == ["from me", "from web"]
    bb("rm", "-f", "web")


def test_link_to_a_stopped_container_is_refused(bb):
    bb("create", "--name", "idle", "--expose", "80", "busybox", "true")
    r = bb("run", "--rm", "--link", "idle:db", "busybox", "true", expect=125)
    assert "cannot link to db: container idle is not running" in r.err
    assert bb("ps", "-aq").out.split() == [bb("inspect", "-f", "{{.Id}}", "idle").out.strip()[:12]]


def test_link_survives_a_restart_of_the_linked_container(bb):
    bb("run", "-d", "--name", "web", "--expose", "80", "-e", "MSG=v", "busybox", "sh", "-c", HTTPD)
    bb("run", "-d", "--name", "client", "--link", "web", "busybox", "sleep", "60")
    get = "for i in $(seq 1 25); do wget -qO- http://web/ && exit 0; sleep 0.2; done; exit 1"
    assert bb("exec", "client", "sh", "-c", get).out == "v\n"
    bb("restart", "-t", "1", "web")
    assert bb("exec", "client", "sh", "-c", get).out == "v\n"
    bb("rm", "-f", "client", "web")


# ---- container: mode ------------------------------------------------------------------------------
def test_container_network_mode_shares_the_namespace(bb):
    bb("run", "-d", "--name", "web", "-e", "MSG=shared", "busybox", "sh", "-c", HTTPD)
    web = bb("exec", "web", "sh", "-c", "cat /sys/class/net/eth0/address; hostname").out
    r = bb("run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
           "cat /sys/class/net/eth0/address; hostname; "
           "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1/ && break; sleep 0.2; done")
    assert r.out == web + "shared\n"
    assert bb("inspect", "-f", "{{.HostConfig.NetworkMode}}", "web").out.strip() == "slirp4netns"
    bb("rm", "-f", "web")


def test_container_network_mode_needs_a_running_container(bb):
    bb("create", "--name", "idle", "busybox", "true")
    r = bb("run", "--rm", "--network", "container:idle", "busybox", "true", expect=125)
    assert "is not running" in r.err
    r = bb("run", "--rm", "--network", "container:idle", "-p", "80", "busybox", "true", expect=125)
    assert "conflicting options: port publishing and the container type network mode" in r.err


def test_links_and_host_network_conflict(bb):
    bb("create", "--name", "x", "busybox", "true")
    r = bb("run", "--rm", "--network", "host", "--link", "x", "busybox", "true", expect=125)
    assert "conflicting options: host type networking can't be used with links" in r.err


def _dns_answer(sock: socket.socket) -> None:
    """Answer an A query with 10.1.2.3 (a DNS server on the host's loopback, for outbound UDP)."""
    query, addr = sock.recvfrom(512)
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    answer = b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + (60).to_bytes(4, "big") \
        + (4).to_bytes(2, "big") + bytes([10, 1, 2, 3])
    sock.sendto(query[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer, addr)


def test_outbound_udp_and_dns_lookups(bb):
    """A name looked up over UDP from inside, answered by a DNS server on the host's loopback
    (reachable with allow_host_loopback=true; slirp4netns's own resolver, 10.0.2.3, would ask the
    host's real name server, which the tests must not reach)."""
    srv = Server(socket.SOCK_DGRAM, _dns_answer)
    port = srv.port
    try:
        r = bb("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true", "busybox", "nslookup",
               "-type=a", "db.example.test", f"10.0.2.2:{port}")
        assert "Address: 10.1.2.3" in r.out
    finally:
        srv.close()


DNS_IN_NETNS = IN_NETNS + r"""
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
while True:
    q, addr = s.recvfrom(512)
    end = 12
    while q[end]:
        end += q[end] + 1
    answer = bytes([0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 4, 5, 6])
    s.sendto(q[:2] + bytes([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]) + q[12:end + 5] + answer, addr)
"""


def test_link_reaches_exposed_udp_ports(bb):
    """A UDP port the linked container exposes answers at the link's address (a DNS server there)."""
    bb("run", "-d", "--name", "dns", "--expose", "5353/udp", "busybox", "sleep", "60")
    server = subprocess.Popen([sys.executable, "-c", DNS_IN_NETNS, str(record(bb, "dns")["state"]["keeper"]),
                               "5353"], stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"ready\n"
        r = bb("run", "--rm", "--link", "dns:ns", "busybox", "sh", "-c",
               'echo "$NS_PORT_5353_UDP"; nslookup -type=a x.example.test "$NS_PORT_5353_UDP_ADDR:5353"')
        assert r.out.splitlines()[0] == "udp://10.0.3.2:5353"
        assert "Address: 10.4.5.6" in r.out
    finally:
        server.kill()
        server.wait()
        bb("rm", "-f", "dns")
