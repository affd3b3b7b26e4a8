"""Docker's smaller features, on both faces (the CLI, and the API driven by Debian's docker CLI and
raw HTTP): pause/unpause, diff (``/changes``), import with changes, ``/distribution``, removing a
legacy link, ``images REPO``, and plain HTTP for a registry on loopback."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import inspect, wait_for

pytestmark = pytest.mark.userns


# ---- import --change ------------------------------------------------------------------------
def test_import_with_changes_sets_the_config(rl, images):
    rl("import", "-c", "USER foobar", "--change", 'CMD ["echo", "hi"]', "-c", "ENV A=1 B=2",
       "-c", "EXPOSE 80", "-c", "LABEL l=v", "-c", "VOLUME /data", "-c", "WORKDIR /srv",
       "-c", 'ENTRYPOINT ["/bin/busybox"]', "-c", "ONBUILD run echo built",
       images / "busybox-rootfs.tar", "changed:1")
    config = inspect(rl, "changed:1")["Config"]
    assert config["User"] == "foobar" and config["Cmd"] == ["echo", "hi"]
    assert config["Entrypoint"] == ["/bin/busybox"]
    assert config["Env"] == ["A=1", "B=2"] and config["Labels"] == {"l": "v"}
    assert config["ExposedPorts"] == {"80/tcp": {}} and config["Volumes"] == {"/data": {}}
    assert config["WorkingDir"] == "/srv" and config["OnBuild"] == ["RUN echo built"]


def test_import_with_a_bad_change_stores_nothing(rl, images):
    res = rl("import", "-c", "FROM scratch", images / "busybox-rootfs.tar", "bad:1", expect=125)
    assert "FROM is not a valid change command" in res.err
    assert rl("images", "-q").out == "" and rl.leftovers() == []


def test_api_import_with_changes(api, images):
    tarball = (images / "busybox-rootfs.tar").read_bytes()
    query = urlencode([("fromSrc", "-"), ("repo", "test/imported"), ("tag", "1"),
                       ("changes", "USER foobar"), ("changes", 'CMD ["echo"]')])
    status, body = api.request("POST", f"/images/create?{query}", body=tarball)
    assert status == 200, body
    config = inspect(api.rl, "test/imported:1")["Config"]
    assert config["Cmd"] == ["echo"] and config["User"] == "foobar"
    # the docker CLI's import -c
    api.docker("import", "-c", "ENV K=V", "-c", "WORKDIR /w", "-", "test/cli:2", input=tarball)
    config = inspect(api.rl, "test/cli:2")["Config"]
    assert config["Env"] == ["K=V"] and config["WorkingDir"] == "/w"
    status, body = api.request("POST", "/images/create?" + urlencode([("fromSrc", "-"), ("changes", "NOPE x")]),
                               body=tarball)
    assert status == 400 and "NOPE is not a valid change command" in body["message"]


# ---- diff ----------------------------------------------------------------------------------
def test_diff_lists_added_changed_and_deleted_paths(rl_method, images):
    """The same list from an overlay upper layer (kernel, fuse-overlayfs) and a whole tree (copy)."""
    busybox = rl_method
    busybox.load(images, "busybox")
    cid = busybox("run", "-d", "busybox", "sh", "-c",
                  "touch /test && mkdir -p /newdir/sub && echo x >> /etc/passwd && rm /bin/ls && sleep 60").out.strip()
    wait_for(lambda: "D /bin/ls" in busybox("diff", cid).out, 20, "the container's changes")
    assert busybox("diff", cid).out.splitlines() == [
        "C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "A /newdir", "A /newdir/sub", "A /test"]
    busybox("stop", "-t", "0", cid)
    assert "A /test" in busybox("diff", cid).out.splitlines()  # a stopped container too
    busybox("rm", cid)


def test_diff_leaves_out_what_the_runtime_mounts_on(busybox):
    busybox("run", "--name", "quiet", "busybox", "true")
    assert busybox("diff", "quiet").out == ""
    busybox("create", "--name", "fresh", "busybox", "true")
    assert busybox("diff", "fresh").out == ""
    res = busybox("diff", "nosuch", expect=1)
    assert "No such container" in res.err or "no such container" in res.err.lower()


def test_api_changes(api):
    api.docker("run", "--name", "touched", "busybox", "touch", "/test")
    status, body = api.request("GET", "/containers/touched/changes")
    assert (status, body) == (200, [{"Path": "/test", "Kind": 1}])
    assert api.docker("diff", "touched").out == "A /test\n"
    assert api.request("GET", "/containers/nosuch/changes")[0] == 404
