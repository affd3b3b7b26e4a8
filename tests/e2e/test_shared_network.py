"""The shared network (rootless/runtime/sharednet.py, netholder.py): the default network's containers of a
store share one slirp4netns on a bridge, each with an address of its own, as the unprivileged user."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest

from tests.conftest import Rootless, inspect, rootless_argv, wait_for

pytestmark = pytest.mark.userns

HTTPD = "echo $HOSTNAME > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"


@pytest.fixture
def bb(busybox) -> Rootless:
    return busybox


def _holder_file(rl) -> str:
    base = os.path.join(str(rl.runtime), "rootless")
    for key in os.listdir(base) if os.path.isdir(base) else []:
        path = os.path.join(base, key, "sharednet", "holder.json")
        if os.path.exists(path):
            return path
    return ""


def _holder(rl) -> dict:
    path = _holder_file(rl)
    assert path, "no shared network holder"
    with open(path) as f:
        return json.load(f)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _slirps_of(pid: int) -> list[int]:
    return [p for p in _children(pid) if _comm(p) == "slirp4netns"]


def test_containers_share_one_slirp4netns_and_reach_each_other(bb):
    bb("run", "-d", "--name", "a", "busybox", "sh", "-c", HTTPD)
    b = bb("run", "-d", "--name", "b", "busybox", "sh", "-c", HTTPD).out.strip()
    ips = {n: inspect(bb, n)["NetworkSettings"]["IPAddress"] for n in ("a", "b")}
    assert ips == {"a": "10.0.2.100", "b": "10.0.2.101"}
    holder = _holder(bb)
    assert len(_slirps_of(holder["pid"])) == 1  # one for both, and none of their own:
    assert _store_slirps(bb) == _slirps_of(holder["pid"])
    r = bb("exec", "a", "sh", "-c", "ip -o -4 addr show eth0; ip route; "
           f"wget -q -O- http://{ips['b']}:8080/index.html")
    assert "inet 10.0.2.100/24" in r.out and "default via 10.0.2.2 dev eth0" in r.out
    assert r.out.splitlines()[-1] == b[:12]  # b's page (its hostname), fetched by address from a
    # a third container, run and gone: its address is given out again
    r = bb("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0")
    assert "inet 10.0.2.102/24" in r.out
    bb("rm", "-f", "b")
    r = bb("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0")
    assert "inet 10.0.2.101/24" in r.out
    assert _holder(bb)["pid"] == holder["pid"]
    bb("rm", "-f", "a")


def test_the_holder_leaves_after_the_last_container(bb):
    """ROOTLESS_NETSTACK_IDLE is 1 s in the tests: it looks every second and leaves once no
    container holds an address; its slirp4netns ends with it; the next run makes a new one."""
    bb("run", "-d", "--name", "c", "busybox", "sleep", "600")
    holder = _holder(bb)
    slirp = _slirps_of(holder["pid"])
    assert slirp
    wait_for(lambda: _comm(holder["pid"]) == "rootless-keeper", what="the holder to rest as the idle program")
    with open(f"/proc/{holder['pid']}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert rss < 1024, rss  # kB: resting, not a Python
    bb("rm", "-f", "c")
    wait_for(lambda: not os.path.exists(f"/proc/{holder['pid']}") and not os.path.exists(f"/proc/{slirp[0]}"),
             timeout=20, what="the holder and its slirp4netns to leave")
    assert not _holder_file(bb)
    r = bb("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0")
    assert "inet 10.0.2.100/24" in r.out
    wait_for(lambda: not _holder_file(bb), timeout=20, what="the new holder to leave")


def _store_slirps(rl) -> list[int]:
    """The slirp4netns processes started for this store (its path in their environment)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _comm(int(d)) == "slirp4netns":
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if str(rl.root).encode() in f.read():
                        out.append(int(d))
            except OSError:
                continue
    return out


def _host_address() -> str | None:
    """An address of this machine's own (not loopback): traffic to it stays on the machine."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return None


def test_outbound_connections_through_the_shared_slirp4netns(bb):
    host = _host_address()
    if host is None:
        pytest.skip("this machine has no address but loopback to connect to")
    srv = socket.socket()
    srv.bind((host, 0))
    srv.listen(4)
    seen = []

    def serve():
        for _ in range(2):
            conn, addr = srv.accept()
            seen.append(addr[0])
            conn.sendall(b"hello from the host\n")
            conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        bb("run", "-d", "--name", "idle", "busybox", "sleep", "600")
        for _ in range(2):
            r = bb("run", "--rm", "busybox", "nc", "-w", "5", host, str(srv.getsockname()[1]))
            assert r.out == "hello from the host\n"
        assert seen == [host, host] or all(seen)  # slirp4netns connects from the host
    finally:
        srv.close()
        bb("rm", "-f", "idle")


def test_own_slirp4netns_when_asked_or_with_other_options(bb):
    """ROOTLESS_SHARED_NETWORK=0, and slirp4netns options the shared one does not have, give the
    container a slirp4netns of its own (its tap0, 10.0.2.100), as before."""
    for extra_env, network in (({"ROOTLESS_SHARED_NETWORK": "0"}, "slirp4netns"),
                               ({}, "slirp4netns:allow_host_loopback=true")):
        env = dict(bb.env, **extra_env)
        cp = subprocess.run([*rootless_argv(), "run", "--rm", "--network", network, "busybox", "sh", "-c",
                             "ip -o -4 addr show tap0"], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
        assert "inet 10.0.2.100/24" in cp.stdout, cp.stderr
    assert not _holder_file(bb)  # none of them started the shared one


def test_keep_id_and_mac_address_on_the_shared_network(bb):
    r = bb("run", "--rm", "--userns", "keep-id", "--mac-address", "02:42:ac:11:00:0b", "busybox", "sh", "-c",
           "id -u; cat /sys/class/net/eth0/address; ip -o -4 addr show eth0")
    lines = r.out.splitlines()
    assert lines[0] == str(os.getuid()) and lines[1] == "02:42:ac:11:00:0b" and "10.0.2.100/24" in lines[2]


def test_the_first_packet_gets_through(bb):
    """eth0 is up, addressed and on the bridge before the command runs: one ICMP echo to the
    gateway (slirp4netns answers it), with no retry, gets its answer."""
    r = bb("run", "--rm", "busybox", "ping", "-c", "1", "-W", "5", "10.0.2.2", expect=None)
    assert r.code == 0 and "1 packets received" in r.out, r.out + r.err


def _keeper(rl, ref: str) -> int:
    cid = rl("inspect", "-f", "{{.Id}}", ref).out.strip()
    with open(os.path.join(str(rl.root), "containers", cid, "container.json")) as f:
        return json.load(f)["state"]["keeper"]


def test_containers_off_it_live_in_the_holders_user_namespace(bb):
    """While a holder runs, a container with another network (none, host, its own slirp4netns)
    joins its user namespace (no newuidmap/newgidmap to wait for); a keep-id one makes its own."""
    bb("run", "-d", "--name", "on", "busybox", "sleep", "600")
    holder_ns = os.readlink(f"/proc/{_holder(bb)['pid']}/ns/user")
    for name, flags in (("none", ("--network", "none")), ("own", ("--network", "slirp4netns:allow_host_loopback=true")),
                        ("kept", ("--network", "none", "--userns", "keep-id"))):
        bb("run", "-d", "--name", name, *flags, "busybox", "sleep", "600")
        joined = os.readlink(f"/proc/{_keeper(bb, name)}/ns/user") == holder_ns
        assert joined is (name != "kept"), name
        first = bb("exec", name, "head", "-1", "/proc/self/uid_map").out.split()
        assert first[:2] == (["0", str(os.getuid())] if name != "kept" else ["0", first[1]]), first
    assert os.readlink(f"/proc/{_keeper(bb, 'on')}/ns/user") == holder_ns
    bb("rm", "-f", "on", "none", "own", "kept")
