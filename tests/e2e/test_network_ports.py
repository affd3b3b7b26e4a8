"""Members of a user-defined network reach every port a fellow member listens on, exposed or not
(as in Docker, where EXPOSE means nothing between members): from a member started before it
(through the embedded DNS server's link) and after it (a link made at the start), a port opened
later once it listens, UDP too; a port nobody listens on is refused. Real containers; traffic
stays inside the tests' own namespaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.test_network_dns import UDP_CLIENT, UDP_ECHO, addresses, keeper

pytestmark = pytest.mark.userns

# no --expose: the port is only listened on, a second after the start
SERVE = "sleep 1; mkdir -p /www && echo \"$MSG\" > /www/index.html && exec httpd -f -p 3000 -h /www"
FETCH = "for i in $(seq 1 60); do wget -qO- http://{}:3000/ 2>/dev/null && break; sleep 0.1; done"


def test_a_members_unexposed_port_is_reached_from_members_started_before_and_after(busybox):
    busybox("network", "create", "app")
    # other names go to --dns 127.0.0.1, where nothing listens (traffic stays in the namespace)
    busybox("run", "-d", "--name", "before", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    busybox("run", "-d", "--name", "api", "--network", "app", "--network-alias", "backend", "-e", "MSG=no expose",
            "busybox", "sh", "-c", SERVE)
    r = busybox("exec", "before", "sh", "-c", FETCH.format("api") + "; " + FETCH.format("backend"))
    assert r.out.splitlines() == ["no expose", "no expose"]
    # a member started after it (its link made at the start, the name in /etc/hosts)
    r = busybox("run", "--rm", "--network", "app", "--dns", "127.0.0.1", "busybox", "sh", "-c",
                "grep -q api /etc/hosts && wget -qO- http://api:3000/")
    assert r.out == "no expose\n"
    # a port nobody listens on is refused, as in Docker
    r = busybox("exec", "before", "sh", "-c", "wget -qO- http://api:3001/ || echo refused")
    assert r.out.strip().endswith("refused")
    busybox("rm", "-f", "before", "api")


def test_a_port_opened_after_the_link_is_reached_once_it_listens_and_closed_when_it_stops(busybox):
    busybox("network", "create", "app")
    busybox("run", "-d", "--name", "api", "--network", "app", "busybox", "sleep", "300")
    # the link is made now, before anything listens: no listener on the link's address yet
    busybox("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    busybox("exec", "-d", "api", "sh", "-c", "mkdir -p /w && echo later > /w/index.html && "
            "exec httpd -f -p 3000 -h /w")
    r = busybox("exec", "client", "sh", "-c", FETCH.format("api"))
    assert r.out == "later\n"
    busybox("exec", "api", "killall", "httpd")
    r = busybox("exec", "client", "sh", "-c",
                "for i in $(seq 1 40); do wget -qO- http://api:3000/ >/dev/null 2>&1 || break; sleep 0.1; done; "
                "wget -qO- http://api:3000/ 2>&1 || echo refused")
    assert r.out.strip().endswith("refused")
    busybox("rm", "-f", "client", "api")


def test_a_members_unexposed_udp_port_is_reached(busybox):
    busybox("network", "create", "app")
    busybox("run", "-d", "--name", "client", "--network", "app", "--dns", "127.0.0.1", "busybox", "sleep", "300")
    busybox("run", "-d", "--name", "echo", "--network", "app", "busybox", "sleep", "300")
    server = subprocess.Popen([sys.executable, "-c", UDP_ECHO, str(keeper(busybox, "echo")), "9999"],
                              stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"ready\n"
        addr = addresses(busybox("exec", "client", "nslookup", "-type=a", "echo").out)[0]
        assert addr.startswith("10.0.3.")
        r = subprocess.run([sys.executable, "-c", UDP_CLIENT, str(keeper(busybox, "client")), addr, "9999"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "PING\n", r.stderr
    finally:
        server.kill()
        server.wait()
        busybox("rm", "-f", "client", "echo")
