"""The image endpoints of `rootless system service`, driven by Debian's docker CLI (client only)
and raw HTTP: images, inspect, history, tag, rmi, save and load, pull and push with a real
registry on 127.0.0.1, the classic builder's build (and its errors), prune."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from tests.apiservice import DOCKER, ApiService, UnixHTTPConnection
from tests.conftest import wait_for
from tests.registryd import Registry

pytestmark = pytest.mark.userns


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("auth-registry"), users={"alice": "s3cret"})
    yield r
    r.stop()


def _service(rl, *insecure: str):
    """The service of ``rl``'s store (``--time 0``: a long pull or build is no idle time), which
    takes the registries ``insecure`` (plain HTTP) as `rootless pull` needs: declared in the
    configuration, read when the service starts."""
    import os
    if not os.access(DOCKER, os.X_OK):
        pytest.skip(f"{DOCKER} is missing (apt-get install docker.io)")
    rl.configure(insecure=insecure)
    return ApiService(rl, "--time", "0")


@pytest.fixture
def api_reg(busybox, registry):
    service = _service(busybox, registry.host)
    yield service
    service.stop()


@pytest.fixture
def api_auth(busybox, auth_registry):
    service = _service(busybox, auth_registry.host)
    yield service
    service.stop()


def stream(api: ApiService, method: str, path: str, body: bytes | None = None,
           headers: dict | None = None) -> tuple[int, list[dict]]:
    """(status, the JSON messages) of a streamed answer."""
    conn = UnixHTTPConnection(str(api.socket), timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        return resp.status, [json.loads(raw)]
    return resp.status, [json.loads(line) for line in raw.splitlines() if line.strip()]


def image_id(api: ApiService, ref: str) -> str:
    return api.rl("inspect", "-f", "{{.Id}}", ref).out.strip()


def test_images_inspect_history_tag_rmi(api):
    local = image_id(api, "busybox")
    r = api.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert r.out == f"busybox:latest {local[7:19]}\n"
    status, listed = api.request("GET", "/images/json")
    assert status == 200 and len(listed) == 1
    entry = listed[0]
    assert entry["Id"] == local and entry["RepoTags"] == ["busybox:latest"]
    assert isinstance(entry["Created"], int) and entry["Created"] > 0
    assert entry["Size"] > 0 and entry["SharedSize"] == -1 and entry["Containers"] == -1

    found = json.loads(api.docker("inspect", "busybox").out)[0]
    assert found["Id"] == local and found["RepoTags"] == ["busybox:latest"]
    assert found["RootFS"]["Type"] == "layers" and found["Os"] == "linux"
    assert api.docker("image", "inspect", "-f", "{{.Config.Cmd}}", "busybox").out.strip() == \
        api.rl("inspect", "-f", "{{.Config.Cmd}}", "busybox").out.strip()
    status, body = api.request("GET", "/images/no-such-image/json")
    assert status == 404 and "no-such-image" in body["message"]

    r = api.docker("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}", "busybox")
    rows = r.out.splitlines()
    assert rows[0].startswith(local + "|")
    assert len(rows) == len(api.rl("history", "-q", "busybox").out.splitlines())
    status, hist = api.request("GET", "/images/busybox/history")
    assert status == 200 and hist[0]["Tags"] == ["busybox:latest"] and isinstance(hist[0]["Created"], int)

    api.docker("tag", "busybox", "mine/copy:1")
    assert image_id(api, "mine/copy:1") == local  # the CLI's store sees the API's tag
    r = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=mine/*")
    assert r.out == "mine/copy:1\n"
    status, listed = api.request("GET", "/images/json")
    assert sorted(listed[0]["RepoTags"]) == ["busybox:latest", "mine/copy:1"]
    assert api.docker("rmi", "mine/copy:1").out == "Untagged: mine/copy:1\n"
    api.docker("run", "--name", "user", "busybox", "true")
    r = api.docker("rmi", "busybox", expect=1)
    assert "is used by container" in r.err  # 409 from the service
    api.docker("rm", "user")
    r = api.docker("rmi", "busybox")
    assert r.out.splitlines() == ["Untagged: busybox:latest", f"Deleted: {local}"]
    assert api.docker("images", "-q").out == ""
    r = api.docker("rmi", "busybox", expect=1)
    assert "busybox" in r.err


def test_save_load_round_trip(api, tmp_path):
    local = image_id(api, "busybox")
    api.docker("tag", "busybox", "second:2")
    archive = tmp_path / "saved.tar"
    api.docker("save", "-o", str(archive), "busybox", "second:2")
    api.docker("rmi", "busybox", "second:2")
    assert api.rl("images", "-q").out == ""
    r = api.docker("load", input=archive.read_bytes())  # from stdin: a chunked body
    assert sorted(r.out.splitlines()) == ["Loaded image: busybox:latest", "Loaded image: second:2"]
    assert image_id(api, "busybox") == local and image_id(api, "second:2") == local
    assert api.docker("run", "--rm", "second:2", "echo", "loaded").out == "loaded\n"
    # GET /images/{name}/get: the same archive through the other path; a missing image is a 404
    conn = UnixHTTPConnection(str(api.socket))
    try:
        conn.request("GET", "/images/busybox/get")
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/x-tar"
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert api.request("GET", "/images/get?names=nothing-here")[0] == 404
    r = api.docker("load", input=b"not an archive at all" * 100, expect=1)
    assert "docker-archive" in r.err or "archive" in r.err
    assert api.rl.leftovers() == [] and not any((api.rl.root / "tmp").glob("api-*"))


def test_push_pull_through_the_registry(api_reg, registry):
    api = api_reg
    ref = f"{registry.host}/api/busybox:v1"
    local = image_id(api, "busybox")
    api.docker("tag", "busybox", ref)
    r = api.docker("push", ref)
    m = re.search(r"^v1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$", r.out, re.M)
    assert m, r.out
    digest = m.group(1)
    lines = r.out.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/api/busybox]", r.out
    assert re.fullmatch(r"[0-9a-f]{12}: Preparing", lines[1]) and "Pushed" in r.out
    api.docker("rmi", "busybox", ref)
    assert api.docker("images", "-q").out == ""

    r = api.docker("pull", ref)
    assert f"Digest: {digest}" in r.out and f"Status: Downloaded newer image for {ref}" in r.out
    assert "Pull complete" in r.out
    assert image_id(api, ref) == local
    assert json.loads(api.docker("inspect", "-f", "{{json .RepoDigests}}", ref).out) == \
        [f"{registry.host}/api/busybox@{digest}"]
    assert api.docker("run", "--rm", ref, "echo", "pulled").out == "pulled\n"

    # Docker's JSON messages, as other clients read them
    api.docker("rmi", ref)
    status, msgs = stream(api, "POST", f"/images/create?fromImage={registry.host}/api/busybox&tag=v1")
    assert status == 200
    assert msgs[0] == {"status": "Pulling from api/busybox", "id": "v1"}  # the path, as Docker's
    layers = [m for m in msgs if m.get("id") and re.fullmatch(r"[0-9a-f]{12}", m["id"])]
    first = {}
    for m in layers:
        first.setdefault(m["id"], m["status"])
    assert first and all(s == "Pulling fs layer" for s in first.values())
    assert {m["id"] for m in layers if m["status"] == "Pull complete"} == set(first)
    assert {"status": f"Digest: {digest}"} in msgs
    assert msgs[-1] == {"status": f"Status: Downloaded newer image for {ref}"}

    status, msgs = stream(api, "POST", f"/images/{registry.host}/api/busybox/push?tag=v1")
    assert status == 200 and msgs[-1]["aux"]["Digest"] == digest and msgs[-1]["aux"]["Tag"] == "v1"
    assert any(m.get("status") == "Layer already exists" for m in msgs)

    r = api.docker("pull", f"{registry.host}/api/nothing:here", expect=1)
    assert f"{registry.host}/api/nothing:here" in r.err
    status, msgs = stream(api, "POST", f"/images/create?fromImage={registry.host}/api/nothing&tag=here")
    assert status == 404 and "manifest unknown" in msgs[0]["message"]  # before any stream, as Docker
    r = api.docker("push", f"{registry.host}/api/absent:1", expect=1)
    assert "does not exist" in r.err or "absent" in r.err
    assert "Traceback" not in api.service_log()


def test_push_pull_with_a_tls_registry_on_loopback_undeclared(busybox, tmp_path):
    """As Docker's daemon: a registry on 127.0.0.1 that speaks only TLS, with a self-signed
    certificate nobody installed, is used unverified (HTTPS first) by push and pull."""
    reg = Registry(tmp_path / "self-signed", tls="self-signed")
    api = _service(busybox)  # no insecure registries declared
    try:
        ref = f"{reg.host}/api/tls:v1"
        api.docker("tag", "busybox", ref)
        r = api.docker("push", ref)
        assert re.search(r"^v1: digest: sha256:[0-9a-f]{64} size: \d+$", r.out, re.M), r.out
        api.docker("rmi", "busybox", ref)
        r = api.docker("pull", ref)
        assert f"Status: Downloaded newer image for {ref}" in r.out
        assert "Traceback" not in api.service_log()
    finally:
        api.stop()
        reg.stop()


def test_a_missing_manifest_is_a_404_in_dockers_words(api_reg, registry):
    """A pull of a tag or digest the registry lacks answers 404 before any stream, in Docker's words
    (docker-py's pull raises NotFound at once); the CLI says the same line."""
    docker = pytest.importorskip("docker")
    api = api_reg
    repo = f"{registry.host}/api/there"
    api.docker("tag", "busybox", f"{repo}:1")
    api.docker("push", f"{repo}:1")
    missing = "sha256:" + "0" * 64
    for query, shown in ((f"tag={missing}", f"{repo}@{missing}"), ("tag=2", f"{repo}:2")):
        status, msgs = stream(api, "POST", f"/images/create?fromImage={repo}&{query}")
        assert (status, msgs) == (404, [{"message": f"manifest for {shown} not found: manifest unknown: "
                                                    "manifest unknown"}])
    client = docker.DockerClient(base_url=f"unix://{api.socket}", version="1.41")
    try:
        with pytest.raises(docker.errors.NotFound) as e:
            client.images.pull(f"{repo}@{missing}")
        assert "/images/create" in str(e.value)  # the pull itself said it, not a later look-up
    finally:
        client.close()
    r = api.rl("pull", f"{repo}:2", expect=125)
    assert f"manifest for {repo}:2 not found: manifest unknown" in r.err and "Pulling from" not in r.err
    assert api.rl.leftovers() == []


def test_registry_credentials_come_from_the_client(api_auth, auth_registry):
    """The docker CLI sends its stored credentials (X-Registry-Auth): they are used, not saved."""
    api = api_auth
    import base64
    ref = f"{auth_registry.host}/alice/busybox:1"
    api.docker("tag", "busybox", ref)
    r = api.docker("push", ref, expect=1)
    assert "authentication required" in r.err
    docker_config = api.home / ".docker"
    docker_config.mkdir(exist_ok=True)
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    api.docker("push", ref)
    api.docker("rmi", ref)
    r = api.docker("pull", ref)
    assert f"Status: Downloaded newer image for {ref}" in r.out
    assert not (api.rl.base / "auth.json").exists()  # nothing stored on the service's side
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"auth": base64.b64encode(b"alice:wrong").decode()}}}))
    api.docker("rmi", ref)
    r = api.docker("pull", ref, expect=1)
    assert "authentication required" in r.err or "unauthorized" in r.err.lower()


DOCKERFILE = """\
FROM busybox
RUN echo built > /built.txt && echo run-output-here
COPY hello.txt /hello.txt
CMD ["cat", "/built.txt", "/hello.txt"]
"""


def test_build_with_the_classic_builder(api, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hello from the context\n")
    (ctx / "ro").mkdir()
    (ctx / "ro" / "f").write_text("kept read-only\n")
    (ctx / "ro").chmod(0o555)  # the service's copy of the context is removed all the same
    r = api.docker("build", "-t", "x", str(ctx), timeout=300)
    out = r.out
    steps = [out.index(f"Step {i}/4 : ") for i in range(1, 5)]
    assert steps == sorted(steps), out
    assert "Step 1/4 : FROM busybox" in out
    # what the RUN step printed, in its place between the steps
    assert steps[1] < out.index("run-output-here") < steps[2], out
    m = re.search(r"^Successfully built ([0-9a-f]{12})$", out, re.M)
    assert m, out
    assert out.rstrip().endswith("Successfully tagged x:latest")
    assert image_id(api, "x")[7:19] == m.group(1)
    assert api.docker("run", "--rm", "x").out == "built\nhello from the context\n"

    # again: every step from the cache, the same image; -q gives the id alone
    r = api.docker("build", "-q", "-t", "x:again", str(ctx), timeout=300)
    assert r.out.strip() == image_id(api, "x")
    # -f elsewhere, build args and labels
    other = tmp_path / "other.Dockerfile"
    other.write_text("FROM busybox\nARG WHO=nobody\nLABEL who=$WHO\n"
                     "RUN echo \"hi $WHO\" > /who\nCMD [\"cat\", \"/who\"]\n")
    api.docker("build", "-f", str(other), "--build-arg", "WHO=api", "--label", "extra=1", "-t", "y:1", str(ctx),
               timeout=300)
    assert api.docker("run", "--rm", "y:1").out == "hi api\n"
    labels = json.loads(api.docker("inspect", "-f", "{{json .Config.Labels}}", "y:1").out)
    assert labels == {"who": "api", "extra": "1"}
    assert not any((api.rl.root / "tmp").glob("api-*"))


def test_broken_builds_say_why(api, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nFROBNICATE everything\n")
    r = api.docker("build", "-t", "broken", str(ctx), expect=1)
    assert "FROBNICATE" in r.err or "frobnicate" in r.err.lower(), r.err
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo about-to-fail && exit 3\n")
    r = api.docker("build", "-t", "broken", str(ctx), expect=3)  # errorDetail's code: the CLI exits with it
    assert "non-zero code: 3" in r.err, r.err
    assert "about-to-fail" in r.out
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /\n")
    r = api.docker("build", str(ctx), expect=1)
    assert "missing.txt" in r.err, r.err
    assert api.docker("images", "-q", "--filter", "reference=broken").out == ""
    assert "Traceback" not in api.service_log()


def test_client_errors_of_load_and_build_in_dockers_words(api):
    """A failed load is said inside the 200 stream (docker-py's ImageLoadError comes from there),
    naming no file of the store; a failed RUN says Docker's sentence (docker-py's BuildError)."""
    import io

    docker = pytest.importorskip("docker")
    status, msgs = stream(api, "POST", "/images/load", b"abc")
    assert status == 200 and len(msgs) == 1, msgs
    assert msgs[0]["error"] == msgs[0]["errorDetail"]["message"]
    assert "not a tar archive" in msgs[0]["error"] and str(api.rl.root) not in msgs[0]["error"], msgs
    client = docker.DockerClient(base_url=f"unix://{api.socket}", version="1.41")
    try:
        with pytest.raises(docker.errors.ImageLoadError):
            client.images.load(b"abc")
        with pytest.raises(docker.errors.BuildError) as e:
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 1"))
        assert "The command '/bin/sh -c exit 1' returned a non-zero code: 1" in e.exconly()
        assert e.value.build_log
    finally:
        client.close()
    # the connection's process cleans up after its last message: give it the moment
    wait_for(lambda: not any((api.rl.root / "tmp").glob("api-*")), 30, "the build's temporary files to go")
    assert api.rl.leftovers() == []
    assert "Traceback" not in api.service_log()


def test_build_of_a_dockerfile_alone_and_prunes(api):
    r = api.docker("build", "-t", "solo", "-", input="FROM busybox\nCMD [\"echo\", \"solo\"]\n", timeout=300)
    assert "Successfully tagged solo:latest" in r.out
    assert api.docker("run", "--rm", "solo").out == "solo\n"
    status, body = api.request("POST", "/build/prune")
    assert status == 200 and body["CachesDeleted"] == [] and body["SpaceReclaimed"] >= 0
    api.docker("tag", "solo", "doomed:1")
    api.docker("rmi", "solo")
    status, body = api.request("POST", "/images/prune?filters=" + quote(json.dumps({"dangling": ["false"]})))
    assert status == 200
    deleted = body["ImagesDeleted"] or []
    assert {"Untagged": "doomed:1"} in deleted and body["SpaceReclaimed"] > 0
    status, body = api.request("POST", "/images/prune?filters=" + quote(json.dumps({"until": ["1h"]})))
    assert status == 400 and "until" in body["message"]
    assert "Total reclaimed space" in api.docker("builder", "prune", "-f").out
    assert "Total reclaimed space: 0B" in api.docker("image", "prune", "-f").out


def _tar(files: dict[str, tuple[bytes, int, int]], gz: bool = False) -> bytes:
    """A context tar (name -> (content, mode, uid)), as clients other than the docker CLI make them."""
    import gzip
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode, uid) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def test_build_over_raw_http(api):
    """A gzip context whose files belong to another uid (docker-py sends the real owners), and
    Docker's JSON messages: the steps, aux with the id, then the closing lines; a failure last."""
    body = _tar({"Dockerfile": (b"FROM busybox\nCOPY secret.txt /\nRUN cat /secret.txt\n", 0o644, 1000),
                 "secret.txt": (b"private\n", 0o600, 1000)}, gz=True)
    status, msgs = stream(api, "POST", "/build?t=raw:1&t=raw:2&labels=" + quote(json.dumps({"via": "raw"})),
                          body, {"Content-Type": "application/x-tar"})
    assert status == 200, msgs
    text = "".join(m.get("stream", "") for m in msgs)
    assert "Step 1/3 : FROM busybox\n" in text and "private\n" in text, msgs
    aux = [m["aux"]["ID"] for m in msgs if "aux" in m]
    assert aux == [image_id(api, "raw:1")]
    assert [m.get("stream") for m in msgs[-3:]] == [f"Successfully built {aux[0][7:19]}\n",
                                                   "Successfully tagged raw:1\n", "Successfully tagged raw:2\n"]
    assert api.docker("run", "--rm", "raw:2", "stat", "-c", "%u %a", "/secret.txt").out == "0 600\n"
    assert api.docker("inspect", "-f", "{{.Config.Labels.via}}", "raw:1").out == "raw\n"

    body = _tar({"Dockerfile": (b"FROM busybox\nRUN echo before-failing; exit 3\n", 0o644, 0)})
    status, msgs = stream(api, "POST", "/build?t=never", body, {"Content-Type": "application/x-tar"})
    assert status == 200 and "errorDetail" in msgs[-1], msgs
    assert "non-zero code: 3" in msgs[-1]["error"] and msgs[-1]["errorDetail"]["message"] == msgs[-1]["error"]
    assert any("before-failing" in m.get("stream", "") for m in msgs)
    status, body = api.request("POST", "/build?buildargs=notjson", b"FROM busybox\n")
    assert status == 400 and "buildargs" in body["message"]


# ---- the build endpoint's parameters, as docker-py sends them -----------------------------------
def _build(api: ApiService, query: str, dockerfile: str | bytes) -> tuple[int, list[dict]]:
    body = _tar({"Dockerfile": (dockerfile.encode() if isinstance(dockerfile, str) else dockerfile, 0o644, 0)})
    return stream(api, "POST", "/build?" + query, body, {"Content-Type": "application/x-tar"})


def _text(msgs: list[dict]) -> str:
    return "".join(m.get("stream", "") for m in msgs)


def test_build_run_stderr_comes_in_red_as_dockers(api):
    """A RUN step's stderr: each line its own message, between Docker's red and reset (docker-py's
    test_build_stderr_data); its stdout as it is."""
    status, msgs = _build(api, "nocache=1", "FROM busybox\nRUN echo to-out; echo 'to err' >&2\n")
    assert status == 200, msgs
    streams = [m.get("stream") for m in msgs]
    assert "\x1b[91mto err\n\x1b[0m" in streams, msgs
    assert "to-out" in _text(msgs) and "\x1b[91mto-out" not in _text(msgs)


def test_build_dockerfile_outside_and_nested_in_the_context(api):
    """docker-py sends a Dockerfile from outside the context inside the tar under a random name,
    and ``dockerfile`` twice: that name, then the text (Docker reads the first)."""
    name = ".dockerfile.0123abcd"
    text = b"FROM busybox\nCOPY . /src\nWORKDIR /src\n"
    body = _tar({"file.txt": (b"hello\n", 0o644, 0), name: (text, 0o644, 0)})
    query = "t=outside&" + "&".join("dockerfile=" + quote(v) for v in (name, text.decode()))
    status, msgs = stream(api, "POST", "/build?" + query, body, {"Content-Type": "application/x-tar"})
    assert status == 200 and msgs[-1].get("stream") == "Successfully tagged outside:latest\n", msgs
    assert sorted(api.docker("run", "--rm", "outside", "ls", "-a").out.split()) == [".", "..", name, "file.txt"]

    body = _tar({"file.txt": (b"hello\n", 0o644, 0), "hello/world/custom.dockerfile": (text, 0o644, 0)})
    status, msgs = stream(api, "POST", "/build?t=nested&dockerfile=hello/world/custom.dockerfile", body,
                          {"Content-Type": "application/x-tar"})
    assert status == 200 and msgs[-1].get("stream") == "Successfully tagged nested:latest\n", msgs
    assert sorted(api.docker("run", "--rm", "nested", "ls", "-a").out.split()) == [".", "..", "file.txt", "hello"]


def test_build_extra_hosts_reach_the_run_steps(api):
    status, msgs = _build(api, "t=eh&extrahosts=extrahost.local.test:127.0.0.1&extrahosts=hello.world.test:127.0.0.1",
                          "FROM busybox\nRUN ping -c1 -W2 hello.world.test\nRUN cp /etc/hosts /hosts-file\n")
    assert status == 200 and "errorDetail" not in msgs[-1], msgs
    hosts = api.docker("run", "--rm", "eh", "cat", "/hosts-file").out
    assert "127.0.0.1\textrahost.local.test\n" in hosts and "127.0.0.1\thello.world.test\n" in hosts
    status, body = api.request("POST", "/build?extrahosts=no-address", b"FROM busybox\n")
    assert status == 400 and "no-address" in body["message"]


def test_build_cache_from_and_using_cache_for_every_step(api):
    """Docker's classic builder says "Using cache" for every step that came from the cache, ENV
    too; with ``cachefrom`` only those images' steps serve (a missing one: none), even those that
    are in the local cache."""
    df = "FROM busybox\nENV FOO=bar\nLABEL l=1\nRUN touch baz\nRUN touch bax\n"
    assert _build(api, "t=build1", df)[0] == 200
    status, msgs = _build(api, "t=again", df)
    assert status == 200 and _text(msgs).count("Using cache") == 4, msgs  # ENV, LABEL, RUN, RUN
    assert " ---> Using cache\n ---> " in _text(msgs)
    status, msgs = _build(api, "t=build2&cachefrom=" + quote(json.dumps(["build1"])), df)
    assert status == 200 and _text(msgs).count("Using cache") == 4, msgs
    assert image_id(api, "build2") == image_id(api, "build1")
    status, msgs = _build(api, "t=build3&cachefrom=" + quote(json.dumps(["nosuchtag"])), df)
    assert status == 200 and _text(msgs).count("Using cache") == 0, msgs
    # an image of another store (pushed and pulled, here: saved and loaded): its steps serve
    # without any local cache entry, RUN steps included
    api.rl("builder", "prune", "-f")
    status, msgs = _build(api, "t=build4&cachefrom=" + quote(json.dumps(["build1"])), df)
    assert status == 200 and _text(msgs).count("Using cache") == 4, msgs
    status, body = api.request("POST", "/build?cachefrom=notjson", b"FROM busybox\n")
    assert status == 400 and "cachefrom" in body["message"]


def test_build_network_modes(api):
    """``networkmode``: the modes rootless has, and a user-defined network, whose running members
    the RUN steps reach by name; another container's namespace is refused, an unknown network is
    Docker's 404."""
    df = "FROM busybox\nRUN cat /etc/hosts; ip -o addr show\n"
    api.docker("network", "create", "buildnet")
    api.docker("run", "-d", "--name", "target", "--network", "buildnet", "--network-alias", "pingtarget.docker",
               "busybox", "sleep", "300")  # no port exposed: its address answers ping all the same
    status, msgs = _build(api, "nocache=1&networkmode=buildnet", df + "RUN ping -c1 -W5 pingtarget.docker\n")
    assert status == 200 and "errorDetail" not in msgs[-1], msgs
    assert re.search(r"^10\.0\.3\.\d+\t.*pingtarget\.docker", _text(msgs), re.M), msgs
    assert "1 packets received" in _text(msgs)
    status, msgs = _build(api, "nocache=1&networkmode=none", df)
    assert status == 200 and "errorDetail" not in msgs[-1] and "pingtarget" not in _text(msgs), msgs
    assert "eth0" not in _text(msgs)
    status, msgs = _build(api, "nocache=1&networkmode=none", "FROM busybox\nRUN ping -c1 -W1 pingtarget.docker\n")
    assert msgs[-1]["errorDetail"]["code"] == 1, msgs  # the failed RUN's code, as Docker's
    status, msgs = _build(api, "nocache=1&networkmode=bridge", df)
    assert status == 200 and "eth0" in _text(msgs), msgs  # on the shared network
    status, body = _build(api, "networkmode=nosuchnet", df)
    assert status == 404 and body[0]["message"] == "network nosuchnet not found", body
    status, body = _build(api, "networkmode=container:target", df)
    assert status == 400 and "container:target" in body[0]["message"], body
    api.docker("rm", "-f", "target")
