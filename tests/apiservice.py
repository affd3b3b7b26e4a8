"""The API service of a test's store, and the real clients that talk to it.

``ApiService`` runs ``rootless system service`` as a subprocess on a socket in the test's own
directory, with the test store's environment, and waits until it answers ``/_ping``. Clients:
Debian's docker CLI (``/usr/bin/docker``, client only, with its own HOME so that it reads no
real configuration) and raw HTTP over the socket for what no client shows.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Result, Rootless, rootless_argv, wait_for


def _docker() -> str:
    """Debian's docker client: where scripts/setup.sh unpacks it (.venv/bin), else the docker.io
    package's (ROOTLESS_TEST_DOCKER overrides)."""
    import sys
    beside = os.path.join(os.path.dirname(sys.executable), "docker")
    return os.environ.get("ROOTLESS_TEST_DOCKER") or (beside if os.access(beside, os.X_OK) else "/usr/bin/docker")


DOCKER = _docker()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class ApiService:
    def __init__(self, rl: Rootless, *extra: str, socket_path: Path | None = None):
        self.rl = rl
        self.dir = rl.base / "api"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self.socket = socket_path or self.dir / "docker.sock"
        self.home = rl.base / "docker-home"
        self.home.mkdir(exist_ok=True)
        self.log = open(rl.base / "service.log", "wb")
        self.proc = subprocess.Popen(rootless_argv() + ["system", "service", *extra, f"unix://{self.socket}"],
                                     env=rl.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_for(self._answers, 60, "the API service to answer /_ping")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the service exited with {self.proc.returncode}: {self.service_log()}")
        try:
            return self.request("GET", "/_ping")[0] == 200
        except OSError:
            return False

    def service_log(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.rl.base / "service.log").read_text(errors="replace")

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, object]:
        """(status, decoded JSON or bytes) of one request."""
        conn = UnixHTTPConnection(str(self.socket))
        try:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            hs = {"Content-Type": "application/json"} if isinstance(body, (dict, list)) else {}
            conn.request(method, path, body=data, headers={**hs, **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            if resp.getheader("Content-Type", "").startswith("application/json") and raw.strip():
                try:
                    return resp.status, json.loads(raw)
                except ValueError:
                    return resp.status, raw
            return resp.status, raw
        finally:
            conn.close()

    @property
    def docker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"unix://{self.socket}", HOME=str(self.home), DOCKER_BUILDKIT="0",
                   DOCKER_CLI_HINTS="false")
        return env

    def docker(self, *args: str, input: bytes | str | None = None, timeout: float = 120,
               expect: int | None = 0) -> Result:
        argv = [DOCKER, *map(str, args)]
        if isinstance(input, str):
            input = input.encode()
        try:
            cp = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=self.docker_env,
                                stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"timed out after {timeout}s: {shlex.join(argv)}\nstdout: {e.stdout!r}\n"
                        f"stderr: {e.stderr!r}\n--- service\n{self.service_log()[-3000:]}")
        res = Result(argv, cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace"))
        if expect is not None and res.code != expect:
            pytest.fail(f"{shlex.join(argv)}\nexit code {res.code}, expected {expect}\n--- stdout\n{res.out}\n"
                        f"--- stderr\n{res.err}\n--- service\n{self.service_log()[-3000:]}")
        return res

    def enable_compose(self) -> None:
        """Compose v2 as the docker CLI's plugin in this service's client home (scripts/setup.sh
        fetches Debian 13's docker-compose into .venv/libexec); the test is skipped, or failed in CI,
        where it is missing."""
        import sys
        plugin = Path(sys.prefix) / "libexec" / "docker" / "cli-plugins" / "docker-compose"
        if not os.access(plugin, os.X_OK):
            from tests.e2e.conftest import _need
            _need("Compose v2", f"{plugin} is missing (scripts/setup.sh fetches Debian 13's docker-compose)")
        plugins = self.home / ".docker" / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        if not (plugins / "docker-compose").exists():
            (plugins / "docker-compose").symlink_to(plugin)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        log = self.service_log()
        assert "Traceback" not in log, log
