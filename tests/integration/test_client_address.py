"""The relay brings the client's own address through a published port, for clients on other
addresses than loopback too (``netstack.clientaddr``: IP_TRANSPARENT and policy routing).

A real container's clients can only be on the host's loopback here (the tests send nothing
elsewhere), so this test builds the picture in namespaces of its own (``unshare -rn``): a "host"
namespace with the addresses 192.0.2.1 and 192.0.2.2 (on its ``lo``) holds the published ports,
and the relay runs, as in a container's keeper, in a "container" namespace whose address is
10.0.2.100, beside the servers, which tell the peer they see. Nothing leaves those namespaces.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, os, socket, threading
from netstack import clientaddr, loopback, netlink, relay
from rootless.base import syscalls

def addresses(*ips):
    loopback.bring_up()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
        for i, ip in enumerate(ips, 1):
            netlink.set_address(ctl, f"lo:{i}", ip, "255.255.255.255")

addresses("192.0.2.1", "192.0.2.2")
tcp, tcp2 = socket.socket(), socket.socket()  # one container port published on two host ports
for s in (tcp, tcp2):
    s.bind(("0.0.0.0", 0))
    s.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 0))
for s in (tcp, tcp2, udp):
    s.setblocking(False)
ready_r, ready_w = os.pipe()
stop_r, stop_w = os.pipe()
pid = os.fork()
if pid == 0:  # the container's namespace: the servers and the relay
    try:
        os.close(stop_w)
        syscalls.unshare(syscalls.CLONE_NEWNET)
        addresses("10.0.2.100")
        srv = socket.socket()
        srv.bind(("0.0.0.0", 80))
        srv.listen(16)
        userv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        userv.bind(("0.0.0.0", 53))
        def tcp_server():
            while True:
                conn, peer = srv.accept()
                conn.recv(100)  # each client speaks first: all are connected at once before any answer
                conn.sendall(f"{peer[0]} {peer[1]}".encode())
                conn.close()
        def udp_server():
            while True:
                data, peer = userv.recvfrom(100)
                if data == b"elsewhere?":  # the server's own datagram to an address that is no client's
                    try:
                        userv.sendto(b"x", ("192.0.2.99", 9))
                        answer = "routed here"
                    except OSError as e:
                        answer = f"errno {e.errno}"
                    userv.sendto(answer.encode(), peer)
                    continue
                userv.sendto(f"{peer[0]} {peer[1]}".encode(), peer)
        threading.Thread(target=tcp_server, daemon=True).start()
        threading.Thread(target=udp_server, daemon=True).start()
        r = relay.Relay("10.0.2.100", origins=clientaddr.ClientAddresses("10.0.2.100"))
        r.publish(tcp, "tcp", 80)
        r.publish(tcp2, "tcp", 80)
        r.publish(udp, "udp", 53)
        os.write(ready_w, b"x")
        r.run(stop_r)
    finally:
        os._exit(0)
os.close(ready_w)
if os.read(ready_r, 1) != b"x":
    raise SystemExit("the relay did not start")
tport, tport2, uport = tcp.getsockname()[1], tcp2.getsockname()[1], udp.getsockname()[1]
out = {"tcp": [], "udp": []}
clients = []
for src, port in (("192.0.2.1", tport), ("192.0.2.2", tport), ("127.0.0.1", tport), ("192.0.2.1", tport2)):
    c = socket.socket()  # all connected at once, answered after
    c.settimeout(10)
    c.bind((src, 0))
    c.connect((src, port))
    clients.append(c)
for c in clients:
    c.sendall(b"who am I?")
for c in clients:
    got = b""
    while data := c.recv(100):
        got += data
    out["tcp"].append([list(c.getsockname()), got.decode()])
    c.close()
for src in ("192.0.2.1", "127.0.0.1", "192.0.2.2"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(10)
        c.bind((src, 0))
        c.sendto(b"who am I?", (src, uport))
        data, sender = c.recvfrom(100)
        out["udp"].append([list(c.getsockname()), data.decode(), sender[1] == uport])
        if src == "192.0.2.1":
            c.sendto(b"elsewhere?", (src, uport))
            out["elsewhere"] = c.recvfrom(100)[0].decode()
os.close(stop_w)
os.waitpid(pid, 0)
print(json.dumps(out))
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare is needed")
def test_servers_see_each_clients_own_address_and_port_tcp_and_udp():
    r = subprocess.run(["unshare", "-rn", sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # each client, seen with its own address and port, several connected at once
    assert [seen for _client, seen in out["tcp"]] == [f"{ip} {port}" for (ip, port), _seen in out["tcp"]]
    assert [ip for (ip, _port), _seen in out["tcp"]] == ["192.0.2.1", "192.0.2.2", "127.0.0.1", "192.0.2.1"]
    # UDP: the same, and the reply comes back from the published port
    assert [seen for _client, seen, _ok in out["udp"]] == [f"{ip} {port}" for (ip, port), _seen, _ok in out["udp"]]
    assert all(ok for *_rest, ok in out["udp"])
    # only the clients' addresses come back to the relay: the server's datagram to another address
    # takes the namespace's own routes (here none: unreachable; in a container, out by tap0)
    assert out["elsewhere"] == f"errno {errno.ENETUNREACH}"
