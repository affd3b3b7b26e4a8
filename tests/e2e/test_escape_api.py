"""Issue 22, the API server: who may talk to it over loopback TCP, what idle or broken connections
cost, malformed requests, and what ``system service unix://PATH`` may delete."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time

import pytest

from tests.apiservice import ApiService
from tests.conftest import one_error, rootless_argv, wait_for

pytestmark = pytest.mark.userns


def _free_port(family: int, host: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TcpService:
    """``rootless system service tcp://HOST:PORT`` of a test's store."""

    def __init__(self, rl, host: str, *extra: str):
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.port = _free_port(self.family, host)
        shown = f"[{host}]" if ":" in host else host
        self.log = open(rl.base / "service.log", "wb")
        self.logpath = rl.base / "service.log"
        self.proc = subprocess.Popen(rootless_argv() + ["system", "service", *extra, f"tcp://{shown}:{self.port}"],
                                     env=rl.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_for(self._answers, 60, "the TCP service to answer /_ping")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the service exited with {self.proc.returncode}: {self.logpath.read_text()}")
        try:
            return self.ping() == b"OK"
        except OSError:
            return False

    def ping(self) -> bytes:
        with socket.create_connection((self.host, self.port), timeout=30) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.partition(b"\r\n\r\n")[2]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()
        assert "Traceback" not in self.logpath.read_text()


# ---- item 4: the loopback TCP listener checks its peer's uid ----------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_listener_drops_another_users_connection(rl, host):
    """A subordinate uid (uid 1000 of a user namespace of ours, another uid on the host) connects
    to the loopback listener: closed unanswered, while the owner is served."""
    svc = TcpService(rl, host, "--time", "0")
    try:
        family = "socket.AF_INET6" if ":" in host else "socket.AF_INET"
        script = "\n".join([
            "import os, socket",
            "os.setgid(1000); os.setuid(1000)",
            f"s = socket.socket({family})",
            f"s.connect(({host!r}, {svc.port}))",
            "s.settimeout(30)",
            "try:",
            "    s.sendall(b'GET /_ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')",
            "    print(repr(s.recv(100)))",
            "except (BrokenPipeError, ConnectionResetError):",
            "    print('reset')"])
        r = rl("unshare", "python3", "-c", script)
        assert r.out.strip() in ("b''", "reset"), r.out  # closed unanswered
        assert svc.ping() == b"OK"  # the owner still is served
    finally:
        svc.stop()


# ---- item 13: bounded connections, idle reads time out --------------------------------------------
def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_are_bounded_closed_and_let_the_service_end(rl, tmp_path):
    """70 connections that never send a byte: at most 64 processes serve them at once, each is
    closed after the idle time (--time 3 here), and the service still ends by --time."""
    svc = ApiService(rl, "--time", "3", socket_path=tmp_path / "s" / "docker.sock")
    socks = []
    try:
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(svc.socket))
            socks.append(s)
        most = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            most = max(most, len(_children(svc.proc.pid)))
            time.sleep(0.1)
        assert 0 < most <= 64, most
        for s in socks:
            assert _closed_within(s, 30)
        svc.proc.wait(30)  # no connection left: --time ends the service
        assert svc.proc.returncode == 0
    finally:
        for s in socks:
            s.close()
        svc.stop()


def test_idle_mid_headers_and_between_requests_is_closed(rl, tmp_path):
    svc = ApiService(rl, "--time", "2", socket_path=tmp_path / "s" / "docker.sock")
    mid = socket.socket(socket.AF_UNIX)
    after = socket.socket(socket.AF_UNIX)
    try:
        mid.connect(str(svc.socket))
        mid.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        after.connect(str(svc.socket))
        after.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")  # served, then silence
        after.settimeout(20)
        assert after.recv(65536).startswith(b"HTTP/1.1 200")
        assert _closed_within(mid, 20)
        assert _closed_within(after, 20)
        svc.proc.wait(30)  # and then nothing keeps the service
        assert svc.proc.returncode == 0
    finally:
        mid.close()
        after.close()
        svc.stop()


def test_a_long_stream_is_not_idle(rl, tmp_path):
    """An events stream that says nothing for longer than the idle time stays open."""
    svc = ApiService(rl, "--time", "1", socket_path=tmp_path / "s" / "docker.sock")
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(svc.socket))
            s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(20)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            assert not _closed_within(s, 4)
            assert svc.proc.poll() is None  # a stream is a connection: the service waits for it
    finally:
        svc.stop()


# ---- malformed requests: 400, and a broken body ends the connection -------------------------------
def _exchange(path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(data)
        s.settimeout(30)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


@pytest.mark.parametrize("length", [b"abc", b"-5", b"+5", b"1 2", b"0x10"])
def test_bad_content_length_is_400(rl, tmp_path, length):
    svc = ApiService(rl, socket_path=tmp_path / "s" / "docker.sock")
    try:
        out = _exchange(svc.socket, b"POST /containers/prune HTTP/1.1\r\nHost: x\r\nContent-Length: " + length +
                        b"\r\n\r\nhello")
        assert out.startswith(b"HTTP/1.1 400 "), out
        assert out.count(b"HTTP/1.1") == 1  # nothing after it is read as a request
    finally:
        svc.stop()


def test_malformed_chunked_body_closes_the_connection(rl, tmp_path):
    """A bad chunk size gets 400, and what follows it is never taken for a request."""
    svc = ApiService(rl, socket_path=tmp_path / "s" / "docker.sock")
    try:
        out = _exchange(svc.socket, b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                        b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), out
        assert out.count(b"HTTP/1.1") == 1, out
    finally:
        svc.stop()


# ---- item 12: what `system service unix://PATH` may delete, the default socket's directory ------
def test_service_refuses_a_path_that_is_not_a_socket(rl, tmp_path):
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    (d / "notes.txt").write_text("keep me\n")
    r = rl("system", "service", "--time", "1", f"unix://{d / 'notes.txt'}", expect=125)
    err = one_error(r)
    assert "notes.txt" in err and "not a socket" in err
    assert (d / "notes.txt").read_text() == "keep me\n"
    (d / "sub").mkdir()
    r = rl("system", "service", "--time", "1", f"unix://{d / 'sub'}", expect=125)
    assert "not a socket" in one_error(r)
    assert (d / "sub").is_dir()


def test_service_removes_only_its_own_socket(rl, tmp_path):
    """The socket of an older service was replaced by a newer service's: the old one, ending,
    leaves the newer's socket alone."""
    path = tmp_path / "s" / "docker.sock"
    old = ApiService(rl, "--time", "0", socket_path=path)
    new = None
    try:
        path.unlink()
        new = ApiService(rl, "--time", "0", socket_path=path)
        old.stop()
        assert path.exists()
        assert new.request("GET", "/_ping") == (200, b"OK")
    finally:
        old.stop()
        if new:
            new.stop()
    assert not path.exists()  # the newer one removes its own


def test_default_socket_after_another_command(rl):
    """Any command makes $XDG_RUNTIME_DIR/rootless (0700 now); one made 0755 by an older version
    is made private; the README's `system service` then listens there."""
    rl("images")
    top = rl.runtime / "rootless"
    assert stat.S_IMODE(top.stat().st_mode) == 0o700
    top.chmod(0o755)  # as an older version left it
    proc = subprocess.Popen(rootless_argv() + ["system", "service", "--time", "1"], env=rl.env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"listening on {top / 'docker.sock'}" in err.decode()
    assert stat.S_IMODE(top.stat().st_mode) == 0o700
    assert not (top / "docker.sock").exists()


def test_default_socket_directory_that_is_a_symlink_is_refused(rl, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (rl.runtime / "rootless").symlink_to(elsewhere)
    r = rl("system", "service", "--time", "1", expect=125)
    assert "symlink" in one_error(r)
    assert not (elsewhere / "docker.sock").exists()


# ---- item 12: volume names ------------------------------------------------------------------------
def test_volume_names_docker_refuses(rl):
    for bad in ("a", "_x", "a/b", "x" * 256):
        r = rl("volume", "create", bad, expect=125)
        assert "invalid volume name" in one_error(r)
    assert rl("volume", "ls", "-q").out == ""


def test_the_longest_volume_names_are_removed_and_pruned(rl):
    """Every name that can be created can be removed: 243+ characters made the removal's
    temporary name too long, and stopped prune part-way."""
    longest, long_ = "v" * 255, "w" * 243
    for name in (longest, long_, "short", "x" * 250):
        rl("volume", "create", name)
    rl("volume", "rm", longest)
    r = rl("volume", "prune", "-a", "-f")
    assert sorted(r.out.split()[2:]) == sorted([long_, "short", "x" * 250])
    assert rl("volume", "ls", "-q").out == ""
    assert os.listdir(rl.root / "volumes") == []  # nothing left aside either
