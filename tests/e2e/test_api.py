"""`rootless system service` driven by the real docker CLI (Debian's docker.io, client only) and
raw HTTP: containers, exec, logs, volumes, the socket's security, errors, one engine with the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import time
import urllib.request

import pytest

from tests.apiservice import DOCKER, ApiService
from tests.conftest import wait_for

pytestmark = pytest.mark.userns


def test_version_and_ping(api):
    r = api.docker("version", "--format", "{{json .Server}}")
    server = json.loads(r.out)
    assert server["ApiVersion"] == "1.41" and server["Os"] == "linux"
    assert api.request("GET", "/_ping") == (200, b"OK")
    assert api.request("GET", "/v1.41/_ping") == (200, b"OK")
    status, info = api.request("GET", "/info")
    assert status == 200 and info["OSType"] == "linux" and info["Containers"] == 0


def test_run_output_exit_code_and_streams(api):
    r = api.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", expect=3)
    assert r.out == "out\n"
    assert r.err == "err\n"
    assert api.docker("ps", "-aq").out == ""  # --rm: gone


def test_fast_containers_lose_no_output(api):
    """Attach and wait come before the start: a container that ends at once is seen whole."""
    for i in range(5):
        r = api.docker("run", "--rm", "busybox", "echo", f"fast {i}")
        assert r.out == f"fast {i}\n"
    assert not list(api.rl.runtime.glob("**/pending/*"))  # every waiting socket went with its start


def test_stdin_through_run_and_exec(api):
    assert api.docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="hello\n").out == "HELLO\n"
    api.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "300")
    assert api.docker("exec", "-i", "sleeper", "cat", input="piped\n").out == "piped\n"


def test_detached_published_port_logs_exec_stop_rm(api):
    r = api.docker("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
                   "echo serving; echo hello-from-web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    cid = r.out.strip()
    assert len(cid) == 64
    port = api.docker("port", "web", "8080").out.strip().rsplit(":", 1)[1]

    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as resp:
                return resp.read()
        except OSError:
            return None
    assert wait_for(fetch, 30, "the published port") == b"hello-from-web\n"
    ps = api.docker("ps", "--format", "{{.Names}} {{.Status}} {{.Ports}}").out
    assert ps.startswith("web Up ") and f"127.0.0.1:{port}->8080/tcp" in ps
    assert api.docker("logs", "web").out == "serving\n"
    r = api.docker("exec", "web", "sh", "-c", "cat /tmp/index.html; echo oops >&2; exit 7", expect=7)
    assert (r.out, r.err) == ("hello-from-web\n", "oops\n")
    assert api.docker("exec", "web", "nonexistent-command", expect=None).code in (126, 127)
    api.docker("stop", "-t", "1", "web")
    assert api.docker("inspect", "-f", "{{.State.Status}}", "web").out.strip() == "exited"
    api.docker("rm", "web")
    assert api.docker("ps", "-aq").out == ""


def _ws_connect(api, path: str) -> tuple[socket.socket, bytes]:
    """A WebSocket client's opening handshake over the service's socket (the standard library
    only): the socket, and what came after the 101's headers."""
    import base64
    import hashlib
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert b"\r\nSec-WebSocket-Accept: " + accept in head, head
    return sock, rest


def _ws_messages(sock: socket.socket, buf: bytes, until: bytes | None = None) -> list[tuple[int, bytes]]:
    """The server's frames (opcode, payload) up to its close frame, or until a payload ends with ``until``."""
    out = []
    while True:
        while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F if buf[1] & 0x7F < 126 else 0):
            assert not buf[1] & 0x80, "the server's frames are not masked"
            n, pos = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, pos = int.from_bytes(buf[2:4], "big"), 4
            if len(buf) < pos + n:
                break
            out.append((buf[0] & 0x0F, buf[pos:pos + n]))
            buf = buf[pos + n:]
            if out[-1][0] == 8 or (until and b"".join(p for _, p in out).endswith(until)):
                return out
        chunk = sock.recv(65536)
        if not chunk:
            return out
        buf += chunk


def _ws_send(sock: socket.socket, opcode: int, payload: bytes) -> None:
    mask = os.urandom(4)
    assert len(payload) < 126
    sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def test_attach_over_a_websocket(api):
    """``GET /containers/{id}/attach/ws``: raw output as binary messages, messages as input, a ping
    answered, the close at the end; ``logs=1`` replays the log; a plain GET is refused (400)."""
    cid = api.docker("create", "-i", "--name", "wsc", "busybox", "sh", "-c",
                     "echo ready; read line; echo got:$line; echo err >&2; printf done").out.strip()
    sock, rest = _ws_connect(api, f"/v1.41/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1&stderr=0")
    with sock:
        assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert _ws_messages(sock, rest, until=b"ready\n") == [(2, b"ready\n")]  # binary, not multiplexed
        _ws_send(sock, 9, b"ping?")
        _ws_send(sock, 2, b"hello\n")
        got = _ws_messages(sock, b"")
        assert (10, b"ping?") in got
        assert b"".join(p for op, p in got if op == 2) == b"got:hello\ndone"  # no stderr: not asked
        assert got[-1] == (8, (1000).to_bytes(2, "big"))
    assert api.docker("wait", cid).out.strip() == "0"
    sock, rest = _ws_connect(api, f"/containers/{cid}/attach/ws?logs=1&stdout=1&stderr=1")
    with sock:
        got = _ws_messages(sock, rest)
        assert b"".join(p for op, p in got if op == 2) == b"ready\ngot:hello\nerr\ndone"
        assert got[-1][0] == 8
    sock, rest = _ws_connect(api, f"/v1.25/containers/{cid}/attach/ws?logs=1")  # before 1.28: text; 1.42: all streams
    with sock:
        got = _ws_messages(sock, rest)
        assert b"".join(p for op, p in got if op == 1) == b"ready\ngot:hello\nerr\ndone" and got[-1][0] == 8
    status, body = api.request("GET", f"/v1.41/containers/{cid}/attach/ws?stream=1")
    assert status == 400 and "WebSocket" in body["message"]


def test_one_engine_with_the_cli(api):
    """A container made through the API is the one `rootless ps` shows, and the other way round."""
    api.docker("create", "--name", "from-api", "--label", "made=api", "busybox", "true")
    assert "from-api" in api.rl("ps", "-a", "--format", "{{.Names}}").out
    api.rl("create", "--name", "from-cli", "--label", "made=cli", "busybox", "true")
    names = api.docker("ps", "-a", "--filter", "label=made", "--format", "{{.Names}} {{.Label \"made\"}}").out
    assert sorted(names.splitlines()) == ["from-api api", "from-cli cli"]
    api.docker("start", "-a", "from-cli")
    assert api.rl("inspect", "-f", "{{.State.Status}}", "from-cli").out.strip() == "exited"


def test_volumes(api):
    api.docker("volume", "create", "--label", "k=v", "data")
    api.docker("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert api.docker("run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f").out == "kept\n"
    assert "data" in api.docker("volume", "ls", "-q").out.split()
    assert json.loads(api.docker("volume", "inspect", "data").out)[0]["Labels"] == {"k": "v"}
    assert "data" in api.rl("volume", "ls", "-q").out.split()  # the CLI's volume
    api.docker("volume", "rm", "data")
    api.docker("volume", "inspect", "data", expect=1)


def test_bind_mount_and_cp(api, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in.txt").write_text("from the host\n")
    r = api.docker("run", "--rm", "-v", f"{host}:/mnt", "busybox", "sh", "-c",
                   "cat /mnt/in.txt; echo back > /mnt/out.txt")
    assert r.out == "from the host\n" and (host / "out.txt").read_text() == "back\n"
    api.docker("run", "-d", "--name", "files", "busybox", "sleep", "300")
    api.docker("cp", str(host / "in.txt"), "files:/tmp/copied.txt")
    assert api.docker("exec", "files", "cat", "/tmp/copied.txt").out == "from the host\n"
    api.docker("cp", "files:/etc/hostname", str(tmp_path / "hostname"))
    assert ((tmp_path / "hostname").read_text().strip()
            == api.docker("inspect", "-f", "{{.Config.Hostname}}", "files").out.strip())


def test_errors_are_dockers(api):
    r = api.docker("start", "no-such-container", expect=1)
    assert "No such container" in r.err or "no such container" in r.err.lower()
    assert api.request("GET", "/v1.41/containers/nope/json")[0] == 404
    status, body = api.request("GET", "/v1.41/no/such/endpoint")
    assert status == 404 and "GET /no/such/endpoint" in body["message"]
    status, body = api.request("GET", "/v1.41/plugins")
    assert status == 501 and "/plugins" in body["message"]
    api.docker("create", "--name", "dup", "busybox", "true")
    r = api.docker("create", "--name", "dup", "busybox", "true", expect=1)
    assert "already in use" in r.err
    r = api.docker("run", "--rm", "no-such-image-here", expect=125)
    assert "no-such-image-here" in r.err
    status, body = api.request("POST", "/containers/create", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in body["message"]


def _docker_py(api):
    """docker-py (Testcontainers' client) on the service: its exception classes come from the
    status and Docker's texts."""
    docker = pytest.importorskip("docker")
    return docker, docker.DockerClient(base_url=f"unix://{api.socket}", version="1.41")


def test_error_texts_clients_match_on(api):
    """Docker's texts where clients decide by them: a missing image is docker-py's ImageNotFound
    (so ``containers.run`` pulls), a missing container its NotFound, an unknown log driver the
    line docker-py's tests accept."""
    status, body = api.request("POST", "/containers/create", {"Image": "nothere"})
    assert (status, body) == (404, {"message": "No such image: nothere:latest"})
    assert api.request("GET", "/images/nothere:2/json") == (404, {"message": "No such image: nothere:2"})
    assert api.request("GET", "/containers/nope/json") == (404, {"message": "No such container: nope"})
    assert api.request("DELETE", "/containers/nope") == (404, {"message": "No such container: nope"})
    status, body = api.request("POST", "/containers/create",
                               {"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "asdf", "Config": {}}}})
    assert (status, body) == (400, {"message": "logger: no log driver named 'asdf' is registered"})
    docker, client = _docker_py(api)
    with contextlib.closing(client):
        with pytest.raises(docker.errors.ImageNotFound):
            client.containers.create("nothere")
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get("nothere")
        with pytest.raises(docker.errors.NotFound) as e:
            client.containers.get("nope")
        assert not isinstance(e.value, docker.errors.ImageNotFound)
        # containers.run pulls on ImageNotFound: the pull's failure is said, not the create's 404
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.run("127.0.0.1:1/none/such:1", "true")
        assert "/containers/create" not in str(e.value)
    assert api.docker("ps", "-aq").out == ""


def test_swarm_endpoints_answer_as_a_node_in_no_swarm(api):
    """503 with Docker's texts: docker-py's forced leave (every network test's teardown) takes it
    as done; init and join say rootless has no swarm; info says inactive."""
    manager = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
               'this node to swarm and try again.')
    for method, path in (("GET", "/swarm"), ("POST", "/swarm/update?version=1"), ("POST", "/swarm/unlock"),
                         ("GET", "/swarm/unlockkey"), ("GET", "/services"), ("POST", "/services/create"),
                         ("GET", "/services/x"), ("DELETE", "/services/x"), ("GET", "/services/x/logs"),
                         ("GET", "/nodes"), ("GET", "/tasks"), ("GET", "/tasks/x"), ("GET", "/secrets"),
                         ("POST", "/secrets/create"), ("GET", "/configs"), ("DELETE", "/configs/x"),
                         ("GET", "/v1.41/nodes/x")):
        assert api.request(method, path) == (503, {"message": manager}), (method, path)
    for path in ("/swarm/leave", "/swarm/leave?force=1", "/v1.41/swarm/leave?force=True"):
        assert api.request("POST", path) == (503, {"message": "This node is not part of a swarm"})
    for path in ("/swarm/init", "/swarm/join"):
        status, body = api.request("POST", path, {"ListenAddr": "0.0.0.0:2377"})
        assert status == 503 and "rootless has no swarm mode" in body["message"]
    status, info = api.request("GET", "/info")
    assert status == 200 and info["Swarm"]["LocalNodeState"] == "inactive" and info["Swarm"]["NodeID"] == ""
    docker, client = _docker_py(api)
    with contextlib.closing(client):
        assert client.api.leave_swarm(force=True) is True
        with pytest.raises(docker.errors.APIError) as e:
            client.swarm.init()
        assert e.value.response.status_code == 503
    assert api.docker("info", "--format", "{{.Swarm.LocalNodeState}}").out.strip() == "inactive"
    assert manager in api.docker("service", "ls", expect=1).err
    assert "This node is not part of a swarm" in api.docker("swarm", "leave", "--force", expect=1).err
    assert "Traceback" not in api.service_log()


def test_wait_and_kill(api):
    api.docker("run", "-d", "--name", "w", "busybox", "sleep", "300")
    waiter = subprocess.Popen([DOCKER, "wait", "w"], env=api.docker_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    api.docker("kill", "w")
    out, _ = waiter.communicate(timeout=60)
    assert out.decode().strip() == "137"


def test_socket_is_private_and_checks_the_peer(api):
    st = os.stat(api.socket)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(api.socket.parent).st_mode) == 0o700


def test_another_users_connection_is_dropped(busybox):
    """Even with the socket opened to all, another user's connection is dropped without a word
    (SO_PEERCRED): a subordinate uid (uid 1000 of a user namespace of ours) tries."""
    import shutil
    import tempfile
    from pathlib import Path
    top = Path(tempfile.mkdtemp(prefix="rl-peer-", dir="/tmp"))
    svc = ApiService(busybox, socket_path=top / "docker.sock")
    try:
        os.chmod(top, 0o755)
        os.chmod(svc.socket, 0o666)
        script = "\n".join([
            "import os, socket",
            "os.setgid(1000); os.setuid(1000)",
            "s = socket.socket(socket.AF_UNIX)",
            f"s.connect({str(svc.socket)!r})",
            "try:",
            "    s.sendall(b'GET /_ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')",
            "    print(repr(s.recv(100)))",
            "except (BrokenPipeError, ConnectionResetError):",
            "    print('reset')"])
        r = busybox("unshare", "python3", "-c", script)
        assert r.out.strip() in ("b''", "reset")  # closed unanswered (a reset when our request was unread)
        assert svc.request("GET", "/_ping")[0] == 200  # the owner still is served
    finally:
        svc.stop()
        shutil.rmtree(top, ignore_errors=True)


def test_idle_timeout_ends_the_service(busybox, tmp_path):
    svc = ApiService(busybox, "--time", "1", socket_path=tmp_path / "s" / "docker.sock")
    try:
        svc.proc.wait(30)
    finally:
        svc.stop()
    assert svc.proc.returncode == 0
    assert not svc.socket.exists()


def test_refuses_tcp_beyond_loopback(busybox):
    r = busybox("system", "service", "tcp://0.0.0.0:2375", expect=125)
    assert "refusing to listen" in r.err


def test_a_second_service_on_the_same_socket_is_refused(api):
    r = api.rl("system", "service", f"unix://{api.socket}", expect=125)
    assert "in use" in r.err


def test_hijacked_attach_to_a_running_container(api):
    """The raw attach protocol: the multiplexed stream's frames, input, and its end (which ends
    cat: ``create -i`` asks for StdinOnce, as ``run -i`` does; ``run -di`` would keep the input open)."""
    api.docker("create", "-i", "--name", "cat", "busybox", "cat")
    api.docker("start", "cat")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(api.socket))
    s.sendall(b"POST /v1.41/containers/cat/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              b"Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    s.sendall(b"echoed\n")
    s.shutdown(socket.SHUT_WR)  # end of input: cat exits
    data = b""
    s.settimeout(30)
    while chunk := s.recv(65536):
        data += chunk
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x07echoed\n"
    deadline = time.monotonic() + 30
    while api.docker("inspect", "-f", "{{.State.Status}}", "cat").out.strip() != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_events_stream(api):
    """``GET /events``: a container's create, start, die and destroy, as Docker sends them."""
    since = str(int(time.time()) - 1)
    api.docker("run", "--rm", "--name", "ev", "busybox", "sh", "-c", "exit 2", expect=2)
    until = str(int(time.time()) + 1)
    status, body = api.request("GET", f"/v1.41/events?since={since}&until={until}&filters="
                                      + urllib.request.quote(json.dumps({"container": ["ev"]})))
    assert status == 200
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    actions = [e["Action"] for e in events if e["Type"] == "container"]
    assert actions[:2] == ["create", "start"] and actions[-2:] == ["die", "destroy"], actions
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "2" and die["Actor"]["Attributes"]["name"] == "ev"
    docker_events = api.docker("events", "--since", since, "--until", until, "--filter", "container=ev",
                               "--format", "{{.Action}}").out.split()
    assert docker_events == actions


def test_socket_activation(busybox, tmp_path):
    """systemd's socket activation (LISTEN_FDS): the service takes the socket it is given."""
    import shutil
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate is missing (the systemd package has it)")
    sock = tmp_path / "act" / "docker.sock"
    sock.parent.mkdir(mode=0o700)
    from tests.conftest import rootless_argv
    proc = subprocess.Popen([activate, "-l", str(sock), *rootless_argv(), "system", "service", "--time", "0"],
                            env=busybox.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(sock.exists, 30, "the activation socket")
        from tests.apiservice import UnixHTTPConnection
        conn = UnixHTTPConnection(str(sock))
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
        conn.close()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in out, out


COMPOSE_PROJECT = """\
version: "3"
services:
  web:
    image: busybox
    init: true
    command: sh -c "echo hello-from-web > /tmp/index.html && echo web-ready && exec httpd -f -p 8080 -h /tmp"
    expose: ["8080"]
  client:
    image: busybox
    depends_on: [web]
    command: sh -c "for i in $$(seq 1 150); do wget -qO- http://web:8080/index.html && exit 0; sleep 0.1; done; exit 1"
"""


def test_compose_two_services_reach_each_other_by_name(api, tmp_path):
    """Docker Compose (Debian's docker-compose) brings a project up on its own network, one service
    reaches the other by its service name, then `down` removes the containers and the network."""
    import shutil
    compose = shutil.which("docker-compose")
    if not compose:
        from tests.e2e.conftest import _need
        _need("docker-compose", "not installed (apt-get install --no-install-recommends docker-compose)")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_PROJECT)

    def run(*args, expect=0):
        cp = subprocess.run([compose, "--no-ansi", *args], cwd=project, env=api.docker_env, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert cp.returncode == expect, (f"{args}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}\n"
                                         f"{api.service_log()[-2000:]}")
        return cp
    up = run("up", "--abort-on-container-exit", "--exit-code-from", "client")
    assert "hello-from-web" in up.stdout and "web-ready" in up.stdout
    assert "proj_default" in api.rl("network", "ls", "--format", "{{.Name}}").out.split()
    names = api.docker("ps", "-a", "--filter", "label=com.docker.compose.project=proj", "--format", "{{.Names}}").out
    assert sorted(names.split()) == ["proj_client_1", "proj_web_1"]
    run("up", "-d", "web")
    assert run("exec", "-T", "web", "cat", "/tmp/index.html").stdout == "hello-from-web\n"
    run("down")
    assert api.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=proj").out == ""
    assert "proj_default" not in api.rl("network", "ls", "--format", "{{.Name}}").out.split()


def test_compose_v2_plugin_project_up_exec_down(api, tmp_path):
    """Compose v2 (Debian 13's docker-compose, run as the docker CLI's plugin: `docker compose`)
    brings the same project up on its own network, one service reaches the other by name, then
    `ps`, `exec`, `logs` and `down` (containers and network removed)."""
    api.enable_compose()
    project = tmp_path / "proj2"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_PROJECT.replace('version: "3"\n', ""))

    def run(*args, expect=0):
        cp = subprocess.run([DOCKER, "compose", "--ansi", "never", *args], cwd=project, env=api.docker_env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert cp.returncode == expect, (f"{args}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}\n"
                                         f"{api.service_log()[-2000:]}")
        return cp
    assert "Docker Compose version 2." in run("version").stdout
    up = run("up", "--abort-on-container-exit", "--exit-code-from", "client")
    assert "hello-from-web" in up.stdout and "web-ready" in up.stdout
    names = api.docker("ps", "-a", "--filter", "label=com.docker.compose.project=proj2", "--format", "{{.Names}}").out
    assert sorted(names.split()) == ["proj2-client-1", "proj2-web-1"]
    run("up", "-d", "web")
    ps = run("ps", "--format", "{{.Name}} {{.Image}} {{.State}}").stdout.split("\n")
    assert "proj2-web-1 busybox running" in ps, ps  # the image as the project names it, as Docker shows it
    assert run("exec", "-T", "web", "cat", "/tmp/index.html").stdout == "hello-from-web\n"
    assert "web-ready" in run("logs", "web").stdout
    run("down")
    assert api.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=proj2").out == ""
    assert "proj2_default" not in api.rl("network", "ls", "--format", "{{.Name}}").out.split()


def test_compose_v2_up_build_with_the_classic_builder(api, tmp_path):
    """``docker compose up --build`` as the README shows it: the service's /_ping says the classic
    builder (``Builder-Version: 1``), but Compose v2 takes BuildKit unless ``DOCKER_BUILDKIT=0``
    (the docker CLI's rule: only the environment, a builder alias or a Windows server change it),
    and with it builds through ``POST /build``."""
    import http.client

    from tests.apiservice import UnixHTTPConnection
    conn = UnixHTTPConnection(str(api.socket))
    conn.request("GET", "/_ping")
    resp: http.client.HTTPResponse = conn.getresponse()
    assert resp.read() == b"OK" and resp.getheader("Builder-Version") == "1"
    conn.close()
    api.enable_compose()
    project = tmp_path / "proj3"
    project.mkdir()
    (project / "Dockerfile").write_text("FROM busybox\nENV PATH=/opt/app:$PATH\nRUN echo built-by-compose > /made\n"
                                        'CMD ["cat", "/made"]\n')
    (project / "compose.yaml").write_text("services:\n  app:\n    build: .\n")
    assert api.docker_env["DOCKER_BUILDKIT"] == "0"  # as the README says to export it
    cp = subprocess.run([DOCKER, "compose", "--ansi", "never", "up", "--build", "--abort-on-container-exit"],
                        cwd=project, env=api.docker_env, capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"{cp.stdout}\n{cp.stderr}\n{api.service_log()[-2000:]}"
    assert "built-by-compose" in cp.stdout
    subprocess.run([DOCKER, "compose", "down", "--rmi", "local"], cwd=project, env=api.docker_env,
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL, check=True)


def test_testcontainers_generic_container(api, monkeypatch):
    """Testcontainers (from PyPI) starts a container, waits for its log line, reads its published
    port and talks to it, then removes it."""
    tc = pytest.importorskip("testcontainers.core.container")
    from testcontainers.core.config import ConnectionMode
    from testcontainers.core.config import testcontainers_config as config
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy
    monkeypatch.setenv("DOCKER_HOST", f"unix://{api.socket}")
    # Ryuk (its reaper container) comes from Docker Hub, out of reach here. The connection mode is
    # said outright: this test machine is itself a container (/.dockerenv), which would make
    # Testcontainers assume Docker-in-Docker and dial the containers' gateway.
    monkeypatch.setattr(config, "ryuk_disabled", True)
    monkeypatch.setattr(config, "connection_mode_override", ConnectionMode.docker_host)
    with tc.DockerContainer("busybox").with_command(
            ["sh", "-c", "echo tc-page > /tmp/p.html; echo ready; exec httpd -f -p 8080 -h /tmp"]
    ).with_exposed_ports(8080).waiting_for(LogMessageWaitStrategy("ready")) as c:
        host, port = c.get_container_host_ip(), c.get_exposed_port(8080)
        assert host == "localhost"
        fetched = wait_for(lambda: _get(f"http://{host}:{port}/p.html"), 30, "the published port")
        assert fetched == b"tc-page\n"
        cid = c.get_wrapped_container().id
        assert cid in api.rl("ps", "-q", "--no-trunc").out
    assert api.rl("ps", "-aq").out == ""


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read()
    except OSError:
        return None


def test_idle_time_counts_from_the_end_of_the_last_connection(busybox, tmp_path):
    """A connection longer than --time (a long build or pull) does not end the service when it
    closes: idle time starts there."""
    svc = ApiService(busybox, "--time", "2", socket_path=tmp_path / "s" / "docker.sock")
    try:
        until = int(time.time()) + 3
        status, _ = svc.request("GET", f"/events?until={until}")  # held open for ~3 s
        assert status == 200
        assert svc.request("GET", "/_ping") == (200, b"OK")
    finally:
        svc.stop()


def test_top_rename_restart_stats_export_prune(api, tmp_path):
    api.docker("run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo started; exec sleep 300")
    top = api.docker("top", "busy").out
    assert "PID" in top.splitlines()[0] and "sleep 300" in top
    top = api.docker("top", "busy", "-o", "pid,args").out.splitlines()  # the API's ps_args
    assert top[0].split() == ["PID", "COMMAND"] and top[1].split()[1:] == ["sleep", "300"] and len(top) == 2
    api.docker("rename", "busy", "renamed")
    assert api.rl("ps", "--format", "{{.Names}}").out.split() == ["renamed"]
    api.docker("restart", "-t", "0", "renamed")
    assert api.docker("logs", "renamed").out == "started\nstarted\n"  # one log across both runs
    stats = api.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "renamed").out.split()
    assert stats[0] == "renamed" and int(stats[1]) >= 1
    api.docker("export", "-o", str(tmp_path / "fs.tar"), "renamed")
    import tarfile
    with tarfile.open(tmp_path / "fs.tar") as t:
        assert "bin/busybox" in t.getnames() or "./bin/busybox" in t.getnames()
    api.docker("pause", "renamed")  # served since issue 24 (tests/e2e/test_docker_extras.py)
    api.docker("stop", "-t", "0", "renamed")
    api.docker("create", "--name", "idle", "busybox", "true")
    pruned = api.docker("container", "prune", "-f").out
    assert "Total reclaimed space" in pruned
    assert api.docker("ps", "-aq").out == ""


BAD_BODIES = [
    ("/containers/create", {"Image": 5}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": "x"}}}),
    ("/containers/create", {"Image": "busybox", "Env": "A=1"}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"Memory": "lots"}}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind"}]}}),
    ("/containers/create", {"Image": "busybox", "HostConfig": "x"}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t",
                                                                          "TmpfsOptions": {"Mode": "755"}}]}}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"Devices": [{"PathInContainer": "/dev/x"}]}}),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"LogConfig": {"Type": 1}}}),
    ("/containers/create?name=../../x", {"Image": "busybox"}),
    ("/containers/sleeper/exec", {"Cmd": 5}),
    ("/containers/sleeper/exec", {"Cmd": ["true"], "Env": "A=1"}),
    ("/volumes/create", {"Name": 5}),
    ("/volumes/create", {"Labels": "x"}),
    ("/networks/create", {"Name": ["x"]}),
    ("/networks/create", {"Name": "n", "Labels": 3}),
]


def test_container_list_limits_and_status_filters_take_every_state(api):
    """``GET /containers/json`` lists as ``rootless ps`` does (one use case): a ``status`` filter or
    a ``limit`` takes stopped containers too, without ``all`` (the API listed running ones only)."""
    api.docker("run", "--name", "done0", "busybox", "true")
    api.docker("run", "-d", "--name", "up1", "busybox", "sleep", "300")

    def names(query: str) -> list[str]:
        status, answer = api.request("GET", "/containers/json" + query)
        assert status == 200, (query, answer)
        return [c["Names"][0] for c in answer]
    assert names("") == ["/up1"]
    assert names("?all=1") == ["/up1", "/done0"]
    assert names("?filters=%7B%22status%22%3A%5B%22exited%22%5D%7D") == ["/done0"]
    assert names("?limit=2") == ["/up1", "/done0"]
    assert names("?limit=1&filters=%7B%22name%22%3A%5B%22done0%22%5D%7D") == ["/done0"]
    assert api.docker("ps", "-l", "--filter", "name=done0", "--format", "{{.Names}}").out.split() == ["done0"]
    assert api.rl("ps", "-l", "--filter", "name=done0", "--format", "{{.Names}}").out.split() == ["done0"]


def test_bad_bodies_are_400s_not_crashes(api):
    """Wrongly typed or malformed JSON: Docker's 400 with a message, never an internal error."""
    api.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "300")
    for path, body in BAD_BODIES:
        status, answer = api.request("POST", path, body)
        assert status == 400, (path, body, status, answer)
        assert "internal error" not in answer["message"], (path, body, answer)
    for path in ("/events?since=garbage", "/events?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
                 "/containers/json?filters=%5B1%5D", "/containers/json?limit=x", "/images/json?filters=%7Bbad"):
        status, answer = api.request("GET", path)
        assert status == 400 and "internal error" not in answer["message"], (path, status, answer)
    assert "Traceback" not in api.service_log()
    assert api.docker("ps", "-aq").out.split() == [api.docker("inspect", "-f", "{{.Id}}", "sleeper").out.strip()[:12]]


def test_info_says_the_registry_settings_as_docker(rl):
    """``RegistryConfig`` as Docker's daemon reports it: the listed CIDRs, then its loopback
    defaults (both of them: ``::1`` is plain HTTP too); a listed name and a registry's own
    ``insecure`` as ``IndexConfigs``; Docker Hub's mirrors."""
    rl.config.write_text('[registries]\ninsecure = ["10.1.0.0/16", "myhost:5000", "127.0.0.0/8"]\n'
                         '[registries."docker.io"]\nmirrors = ["127.0.0.1:5999", "mirror.example"]\n'
                         '[registries."own.example"]\ninsecure = true\n')
    service = ApiService(rl)
    try:
        status, info = service.request("GET", "/info")
        assert status == 200
        reg = info["RegistryConfig"]
        assert reg["InsecureRegistryCIDRs"] == ["10.1.0.0/16", "127.0.0.0/8", "::1/128"]
        assert reg["Mirrors"] == ["http://127.0.0.1:5999/", "https://mirror.example/"]
        assert reg["IndexConfigs"] == {
            "myhost:5000": {"Name": "myhost:5000", "Mirrors": [], "Secure": False, "Official": False},
            "own.example": {"Name": "own.example", "Mirrors": [], "Secure": False, "Official": False},
            "docker.io": {"Name": "docker.io", "Mirrors": reg["Mirrors"], "Secure": True, "Official": True}}
        out = service.docker("info").out
        assert "Insecure Registries:" in out and "::1/128" in out and "myhost:5000" in out
    finally:
        service.stop()
