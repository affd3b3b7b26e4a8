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
