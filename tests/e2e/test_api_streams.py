"""The API's hijacked streams as Docker serves them: an exec's terminal and framing, the detach
keys of attach and exec, `kill` that answers once SIGKILL took effect, logs right after a start."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.userns


def _hijack(api, path: str, body: dict | None = None) -> socket.socket:
    """POST ``path`` with Docker's upgrade headers; the socket once the 101's head is read."""
    data = json.dumps(body).encode() if body is not None else b""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(api.socket))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    s.settimeout(30)
    return s


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def _exec(api, container: str, cmd: list[str], **fields) -> str:
    status, body = api.request("POST", f"/v1.41/containers/{container}/exec", {"Cmd": cmd, **fields})
    assert status == 201, body
    return body["Id"]


def _closed(s: socket.socket) -> bool:
    """The server ended the stream: reading gives EOF (or the peer reset it)."""
    try:
        s.sendall(b"make sure the socket is closed\n")
        return s.recv(128) == b""
    except OSError:
        return True


def test_exec_terminal_comes_from_its_creation_framing_from_the_start(api):
    """docker-py creates the exec with Tty and starts it with ``Tty: false``: the process has a
    terminal (``\\r\\n``, one stream), the stream is framed as the start asked."""
    api.docker("run", "-d", "-i", "--name", "c", "busybox", "cat")
    eid = _exec(api, "c", ["sh", "-c", "echo out; echo err >&2"], Tty=True, AttachStdout=True, AttachStderr=True)
    s = _hijack(api, f"/v1.41/exec/{eid}/start", {"Tty": False, "Detach": False})
    data = _read_all(s)
    frames, rest = [], data
    while rest:
        assert rest[1:4] == b"\0\0\0", data
        n = int.from_bytes(rest[4:8], "big")
        frames.append((rest[0], rest[8:8 + n]))
        rest = rest[8 + n:]
    assert {stream for stream, _ in frames} == {1}  # a terminal has one stream
    assert b"".join(chunk for _, chunk in frames) == b"out\r\nerr\r\n"
    status, info = api.request("GET", f"/v1.41/exec/{eid}/json")
    assert info["ProcessConfig"]["tty"] is True and info["ExitCode"] == 0
    # started with Tty: raw bytes
    eid = _exec(api, "c", ["echo", "raw"], Tty=True, AttachStdout=True)
    assert _read_all(_hijack(api, f"/v1.41/exec/{eid}/start", {"Tty": True})) == b"raw\r\n"


@pytest.mark.parametrize("query, keys", [("", b"\x10\x11"), ("&detachKeys=ctrl-x", b"\x18"),
                                         ("&detachKeys=a,ctrl-b", b"a\x02")])
def test_attach_detach_keys_end_the_stream_and_leave_it_running(api, query, keys):
    api.docker("run", "-d", "-i", "-t", "--name", "t", "busybox", "cat")
    s = _hijack(api, f"/v1.41/containers/t/attach?stream=1&stdin=1&stdout=1{query}")
    s.sendall(b"typed\n")
    got = b""
    while got.count(b"typed") < 2:
        got += s.recv(4096)  # the terminal's echo, then cat's copy
    for k in keys:  # one key at a time, as a user types them
        s.sendall(bytes([k]))
        time.sleep(0.2)
    s.settimeout(10)
    assert wait_for(lambda: _closed(s), 10, "the end of the attach stream")
    assert api.docker("inspect", "-f", "{{.State.Running}}", "t").out.strip() == "true"
    # the container's input is still open: a new attach is typed into the same cat
    s = _hijack(api, "/v1.41/containers/t/attach?stream=1&stdin=1&stdout=1")
    s.sendall(b"again\n")
    got = b""
    while got.count(b"again") < 2:
        got += s.recv(4096)
    s.close()


def test_attach_detach_keys_need_a_terminal_and_valid_keys(api):
    """Without -t the bytes are the container's (Docker's rule); bad keys are a 400."""
    api.docker("run", "-d", "-i", "--name", "p", "busybox", "cat")
    s = _hijack(api, "/v1.41/containers/p/attach?stream=1&stdin=1&stdout=1")
    s.sendall(b"\x10\x11x\n")
    got = b""
    while not got.endswith(b"x\n"):
        got += s.recv(4096)
    assert got == b"\x01\0\0\0\0\0\0\x04\x10\x11x\n"
    s.close()
    status, body = api.request("POST", "/v1.41/containers/p/exec", {"Cmd": ["cat"], "detachKeys": "ctrl-"})
    assert status == 400 and "detach keys" in body["message"]



def _attach_and_echo(api, container: str, line: bytes) -> socket.socket:
    """An attach with stdin to a ``cat`` without a terminal, ``line`` typed and its copy read back."""
    s = _hijack(api, f"/v1.41/containers/{container}/attach?stream=1&stdin=1&stdout=1")
    s.sendall(line)
    got = b""
    while not got.endswith(line):
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    return s


def _stdin_once(api, container: str) -> bool:
    status, info = api.request("GET", f"/v1.41/containers/{container}/json")
    assert status == 200, info
    return info["Config"]["StdinOnce"]


def test_attach_input_end_leaves_the_input_open_without_stdin_once(api):
    """Docker: without StdinOnce (``run -di``) the end of an attach client's input ends the
    attach; the container keeps running, its input open for the next attach."""
    api.docker("run", "-di", "--name", "k", "busybox", "cat")
    assert _stdin_once(api, "k") is False
    s = _attach_and_echo(api, "k", b"one\n")
    s.shutdown(socket.SHUT_WR)
    assert _read_all(s) == b""  # the attach ends, nothing more
    s.close()
    time.sleep(0.5)  # (before, cat read EOF and ended)
    assert api.docker("inspect", "-f", "{{.State.Running}}", "k").out.strip() == "true"
    s = _attach_and_echo(api, "k", b"two\n")  # a later attach types into the same cat
    s.close()
    time.sleep(0.5)
    assert api.docker("inspect", "-f", "{{.State.Running}}", "k").out.strip() == "true"


def test_attach_input_end_closes_the_input_with_stdin_once(api):
    """Docker: with StdinOnce (and no terminal) the end of the attach client's input closes the
    container's: ``cat`` reads EOF, ends with 0, and the attach gets its output to the end."""
    status, body = api.request("POST", "/v1.41/containers/create?name=o",
                               {"Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True,
                                "AttachStdin": True, "AttachStdout": True, "AttachStderr": True})
    assert status == 201, body
    assert _stdin_once(api, "o") is True
    status, body = api.request("POST", "/v1.41/containers/o/start")
    assert status == 204, body
    s = _attach_and_echo(api, "o", b"one\n")
    s.shutdown(socket.SHUT_WR)
    _read_all(s)
    s.close()
    status, body = api.request("POST", "/v1.41/containers/o/wait")
    assert status == 200 and body["StatusCode"] == 0, body


@pytest.mark.parametrize("stdin_once", [False, True])
def test_attach_input_end_with_a_terminal_ends_the_attach_not_the_input(api, stdin_once):
    """Docker: with a terminal, StdinOnce or not, the end of the attach client's input ends the
    attach (before, it waited for ever) and leaves the container's input open."""
    status, body = api.request("POST", "/v1.41/containers/create?name=t",
                               {"Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "Tty": True,
                                "StdinOnce": stdin_once, "AttachStdin": True, "AttachStdout": True})
    assert status == 201, body
    status, body = api.request("POST", "/v1.41/containers/t/start")
    assert status == 204, body
    for line in (b"one", b"two"):  # the second attach types into the same cat
        s = _hijack(api, "/v1.41/containers/t/attach?stream=1&stdin=1&stdout=1")
        s.sendall(line + b"\n")
        got = b""
        while got.count(line) < 2:  # the terminal's echo, then cat's copy
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        _read_all(s)
        s.close()
        assert api.docker("inspect", "-f", "{{.State.Running}}", "t").out.strip() == "true"

def test_docker_run_i_ends_at_input_eof_and_says_stdin_once(api):
    """The docker CLI's ``run -i`` asks for StdinOnce: piped input's end ends ``cat``; so does its
    ``create -i``, not ``run -di``. Our CLI records it as Docker's CLI sends it."""
    r = api.docker("run", "-i", "--name", "r", "busybox", "cat", input="piped\n")
    assert r.out == "piped\n" and r.code == 0
    assert _stdin_once(api, "r") is True
    api.docker("run", "-di", "--name", "d", "busybox", "cat")
    assert _stdin_once(api, "d") is False
    api.docker("create", "-i", "--name", "c", "busybox", "cat")
    assert _stdin_once(api, "c") is True
    r = api.rl("run", "-i", "--name", "ours", "busybox", "cat", input="ours\n")
    assert r.out == "ours\n"
    assert _stdin_once(api, "ours") is True
    api.rl("create", "-i", "--name", "ours-c", "busybox", "cat")
    assert _stdin_once(api, "ours-c") is True
    api.rl("run", "-di", "--name", "ours-d", "busybox", "cat")
    assert _stdin_once(api, "ours-d") is False

@pytest.mark.parametrize("field, keys", [({}, b"\x10\x11"), ({"detachKeys": "ctrl-p"}, b"\x10"),
                                         ({"DetachKeys": "ctrl-x,y"}, b"\x18y")])
def test_exec_detach_keys_end_the_stream_and_leave_the_exec_running(api, field, keys):
    api.docker("run", "-d", "-i", "--name", "c", "busybox", "cat")
    eid = _exec(api, "c", ["cat"], Tty=True, AttachStdin=True, AttachStdout=True, **field)
    s = _hijack(api, f"/v1.41/exec/{eid}/start", {"Tty": True})
    s.sendall(b"hi\n")
    got = b""
    while got.count(b"hi") < 2:
        got += s.recv(4096)
    for k in keys:
        s.sendall(bytes([k]))
        time.sleep(0.2)
    assert wait_for(lambda: _closed(s), 10, "the end of the exec stream")
    status, info = api.request("GET", f"/v1.41/exec/{eid}/json")
    assert info["Running"] is True and info["ExitCode"] is None  # detached, not ended


def test_exec_terminal_stream_ends_when_the_clients_input_ends(api):
    # Docker: with a terminal, the end of the client's input (CloseWrite) closes the exec's output
    api.docker("run", "-d", "--name", "c", "busybox", "sleep", "300")
    eid = _exec(api, "c", ["cat"], Tty=True, AttachStdin=True, AttachStdout=True)
    s = _hijack(api, f"/v1.41/exec/{eid}/start", {"Tty": True})
    s.sendall(b"hi\n")
    got = b""
    while got.count(b"hi") < 2:  # the terminal's echo, then cat's
        got += s.recv(4096)
    s.shutdown(socket.SHUT_WR)
    _read_all(s)  # the stream ends (before, it waited for ever: s's timeout)
    s.close()


def test_kill_answers_once_the_container_is_dead(api):
    """Docker's kill with SIGKILL returns when the container has stopped: inspect right after
    says so, with 137; another signal does not wait."""
    for i in range(5):
        api.docker("run", "-d", "--name", f"k{i}", "busybox", "sleep", "300")
        status, _ = api.request("POST", f"/v1.41/containers/k{i}/kill")
        assert status == 204
        status, info = api.request("GET", f"/v1.41/containers/k{i}/json")
        assert (info["State"]["Running"], info["State"]["Status"], info["State"]["ExitCode"]) == \
            (False, "exited", 137)
    api.docker("run", "-d", "--name", "term", "busybox", "sh", "-c", "trap 'sleep 2; exit 3' TERM; "
               "while :; do sleep 1; done")
    time.sleep(0.3)  # the trap is set
    began = time.monotonic()
    assert api.request("POST", "/v1.41/containers/term/kill?signal=TERM")[0] == 204
    assert time.monotonic() - began < 1.9  # the trap sleeps 2 s: the answer did not wait for it


def _frames_text(raw: bytes) -> bytes:
    out, rest = b"", raw
    while rest:
        n = int.from_bytes(rest[4:8], "big")
        out, rest = out + rest[8:8 + n], rest[8 + n:]
    return out


def test_logs_right_after_start_of_a_quick_container(api):
    """Create, start, then logs at once: what the container wrote is there, however fast it
    ended. It was a race (a few in a hundred were empty): the start returned before the exec,
    and then the keeper could still hold the output in the pipe when the API read the log; the
    reader now has the keeper log what it holds first. Following and after wait, too."""
    for i in range(100):
        status, body = api.request("POST", "/v1.41/containers/create",
                                   {"Image": "busybox", "Cmd": ["echo", f"quick {i}"], "Tty": i % 3 == 1})
        assert status == 201, body
        cid = body["Id"]
        assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        if i % 10 == 3:
            status, raw = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=1&follow=1")
        else:
            if i % 10 == 7:
                assert api.request("POST", f"/v1.41/containers/{cid}/wait")[1]["StatusCode"] == 0
            status, raw = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=1")
        text = raw if i % 3 == 1 else _frames_text(raw)
        assert status == 200 and text.replace(b"\r\n", b"\n") == f"quick {i}\n".encode(), (i, raw)
        api.request("DELETE", f"/v1.41/containers/{cid}?force=1")


def test_logs_right_after_start_await_the_first_line_of_a_command_still_starting(api):
    """The race above made wide: the command computes a while (runnable all along) before its
    first line. It was empty when ``logs`` came first, as when the scheduler ran ``echo`` after
    the keeper and the API had answered; in the container's first second a runnable PID 1 that
    wrote nothing yet has its first output awaited."""
    script = "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done; echo late"
    for tty in (False, True):
        status, body = api.request("POST", "/v1.41/containers/create",
                                   {"Image": "busybox", "Cmd": ["sh", "-c", script], "Tty": tty})
        assert status == 201, body
        cid = body["Id"]
        assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        status, raw = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=1")
        text = raw if tty else _frames_text(raw)
        assert status == 200 and text.replace(b"\r\n", b"\n") == b"late\n", (tty, raw)
        api.request("DELETE", f"/v1.41/containers/{cid}?force=1")


def test_attach_logs_of_a_finished_container_reach_docker_py(api):
    """docker-py's ``attach(stream=False, logs=True)`` reads the hijacked stream from the socket under
    the buffered reader that parsed the 101's headers: a replay sent together with the headers was
    lost to it (about 1 run in 13), as in docker-py's test_attach_no_stream."""
    docker = pytest.importorskip("docker")
    client = docker.APIClient(base_url=f"unix://{api.socket}", version="1.41")
    lost = []
    for i in range(40):
        ct = client.create_container("busybox", "echo hello")
        client.start(ct)
        client.wait(ct, condition="not-running")
        out = client.attach(ct, stream=False, logs=True)
        if out != b"hello\n":
            lost.append((i, out))
        client.remove_container(ct, force=True)
    assert lost == []


@pytest.fixture
def tcp_api(api):
    """A second service of the same store on ``tcp://127.0.0.1:PORT`` (docker-py's CI transport),
    as (host, port)."""
    import subprocess

    from tests.conftest import rootless_argv
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logpath = api.rl.base / "service-tcp.log"
    with open(logpath, "wb") as log:
        proc = subprocess.Popen(rootless_argv() + ["system", "service", f"tcp://127.0.0.1:{port}"],
                                env=api.rl.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def answers() -> bool:
        assert proc.poll() is None, logpath.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
                c.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return c.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False
    try:
        wait_for(answers, 60, "the TCP service to answer /_ping")
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(30)
        assert "Traceback" not in logpath.read_text()


def _slow_reader(connect, path: str, body: dict | None = None, delay: float = 0.3) -> bytes:
    """A hijacking POST read as docker-py reads it, by a client slow to read the head: it sleeps
    ``delay`` before reading, then parses the head with a buffered reader (http.client's, 8 KB
    reads) and reads the stream from the raw socket under it, to its end."""
    data = json.dumps(body).encode() if body is not None else b""
    with connect() as s:
        s.settimeout(30)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        time.sleep(delay)  # the server has long sent the head (and, before, what followed it)
        head = s.makefile("rb")
        assert head.readline().startswith(b"HTTP/1.1 101")
        while head.readline() not in (b"\r\n", b""):
            pass
        out = b""
        while chunk := s.recv(65536):  # under the buffer: what went into it is lost
            out += chunk
        return out


def _connector(api, transport: str, request):
    """How a test's client connects: the fixture's Unix socket, or the ``tcp_api`` service."""
    if transport == "tcp":
        address = request.getfixturevalue("tcp_api")
        return lambda: socket.create_connection(address)

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(api.socket))
        return s
    return connect


def _streams(raw: bytes) -> dict[int, bytes]:
    """The bytes of each stream of a multiplexed answer."""
    out: dict[int, bytes] = {}
    rest = raw
    while rest:
        assert len(rest) >= 8 and rest[1:4] == b"\0\0\0", raw
        n = int.from_bytes(rest[4:8], "big")
        out[rest[0]] = out.get(rest[0], b"") + rest[8:8 + n]
        rest = rest[8 + n:]
    return out


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_attach_logs_reach_a_client_slow_to_read_the_head(api, transport, request):
    """The replay of ``attach?logs=1`` goes once the client has read the 101's head, over a Unix
    socket (docker-py's default) and loopback TCP (its CI's): a client that reads the head late
    gets all of it. It went 50 ms after the head, into the client's buffer of the head, lost."""
    connect = _connector(api, transport, request)
    for name, cmd, tty in (("plain", "echo out; echo err >&2", False), ("term", "echo term", True)):
        status, body = api.request("POST", f"/v1.41/containers/create?name={name}",
                                   {"Image": "busybox", "Cmd": ["sh", "-c", cmd], "Tty": tty})
        assert status == 201, body
        assert api.request("POST", f"/v1.41/containers/{name}/start")[0] == 204
        assert api.request("POST", f"/v1.41/containers/{name}/wait")[1]["StatusCode"] == 0
    raw = _slow_reader(connect, "/v1.41/containers/plain/attach?logs=1&stdout=1&stderr=1")
    assert _streams(raw) == {1: b"out\n", 2: b"err\n"}
    assert _slow_reader(connect, "/v1.41/containers/plain/attach?logs=1&stderr=1", delay=0.05) == \
        b"\2\0\0\0\0\0\0\4err\n"
    assert _slow_reader(connect, "/v1.41/containers/term/attach?logs=1&stdout=1") == b"term\r\n"
    assert _slow_reader(connect, "/v1.41/containers/term/attach?logs=1&stdout=1", delay=0) == b"term\r\n"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_exec_output_reaches_a_client_slow_to_read_the_head(api, transport, request):
    """docker-py's ``exec_start`` reads the same way: a quick command's output, ready before the
    client read the head, waits for it (it was lost, like the replay above)."""
    connect = _connector(api, transport, request)
    api.docker("run", "-d", "--name", "c", "busybox", "sleep", "300")
    eid = _exec(api, "c", ["sh", "-c", "echo out; echo err >&2"], AttachStdout=True, AttachStderr=True)
    raw = _slow_reader(connect, f"/v1.41/exec/{eid}/start", {"Detach": False, "Tty": False}, delay=1.0)
    assert _streams(raw) == {1: b"out\n", 2: b"err\n"}
    eid = _exec(api, "c", ["echo", "raw"], Tty=True, AttachStdout=True)
    assert _slow_reader(connect, f"/v1.41/exec/{eid}/start", {"Tty": True}, delay=1.0) == b"raw\r\n"


def _exec_events(api, since: float, **filters) -> list[tuple[str, dict]]:
    import urllib.parse
    query = urllib.parse.urlencode({"since": f"{since:.9f}", "until": f"{time.time():.9f}",
                                    "filters": json.dumps({"type": ["container"], **filters})})
    status, raw = api.request("GET", f"/v1.41/events?{query}")
    assert status == 200
    text = raw.decode() if isinstance(raw, bytes) else json.dumps(raw)
    evs = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(e["Action"], e["Actor"]["Attributes"]) for e in evs if e["Action"].startswith("exec_")]


def test_api_execs_are_told_as_dockers_exec_events(api):
    """``POST /containers/{id}/exec`` says ``exec_create: CMD ARGS``, ``/exec/{id}/start``
    ``exec_start: CMD ARGS`` (the instance's id as ``execID``), the process's end ``exec_die`` with
    its ``exitCode`` (a detached start's too, later), the detach keys ``exec_detach``."""
    api.docker("run", "-d", "--name", "c", "busybox", "sleep", "300")
    since = time.time()
    ran = _exec(api, "c", ["sh", "-c", "exit 4"], AttachStdout=True)
    assert _exec_events(api, since) == [("exec_create: sh -c exit 4", {
        "execID": ran, "image": "busybox", "name": "c"})]
    s = _hijack(api, f"/v1.41/exec/{ran}/start", {})
    _read_all(s)
    s.close()
    bg = _exec(api, "c", ["sleep", "1"])
    assert api.request("POST", f"/v1.41/exec/{bg}/start", {"Detach": True})[0] == 200
    kept = _exec(api, "c", ["cat"], Tty=True, AttachStdin=True, AttachStdout=True, DetachKeys="ctrl-x")
    s = _hijack(api, f"/v1.41/exec/{kept}/start", {"Tty": True})
    s.sendall(b"\x18")
    assert wait_for(lambda: _closed(s), 10, "the end of the exec stream")
    s.close()
    wait_for(lambda: ("exec_die", bg) in [(a, x["execID"]) for a, x in _exec_events(api, since)],
             what="the detached exec's end")
    seen = [(a, x["execID"], x.get("exitCode")) for a, x in _exec_events(api, since)]
    assert seen[:2] == [("exec_create: sh -c exit 4", ran, None), ("exec_start: sh -c exit 4", ran, None)]
    assert seen.index(("exec_die", ran, "4")) < seen.index(("exec_create: sleep 1", bg, None))
    assert ("exec_start: sleep 1", bg, None) in seen and ("exec_die", bg, "0") in seen
    assert ("exec_start: cat ", kept, None) in seen
    assert [x["execID"] for _, x in _exec_events(api, since, event=["exec_detach"])] == [kept]
    assert ("exec_die", kept, None) not in [(a, i, None) for a, i, _ in seen]  # detached: still running
    r = api.docker("exec", "c", "sh", "-c", "exit 2", expect=2)  # the docker CLI's exec: the same events
    assert r.code == 2
    docker_cli = [(a, x.get("exitCode")) for a, x in _exec_events(api, since) if "exit 2" in a or
                  (a == "exec_die" and x.get("exitCode") == "2")]
    assert docker_cli == [("exec_create: sh -c exit 2", None), ("exec_start: sh -c exit 2", None), ("exec_die", "2")]


def _frames(raw: bytes) -> list[tuple[int, bytes]]:
    out = []
    while raw:
        n = int.from_bytes(raw[4:8], "big")
        out.append((raw[0], raw[8:8 + n]))
        raw = raw[8 + n:]
    return out


def test_logs_of_a_flood_come_a_frame_per_line_as_from_dockers_daemon(api):
    """The log is read in blocks of thousands of lines (issue 25), and still framed a line each,
    as Docker's daemon sends it (docker-py's ``logs(stream=True)`` yields a line at a time); the
    docker CLI shows the streams apart; an entry that cannot be encoded (a lone surrogate in a
    log written by someone else) is shown replaced, not a broken answer."""
    script = ("yes | head -c 20000; sleep 0.5; echo err >&2; sleep 0.5; printf 'é\\r\\n'; sleep 0.5; "
              "seq 1 500 >&2; sleep 1; printf last")  # the sleeps: the keeper logs each stream's part in turn
    status, body = api.request("POST", "/v1.41/containers/create", {"Image": "busybox", "Cmd": ["sh", "-c", script]})
    assert status == 201, body
    cid = body["Id"]
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    assert api.request("POST", f"/v1.41/containers/{cid}/wait")[1]["StatusCode"] == 0
    status, raw = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=1")
    assert status == 200
    expected = ([(1, b"y\n")] * 10_000 + [(2, b"err\n"), (1, "é\r\n".encode())]
                + [(2, f"{i}\n".encode()) for i in range(1, 501)] + [(1, b"last")])
    assert _frames(raw) == expected
    status, raw = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&timestamps=1&tail=2")
    assert [(n, data[30:]) for n, data in _frames(raw)] == [(1, b" last")]
    r = api.docker("logs", cid)
    assert (r.out, r.err) == ("y\n" * 10_000 + "é\r\nlast", "err\n" + "".join(f"{i}\n" for i in range(1, 501)))
    log = api.rl.root / "containers" / cid / "ctr.log"
    with open(log, "ab") as f:
        f.write(b'{"log":"\\ud800 lone\\n","stream":"stdout","time":"2026-12-07T01:00:00.000000001Z"}\n')
    status, raw = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&tail=1")
    assert status == 200 and _frames(raw) == [(1, b"? lone\n")]
