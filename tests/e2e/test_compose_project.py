"""A whole Compose v2 project through the API, as issue 24's "done when" has it: a build, a named
volume, a published port, ``restart:``, a ``healthcheck:`` and ``depends_on: service_healthy``;
``up``, ``ps``, ``logs``, ``exec``, ``restart``, ``down -v``."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.apiservice import DOCKER
from tests.registryd import free_port

COMPOSE = """\
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 1; echo stored > /data/state; echo db up; exec sleep 3600"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "test", "-f", "/data/state"]
      interval: 1s
      retries: 30
    restart: always
  web:
    build: .
    ports: ["127.0.0.1:{port}:8080"]
    volumes: ["data:/data:ro"]
    depends_on:
      db:
        condition: service_healthy
    restart: on-failure
volumes:
  data: {{}}
"""

DOCKERFILE = """\
FROM busybox
RUN mkdir -p /www && echo hello from web > /www/index.html
CMD ["sh", "-c", "echo web up; exec httpd -f -p 8080 -h /www"]
"""


def _compose(api, project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cp = subprocess.run([DOCKER, "compose", "--ansi", "never", *args], cwd=project, env=api.docker_env,
                        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"compose {' '.join(args)}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}\n" \
                               f"{api.service_log()[-2000:]}"
    return cp


def _get(port: int, deadline: float = 30) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_a_compose_project_goes_up_and_down_cleanly(api, tmp_path):
    api.enable_compose()
    port = free_port()
    project = tmp_path / "shop"
    project.mkdir()
    (project / "Dockerfile").write_text(DOCKERFILE)
    (project / "compose.yaml").write_text(COMPOSE.format(port=port))

    _compose(api, project, "up", "-d", "--build", "--wait")
    # web started only once db was healthy, and serves on the published port
    assert _get(port) == "hello from web\n"
    ps = [json.loads(line) for line in _compose(api, project, "ps", "--format", "json").stdout.splitlines()
          if line.strip()]
    if len(ps) == 1 and isinstance(ps[0], list):  # older Compose prints one JSON array
        ps = ps[0]
    states = {p["Service"]: (p["State"], p.get("Health", "")) for p in ps}
    assert states == {"db": ("running", "healthy"), "web": ("running", "")}, ps
    logs = _compose(api, project, "logs", "--no-color").stdout
    assert "db up" in logs and "web up" in logs
    # the named volume is shared: what db wrote, web reads
    assert _compose(api, project, "exec", "-T", "web", "cat", "/data/state").stdout == "stored\n"

    _compose(api, project, "restart")
    assert _get(port) == "hello from web\n"
    db = json.loads(api.docker("inspect", "shop-db-1").out)[0]
    assert db["HostConfig"]["RestartPolicy"]["Name"] == "always" and db["State"]["Running"]

    _compose(api, project, "down", "-v", "--rmi", "local")
    assert api.docker("ps", "-aq").out.strip() == ""
    assert "shop_data" not in api.docker("volume", "ls", "-q").out


SETTINGS = """\
services:
  app:
    image: busybox
    command: ["sh", "-c", "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; cat /proc/sys/net/core/somaxconn;
              cat /proc/sys/kernel/domainname; cat /data/seed; echo made > /scratch/x; cat /scratch/x; echo $$FROM_FILE;
              trap 'echo got int; exit 0' INT; echo ready; while true; do sleep 0.1; done"]
    ulimits:
      nofile: {{soft: 1000, hard: 2000}}
    sysctls:
      net.core.somaxconn: 1024
    shm_size: 96m
    stop_signal: SIGINT
    domainname: example.org
    env_file: [app.env]
    labels: {{tier: backend}}
    volumes: ["hostdir:/data", "scratch:/scratch"]
volumes:
  hostdir:
    driver_opts: {{type: none, o: bind, device: "{host}"}}
  scratch:
    driver_opts: {{type: tmpfs, device: tmpfs, o: "size=10m"}}
"""


def test_compose_process_settings_and_driver_opts_volumes(api, tmp_path):
    """What Compose files commonly set beside the command: ulimits, sysctls, shm_size, stop_signal,
    domainname, env_file, labels, and volumes with driver_opts (a host directory, a tmpfs)."""
    api.enable_compose()
    host = tmp_path / "hostdata"
    host.mkdir()
    (host / "seed").write_text("seeded\n")
    project = tmp_path / "settings"
    project.mkdir()
    (project / "app.env").write_text("FROM_FILE=file value\n")
    (project / "compose.yaml").write_text(SETTINGS.format(host=host))
    _compose(api, project, "up", "-d")
    end = time.monotonic() + 60
    while "ready" not in (logs := _compose(api, project, "logs", "--no-color", "--no-log-prefix").stdout):
        assert time.monotonic() < end, logs
        time.sleep(0.2)
    lines = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", logs).splitlines()  # Compose's line erasers
    assert lines[:3] == ["1000", "2000", lines[2]] and lines[2].split()[1] == "98304", lines
    assert lines[3:9] == ["1024", "example.org", "seeded", "made", "file value", "ready"], lines
    doc = json.loads(api.docker("inspect", "settings-app-1").out)[0]
    assert doc["Config"]["StopSignal"] == "SIGINT" and doc["Config"]["Labels"]["tier"] == "backend"
    _compose(api, project, "stop")
    assert "got int" in _compose(api, project, "logs", "--no-color").stdout
    _compose(api, project, "down", "-v")
    assert (host / "seed").read_text() == "seeded\n"  # the host directory stays the user's
    assert api.docker("volume", "ls", "-q").out.strip() == ""
