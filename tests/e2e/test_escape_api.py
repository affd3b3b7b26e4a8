"""Issue 22, the API server: who may talk to it over loopback TCP, what idle or broken connections
cost, malformed requests, and what ``system service unix://PATH`` may delete."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.conftest import rootless_argv, wait_for

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
