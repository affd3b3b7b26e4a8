"""Single-uid user namespaces (no /etc/subuid range: users from LDAP or AD on shared machines)
with root emulation: changing owners or identity and making device nodes succeed without effect,
so that package managers work; apt is told not to switch to its sandbox user. On by itself in
single-uid mode, asked for or refused with ``--security-opt root-emulation=on|off``.

The store is configured for a single-uid map (``userns.idmap = "single"``), which is what a user
without subordinate ids gets; CI also runs this module as such a user (.ci/run)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Rootless, inspect

pytestmark = pytest.mark.userns

CHANGES = ("touch /tmp/f; chown 100:100 /tmp/f; echo chown=$?; ls -ln /tmp/f; "
           "mknod /tmp/dev c 1 3; echo mknod=$?; test -e /tmp/dev && echo node-made; "
           "mkfifo /tmp/fifo && test -p /tmp/fifo && echo fifo-made")


@pytest.fixture
def solo(tmp_path, images) -> Rootless:
    rl = Rootless(tmp_path, idmap="single")
    rl.load(images, "busybox")
    yield rl
    ids = rl("ps", "-aq", expect=None).out.split()
    if ids:
        rl("rm", "-f", *ids, expect=None)


def test_root_emulation_is_on_in_single_uid_mode(solo):
    out = solo("run", "--rm", "--network", "none", "busybox", "sh", "-c", CHANGES).out
    assert "chown=0" in out and re.search(r" 0 +0 .* /tmp/f", out), out  # succeeded, changed nothing
    assert "mknod=0" in out and "node-made" not in out and "fifo-made" in out, out
    ids = solo("run", "--rm", "--network", "none", "busybox", "sh", "-c",
               "echo 'u:x:100:100::/:/bin/sh' >> /etc/passwd; su u -c 'id -u' 2>&1; echo rc=$?").out
    assert ids.split() == ["0", "rc=0"], ids  # switching identity "works", the process stays root


def test_root_emulation_can_be_refused(solo):
    cid = solo("create", "--network", "none", "--security-opt", "root-emulation=off", "busybox", "sh", "-c",
               CHANGES).out.strip()
    assert "root-emulation=off" in inspect(solo, cid)["HostConfig"]["SecurityOpt"]
    solo("start", cid)
    out = solo("logs", cid).out + solo("logs", cid).err
    assert "chown=1" in out and "Invalid argument" in out, out  # the kernel's answer: uid 100 is not mapped


def test_a_user_the_map_lacks_is_warned_once_by_run_and_exec(solo):
    """The container's setup says it over the channel; the CLI's Context shows it, in the same
    words as ever, once per command (issue 23 point 5)."""
    warning = ("rootless: warning: user '1234' (uid 1234) does not exist in a single-uid user namespace: "
               "running as root of the container instead (configure /etc/subuid to fix)")
    r = solo("run", "--rm", "--network", "none", "-u", "1234", "busybox", "id", "-u")
    assert r.out == "0\n" and r.err.splitlines().count(warning) == 1, r.err
    solo("run", "-d", "--name", "w", "--network", "none", "busybox", "sleep", "100")
    r = solo("exec", "-u", "1234", "w", "id", "-u")
    assert r.out == "0\n" and r.err.splitlines().count(warning) == 1, r.err


def _has_subids() -> bool:
    from rootless.base import idmap
    return idmap.plan().mode == "subid"


@pytest.mark.skipif(not _has_subids(), reason="this user has no subordinate ids (or no newuidmap)")
def test_with_subordinate_ids_it_is_off_unless_asked(busybox):
    out = busybox("run", "--rm", "--network", "none", "busybox", "sh", "-c", CHANGES).out
    assert "chown=0" in out and re.search(r" 100 +100 .* /tmp/f", out), out  # a real change
    out = busybox("run", "--rm", "--network", "none", "--security-opt", "root-emulation", "busybox", "sh", "-c",
                  CHANGES).out
    assert "chown=0" in out and re.search(r" 0 +0 .* /tmp/f", out), out


@pytest.fixture
def solo_deb(tmp_path, debian_tar) -> Rootless:
    rl = Rootless(tmp_path, idmap="single")
    rl("import", str(debian_tar), "debian:bookworm", timeout=300)
    return rl


POSTINST = """#!/bin/sh
set -e
useradd --system --home-dir /var/lib/demo-svc demo-svc
mkdir -p /var/lib/demo-svc
chown demo-svc: /var/lib/demo-svc
"""


def test_apt_get_install_and_dpkg_i_in_single_uid_mode(solo_deb):
    """A package from the mirror (apt drops to no sandbox user), and a local package whose
    maintainer script adds a system user and gives it a directory, as many do."""
    script = ("set -e; apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends cowsay; "
              "/usr/games/cowsay moo; mkdir -p /pkg/DEBIAN; "
              "printf 'Package: demo-svc\\nVersion: 1\\nArchitecture: all\\nMaintainer: t <t@t>\\n"
              "Description: d\\n' > /pkg/DEBIAN/control; "
              f"printf '{POSTINST}' > /pkg/DEBIAN/postinst; chmod 755 /pkg/DEBIAN/postinst; "
              "dpkg-deb --build /pkg /demo.deb >/dev/null; dpkg -i /demo.deb; getent passwd demo-svc; "
              "dpkg -s demo-svc | grep Status")
    r = solo_deb("run", "--rm", "debian:bookworm", "sh", "-c", script, timeout=600)
    assert "Setting up cowsay" in r.out and "< moo >" in r.out, r.out + r.err
    assert "demo-svc:x:" in r.out and "Status: install ok installed" in r.out, r.out + r.err
    refused = solo_deb("run", "--rm", "--security-opt", "root-emulation=off", "debian:bookworm", "sh", "-c",
                       "apt-get update -q", expect=None, timeout=300)
    assert refused.code != 0  # without it, apt cannot become its sandbox user


def test_apt_get_install_in_a_single_uid_build(solo_deb, tmp_path):
    """A build's RUN gets root emulation too; apt's word about its sandbox is no part of the layer."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM debian:bookworm\n"
        "RUN apt-get update -q && apt-get install -y -q --no-install-recommends cowsay\n")
    solo_deb("build", "-q", "-t", "cow", str(ctx), timeout=900)
    assert "< hi >" in solo_deb("run", "--rm", "--network", "none", "cow", "/usr/games/cowsay", "hi").out
    listing = solo_deb("run", "--rm", "--network", "none", "--security-opt", "root-emulation=off", "cow",
                       "ls", "/etc/apt/apt.conf.d").out
    assert "00rootless-sandbox" not in listing  # not bound without emulation, and not in the image
