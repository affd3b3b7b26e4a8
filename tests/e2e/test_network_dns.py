"""The embedded DNS server of user-defined networks (Docker's 127.0.0.11): members, aliases and
endpoint link aliases answered by DNS, members that start later resolved and reached at once,
other names forwarded to the container's resolvers. Real containers; traffic stays inside the
tests' own namespaces (the upstream resolver is a server the test runs in the container's
network namespace, reached as ``--dns 127.0.0.1``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import Rootless
from tests.e2e.test_network import IN_NETNS, UDP_ECHO

pytestmark = pytest.mark.userns

SERVE = "mkdir -p /www && echo \"$MSG\" > /www/index.html && exec httpd -f -p 8080 -h /www"


def serve(rl: Rootless, name: str, msg: str, *flags: str) -> str:
    return rl("run", "-d", "--name", name, "--expose", "8080", "-e", f"MSG={msg}", *flags, "busybox", "sh", "-c",
              SERVE).out.strip()


def keeper(rl: Rootless, ref: str) -> int:
    cid = rl("inspect", "-f", "{{.Id}}", ref).out.strip()
    with open(rl.root / "containers" / cid / "container.json") as f:
        return json.load(f)["state"]["keeper"]


def addresses(nslookup_out: str) -> list[str]:
    """The answers of busybox's nslookup (after the server's own lines)."""
    lines = nslookup_out.split("Non-authoritative answer:", 1)[-1].splitlines()
    return [ln.split()[-1] for ln in lines if ln.startswith("Address")]


def test_members_and_aliases_answer_by_dns(busybox):
    busybox("network", "create", "app")
    srv = serve(busybox, "srv", "hello", "--network", "app", "--network-alias", "web")
    r = busybox("run", "--rm", "--network", "app", "busybox", "sh", "-c",
                "cat /etc/resolv.conf; for n in srv web " + srv[:12] + " srv.app; do nslookup $n 127.0.0.11; done")
    assert "nameserver 127.0.0.11\n" in r.out and "ndots:0" in r.out
    assert "10.0.2.3" not in r.out.split("Server:")[0]  # slirp4netns's resolver is the upstream, not named
    found = [addresses(part) for part in r.out.split("Server:")[1:]]
    assert len(found) == 4 and all(f and f[0].startswith("10.0.3.") for f in found), r.out
    assert found[0] == found[1] == found[2] == found[3]  # srv.app: Docker's NAME.NETWORK
    # the default network keeps slirp4netns's resolver and no server
    r = busybox("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert "127.0.0.11" not in r.out
    busybox("rm", "-f", "srv")


def test_a_member_started_later_is_resolved_and_reached_without_a_restart(busybox):
    busybox("network", "create", "app")
    # other names go to --dns 127.0.0.1, where nothing listens (traffic stays in the namespace)
    busybox("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    r = busybox("exec", "client", "nslookup", "late", expect=1)
    assert "can't find late" in r.out + r.err
    serve(busybox, "late", "from the late one", "--network", "app", "--network-alias", "later")
    assert "late" not in busybox("exec", "client", "cat", "/etc/hosts").out  # DNS, not the hosts file
    r = busybox("exec", "client", "sh", "-c",
                "for i in $(seq 1 50); do wget -qO- http://late:8080/ && break; sleep 0.1; done; "
                "wget -qO- http://later:8080/; ping -c1 -W2 late >/dev/null && echo pinged")
    assert r.out.splitlines() == ["from the late one", "from the late one", "pinged"]
    # once it is gone, its name is too (after the server's one-second cache)
    busybox("rm", "-f", "late")
    time.sleep(1.2)
    r = busybox("exec", "client", "nslookup", "late", expect=1)
    assert "can't find late" in r.out + r.err
    busybox("rm", "-f", "client")


def test_a_later_members_udp_port_is_reached_by_name(busybox):
    busybox("network", "create", "app")
    busybox("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    busybox("run", "-d", "--name", "echo", "--network", "app", "--expose", "9999/udp", "busybox", "sleep", "300")
    server = subprocess.Popen([sys.executable, "-c", UDP_ECHO, str(keeper(busybox, "echo")), "9999"],
                              stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"ready\n"
        addr = addresses(busybox("exec", "client", "nslookup", "-type=a", "echo").out)[0]
        assert addr.startswith("10.0.3.")
        # busybox's nc has no UDP: the client joins the client container's network namespace
        r = subprocess.run([sys.executable, "-c", UDP_CLIENT, str(keeper(busybox, "client")), addr, "9999"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "PING\n", r.stderr
    finally:
        server.kill()
        server.wait()
        busybox("rm", "-f", "client", "echo")


def test_network_connect_and_an_endpoint_link_alias_of_a_later_member(busybox):
    busybox("network", "create", "app")
    busybox("network", "create", "other")
    busybox("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    busybox("network", "connect", "--link", "up:bar", "other", "client")
    serve(busybox, "up", "up here", "--network", "other")
    r = busybox("exec", "client", "sh", "-c",
                "for i in $(seq 1 50); do wget -qO- http://bar:8080/ && break; sleep 0.1; done")
    assert r.out == "up here\n"
    busybox("network", "disconnect", "other", "client")
    time.sleep(1.2)
    r = busybox("exec", "client", "nslookup", "bar", expect=1)
    assert "can't find bar" in r.out + r.err
    busybox("rm", "-f", "client", "up")


def test_getent_and_ping_in_debian_resolve_a_later_member(busybox, deb):
    deb("network", "create", "app")
    deb("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "debian:bookworm", "sleep", "300")
    busybox("run", "-d", "--name", "late", "--network", "app", "busybox", "sleep", "300")
    r = deb("exec", "client", "getent", "hosts", "late")
    assert r.out.split()[0].startswith("10.0.3.") and r.out.split()[1] == "late"
    deb("rm", "-f", "client", "late")


UDP_CLIENT = IN_NETNS + r"""
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(20):
    s.sendto(b"ping", (sys.argv[2], int(sys.argv[3])))
    try:
        print(s.recv(100).decode(), flush=True)
        break
    except TimeoutError:
        pass
"""

# A resolver in the container's own network namespace, on 127.0.0.1:53: outside.test is
# 192.0.2.7, any other name does not exist. It says "asked NAME" for each query it gets.
UPSTREAM = r"""
import ctypes, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
for ns, flag in (("user", 0x10000000), ("net", 0x40000000)):
    fd = os.open(f"/proc/{sys.argv[1]}/ns/{ns}", os.O_RDONLY)
    if libc.setns(fd, flag):
        raise OSError(ctypes.get_errno(), "setns " + ns)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65535)
    qid, flags = struct.unpack_from("!HH", data)
    pos, labels = 12, []
    while data[pos]:
        labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
        pos += 1 + data[pos]
    question = data[12:pos + 5]
    qtype = struct.unpack_from("!H", data, pos + 1)[0]
    name = ".".join(labels)
    print("asked", name, flush=True)
    known = name == "outside.test"
    answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([192, 0, 2, 7]) if known and qtype == 1 else b""
    head = struct.pack("!HHHHHH", qid, 0x8180 | (0 if known else 3), 1, 1 if answers else 0, 0, 0)
    s.sendto(head + question + answers, addr)
"""


def test_other_names_are_forwarded_and_unknown_ones_fail_fast(busybox):
    busybox("network", "create", "app")
    busybox("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    assert "nameserver 127.0.0.11" in busybox("exec", "client", "cat", "/etc/resolv.conf").out
    # nothing listens on the upstream yet: a quick failure, not a timeout
    t0 = time.monotonic()
    r = busybox("exec", "client", "nslookup", "outside.test", expect=1)
    assert time.monotonic() - t0 < 3, r.out + r.err
    server = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(keeper(busybox, "client"))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "ready\n"
        r = busybox("exec", "client", "nslookup", "-type=a", "outside.test")
        assert addresses(r.out) == ["192.0.2.7"]
        t0 = time.monotonic()
        r = busybox("exec", "client", "nslookup", "-type=a", "nothere.test", expect=1)
        assert "NXDOMAIN" in r.out + r.err and time.monotonic() - t0 < 3
        r = busybox("exec", "client", "nslookup", "-type=a", "client")  # its own name is answered here
        assert addresses(r.out) == ["10.0.2.100"]
    finally:
        server.kill()
        asked = server.stdout.read()
        server.wait()
        busybox("rm", "-f", "client")
    assert "asked outside.test" in asked and "asked nothere.test" in asked and "asked client" not in asked
