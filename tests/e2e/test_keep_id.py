"""``--userns=keep-id`` (Podman's): the user's own uid and gid inside the container, so a home or
project directory bind-mounted in is theirs there, and what the container writes there is the
user's out here. The image's files keep their owners (with subordinate ids, fuse-overlayfs shows
the store's files under their image ids); a commit stores the files as the image sees them."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import Rootless, inspect

pytestmark = pytest.mark.userns

UID, GID = os.getuid(), os.getgid()


@pytest.fixture
def bb(busybox) -> Rootless:
    return busybox


def test_the_users_ids_inside_and_a_bind_mount_with_the_right_owner(bb, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "mine").write_text("x")
    out = bb("run", "--rm", "--network", "none", "--userns", "keep-id", "-v", f"{project}:/src", "busybox", "sh",
             "-c", "id -u; id -g; ls -ln /src/mine; ls -lnd /bin; touch /src/made; echo $HOME").out.split("\n")
    assert out[0] == str(UID) and out[1] == str(GID)
    assert re.search(rf" {UID} +{GID} .* /src/mine", out[2]), out
    assert re.search(r" 0 +0 .* /bin", out[3]), out  # the image's files keep their owners
    made = (project / "made").stat()
    assert (made.st_uid, made.st_gid) == (UID, GID)  # yours out here, not a subordinate id's
    assert out[4] == os.path.expanduser("~")  # a passwd entry of yours where the image has none


def test_exec_and_u_and_a_commit(bb):
    cid = bb("run", "-d", "--network", "none", "--userns", "keep-id", "busybox", "sh", "-c",
             "echo data > /tmp/by-me; sleep 300").out.strip()
    assert inspect(bb, cid)["Config"]["User"] == f"{UID}:{GID}"
    assert bb("exec", cid, "id", "-u").out.strip() == str(UID)
    assert bb("exec", "-u", "0", cid, "id", "-u").out.strip() == "0"
    bb("stop", "-t", "1", cid)
    bb("commit", cid, "kept:1")
    owner = bb("run", "--rm", "--network", "none", "kept:1", "stat", "-c", "%u:%g", "/tmp/by-me").out.strip()
    assert owner == f"{UID}:{GID}"  # stored as the image sees it: uid UID, in any later container


@pytest.mark.parametrize("flags, message", [
    (("--userns", "host"), "--userns 'host' is not supported"),
    (("--userns", "keep-id", "--network", "container:other"), "cannot join another container's namespaces"),
])
def test_refused(bb, flags, message):
    bb("create", "--name", "other", "--network", "none", "busybox", "true")
    r = bb("run", "--rm", *flags, "busybox", "true", expect=125)
    assert message in r.err


def test_keep_id_in_a_single_uid_map(tmp_path, images):
    rl = Rootless(tmp_path, idmap="single")
    rl.load(images, "busybox")
    out = rl("run", "--rm", "--network", "none", "--userns", "keep-id", "-v", f"{tmp_path}:/h", "busybox", "sh",
             "-c", "id -u; touch /h/made; ls -lnd /bin").out.split("\n")
    assert out[0] == str(UID) and (tmp_path / "made").stat().st_uid == UID
    assert re.search(rf" {UID} +{GID} .* /bin", out[1]), out  # only you exist inside: the image's files are yours


# ---- keep-id with every network mode ---------------------------------------------------------------
# keep-id makes the keeper change its uid (root inside is not the user there), which leaves it
# non-dumpable unless it says otherwise: slirp4netns could not open the network namespace by the
# keeper's /proc entry, nor a container: joiner the keeper's /proc/PID/ns/net.
HTTPD = "mkdir -p /tmp/www && echo \"$MSG\" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
FETCH = "for i in $(seq 1 50); do wget -qO- {url} && exit 0; sleep 0.1; done; exit 1"


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fetch(url: str) -> str:
    import urllib.request

    from tests.conftest import wait_for

    def attempt():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None
    return wait_for(attempt, what=f"{url} to answer")


@pytest.mark.parametrize("network", [None, "slirp4netns:port_handler=slirp4netns"])
def test_keep_id_with_the_default_network_and_a_published_port(bb, network):
    port = _free_port()
    flags = ("--network", network) if network else ()
    cid = bb("run", "-d", "--userns", "keep-id", *flags, "-p", f"127.0.0.1:{port}:8080", "-e", "MSG=kept",
             "busybox", "sh", "-c", HTTPD).out.strip()
    assert _fetch(f"http://127.0.0.1:{port}/") == "kept\n"
    out = bb("exec", cid, "sh", "-c", "id -u; ip -4 addr show scope global").out
    assert out.startswith(f"{UID}\n") and "inet 10.0.2.100/24" in out
    assert inspect(bb, cid)["NetworkSettings"]["IPAddress"] == "10.0.2.100"
    bb("rm", "-f", cid)


def test_keep_id_with_the_host_network(bb):
    out = bb("run", "--rm", "--userns", "keep-id", "--network", "host", "busybox", "sh", "-c",
             "id -u; ls /sys/class/net").out.split()
    assert out[0] == str(UID) and sorted(out[1:]) == sorted(os.listdir("/sys/class/net"))


def test_keep_id_on_a_user_network_and_joined_by_another_container(bb):
    bb("network", "create", "kept")
    bb("run", "-d", "--name", "srv", "--userns", "keep-id", "--network", "kept", "--expose", "8080",
       "-e", "MSG=from srv", "busybox", "sh", "-c", HTTPD)
    r = bb("run", "--rm", "--userns", "keep-id", "--network", "kept", "busybox", "sh", "-c",
           "id -u; " + FETCH.format(url="http://srv:8080/"))
    assert r.out == f"{UID}\nfrom srv\n"
    # the keep-id container's namespace can be joined (its keeper's /proc/PID/ns/net is the user's to open)
    r = bb("run", "--rm", "--network", "container:srv", "busybox", "sh", "-c",
           FETCH.format(url="http://127.0.0.1:8080/"))
    assert r.out == "from srv\n"
    bb("rm", "-f", "srv")


def test_logs_of_a_keep_id_container_are_yours_to_read(bb):
    """The keeper is root inside, another id than yours out here with keep-id: the log it writes
    (and each rotated file) is given to you, so ``logs`` reads it."""
    cid = bb("run", "-d", "--userns", "keep-id", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox",
             "sh", "-c", "for i in $(seq 1 40); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; done").out.strip()
    assert bb("wait", cid).out.strip() == "0"
    out = bb("logs", cid).out.splitlines()
    assert out and out[-1] == "line-40-xxxxxxxxxxxxxxxxxxxxxxxx"
    logs = sorted((bb.root / "containers" / cid).glob("ctr.log*"))
    assert len(logs) > 1 and all(p.stat().st_uid == UID for p in logs), logs
    bb("rm", cid)
