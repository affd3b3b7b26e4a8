"""Docker's smaller features, on both faces (the CLI, and the API driven by Debian's docker CLI and
raw HTTP): pause/unpause, diff (``/changes``), import with changes, ``/distribution``, removing a
legacy link, ``images REPO``, and plain HTTP for a registry on loopback."""

from __future__ import annotations

import json
import os
import time
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


# ---- pause / unpause -----------------------------------------------------------------------
def _proc_states(rl, cid) -> set[str]:
    """The states (R, S, T, ...) of the container's processes, read from the host."""
    pid = int(rl("inspect", "-f", "{{.State.Pid}}", cid).out)
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    out = set()
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.readlink(f"/proc/{name}/ns/pid") == ns:
                data = open(f"/proc/{name}/stat", "rb").read()
                out.add(data[data.rindex(b")") + 2:][:1].decode())
        except OSError:
            continue
    return out


def test_pause_unpause_state_ps_events_and_exec(busybox):
    cid = busybox("run", "-d", "--name", "napper", "busybox", "sh", "-c", "sleep 300 & sleep 300").out.strip()
    assert busybox("pause", "napper").out == "napper\n"
    state = inspect(busybox, cid)["State"]
    assert state["Status"] == "paused" and state["Paused"] is True and state["Running"] is True
    # this host has no delegated freezer: SIGSTOP (PID 1 may still be traced by its keeper's
    # first-second watch: "t"), and they stay stopped when the watch ends
    assert _proc_states(busybox, cid) <= {"T", "t"}
    time.sleep(1.2)
    assert _proc_states(busybox, cid) == {"T"}
    assert "(Paused)" in busybox("ps", "--format", "{{.Status}}").out
    assert busybox("ps", "-q", "--filter", "status=paused").out.strip() == cid[:12]
    res = busybox("exec", "napper", "true", expect=None)
    assert res.code != 0 and "is paused, unpause the container before exec" in res.err
    assert "already paused" in busybox("pause", "napper", expect=1).err
    assert busybox("unpause", "napper").out == "napper\n"
    state = inspect(busybox, cid)["State"]
    assert state["Status"] == "running" and state["Paused"] is False
    assert "T" not in _proc_states(busybox, cid)
    assert "is not paused" in busybox("unpause", "napper", expect=1).err
    assert busybox("exec", "napper", "echo", "hi").out == "hi\n"
    events = busybox("events", "--since", "0", "--until", "0s", "--format", "{{json .}}",
                     "--filter", "container=napper").out.splitlines()
    actions = [json.loads(line)["Action"] for line in events]
    assert actions.count("pause") == 1 and actions.count("unpause") == 1


def test_stop_and_kill_of_a_paused_container(busybox):
    busybox("run", "-d", "--name", "p1", "busybox", "sleep", "300")
    busybox("pause", "p1")
    busybox("stop", "-t", "5", "p1", timeout=30)
    state = inspect(busybox, "p1")["State"]
    assert state["Status"] == "exited" and state["Paused"] is False
    busybox("start", "p1")
    assert inspect(busybox, "p1")["State"]["Status"] == "running"  # a new start is not paused
    busybox("pause", "p1")
    busybox("kill", "p1")
    busybox("wait", "p1")
    assert inspect(busybox, "p1")["State"]["Status"] == "exited"
    assert "is not running" in busybox("pause", "p1", expect=1).err


def test_api_pause_unpause(api):
    cid = api.docker("run", "-d", "busybox", "sleep", "300").out.strip()
    assert api.request("POST", f"/containers/{cid}/pause")[0] == 204
    status, body = api.request("GET", f"/containers/{cid}/json")
    assert body["State"]["Paused"] is True and body["State"]["Status"] == "paused"
    status, rows = api.request("GET", "/containers/json")
    assert rows[0]["State"] == "paused" and rows[0]["Status"].endswith("(Paused)")
    assert api.request("POST", f"/containers/{cid}/pause")[0] == 409
    status, body = api.request("POST", f"/containers/{cid}/exec", body={"Cmd": ["true"]})
    assert status == 409 and "is paused" in body["message"]
    info = api.request("GET", "/info")[1]
    assert (info["ContainersPaused"], info["ContainersRunning"]) == (1, 0)
    api.docker("unpause", cid)
    assert api.request("GET", f"/containers/{cid}/json")[1]["State"]["Paused"] is False
    assert api.request("POST", f"/containers/{cid}/unpause")[0] == 409


# ---- removing a legacy link ----------------------------------------------------------------
def test_rm_link_removes_the_link_not_the_containers(busybox):
    busybox("create", "--name", "db", "busybox", "true")
    busybox("create", "--name", "web", "--link", "db:mydb", "--link", "db:other", "busybox", "true")
    assert busybox("rm", "--link", "/web/mydb").out == "/web/mydb\n"
    assert inspect(busybox, "web")["HostConfig"]["Links"] == ["/db:/web/other"]
    assert "Could not find entity for web/mydb" in busybox("rm", "-l", "web/mydb", expect=1).err
    assert "cannot remove the default link name" in busybox("rm", "--link", "web", expect=1).err
    assert sorted(busybox("ps", "-a", "--format", "{{.Names}}").out.split()) == ["db", "web"]


def test_api_delete_link(api):
    api.docker("create", "--name", "db", "busybox", "true")
    api.docker("create", "--name", "web", "--link", "db:mydb", "busybox", "true")
    assert api.request("DELETE", "/containers/web/mydb?link=true")[0] == 204
    assert inspect(api.rl, "web")["HostConfig"]["Links"] in (None, [])
    assert api.request("DELETE", "/containers/web/mydb?link=true")[0] == 404
    api.docker("create", "--name", "app", "--link", "db:store", "busybox", "true")
    assert api.docker("rm", "--link", "/app/store").out == "/app/store\n"  # the docker CLI's way
    assert inspect(api.rl, "app")["HostConfig"]["Links"] in (None, [])
    assert api.request("DELETE", "/containers/web?link=1")[0] == 409
    assert api.request("DELETE", "/containers/web/mydb")[0] == 404
    assert sorted(api.docker("ps", "-a", "--format", "{{.Names}}").out.split()) == ["app", "db", "web"]


# ---- distribution --------------------------------------------------------------------------
@pytest.fixture
def api_reg(busybox, registry):
    """The service of a store with busybox, the test registry (plain HTTP) declared insecure."""
    from tests.apiservice import ApiService
    busybox.configure(insecure=(registry.host,))
    service = ApiService(busybox, "--time", "0")
    yield service
    service.stop()


def test_api_distribution(api_reg, registry):
    ref = f"{registry.host}/dist/busybox:v1"
    api_reg.docker("tag", "busybox", ref)
    pushed = api_reg.docker("push", ref).out
    status, body = api_reg.request("GET", f"/distribution/{ref}/json")
    assert status == 200, body
    assert body["Descriptor"]["digest"] in pushed and body["Descriptor"]["size"] > 0
    assert body["Descriptor"]["mediaType"].endswith("manifest.v1+json")
    assert body["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
    assert api_reg.request("GET", f"/distribution/{registry.host}/dist/nothing:here/json")[0] == 404
    assert api_reg.docker("images", "-q", "--filter", "reference=*/dist/*").out.count("\n") == 1  # nothing pulled


# ---- images REPO[:TAG] ---------------------------------------------------------------------
def test_images_repository_argument(busybox):
    busybox("tag", "busybox", "mine/app:1")
    busybox("tag", "busybox", "mine/app:2")
    busybox("tag", "busybox", "mine/deep/app:3")
    image = inspect(busybox, "busybox")["Id"][7:19]
    rows = busybox("images", "mine/app", "--format", "{{.Repository}}:{{.Tag}}").out.split()
    assert sorted(rows) == ["mine/app:1", "mine/app:2"]
    assert busybox("images", "mine/app:2", "--format", "{{.Tag}}").out.split() == ["2"]
    assert busybox("images", "-q", "busybox").out == f"{image}\n"
    assert busybox("images", "-q", "nothing").out == ""
    # as Go's path.Match: a star stays within a path component
    assert sorted(busybox("images", "mine/*", "--format", "{{.Tag}}").out.split()) == ["1", "2"]
    assert busybox("images", "mine/*/*:3", "--format", "{{.Tag}}").out.split() == ["3"]
    assert busybox("images", "busybox", "--format", "{{.Tag}}", "--filter", "dangling=false").out.split() == ["latest"]


def test_api_images_filter_reference(api):
    api.docker("tag", "busybox", "mine/app:1")
    status, rows = api.request("GET", "/images/json?filter=mine/app")
    assert status == 200 and [r["RepoTags"] for r in rows] == [["mine/app:1"]]
    status, rows = api.request("GET", "/images/json?filters=" + quote(json.dumps({"reference": ["busy*"]})))
    assert status == 200 and [r["RepoTags"] for r in rows] == [["busybox:latest"]]
    assert api.docker("images", "-q", "mine/app").out.strip() == inspect(api.rl, "busybox")["Id"][7:19]


# ---- a registry on loopback speaks plain HTTP without being declared -----------------------
def test_api_pull_and_push_with_a_plain_http_registry_on_loopback(api, registry):
    """No insecure entry in the configuration: as Docker, 127.0.0.0/8 may answer in plain HTTP."""
    assert registry.host.startswith("127.")
    ref = f"{registry.host}/local/busybox:1"
    api.docker("tag", "busybox", ref)
    assert "digest: sha256:" in api.docker("push", ref).out
    api.docker("rmi", ref)
    assert "Downloaded newer image" in api.docker("pull", ref).out
    api.docker("rmi", ref)
    status, body = api.request("POST", f"/images/create?fromImage={registry.host}/local/busybox&tag=1")
    assert status == 200 and b"errorDetail" not in body, body
    assert api.docker("run", "--rm", ref, "echo", "local").out == "local\n"
    status, body = api.request("GET", f"/distribution/{ref}/json")
    assert status == 200 and body["Platforms"] == [{"architecture": "amd64", "os": "linux"}]


# ---- container VERB ---------------------------------------------------------------------------
def test_the_container_noun_has_every_container_verb(busybox):
    """Docker's ``container ls`` (``list``, ``ps``), ``container run``, ``container inspect`` ...:
    the same commands under the noun, with their flags."""
    cid = busybox("container", "run", "-d", "--name", "noun", "busybox", "sh", "-c", "echo hi; sleep 60").out.strip()
    assert busybox("container", "ls", "-q", "--no-trunc").out.split() == [cid]
    assert busybox("container", "list", "--format", "{{.Names}}").out.split() == ["noun"]
    assert busybox("container", "ps", "-aq").out.split() == [cid[:12]]
    wait_for(lambda: busybox("container", "logs", "noun").out == "hi\n", what="the output")
    assert busybox("container", "exec", "noun", "echo", "in").out == "in\n"
    got = json.loads(busybox("container", "inspect", "-s", "noun").out)[0]
    assert got["Id"] == cid and isinstance(got["SizeRw"], int) and got["SizeRootFs"] >= got["SizeRw"]
    r = busybox("container", "inspect", "busybox", expect=1)  # an image: not a container
    assert "No such container: busybox" in r.err
    busybox("container", "stop", "-t", "0", "noun")
    busybox("container", "rm", "noun")
    assert busybox("container", "ls", "-aq").out == ""
