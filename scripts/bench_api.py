"""The ``api`` group of ``scripts/bench.py``: ``docker run --rm IMAGE true`` through the Docker
Engine API (issue 17), in one run:

- ``docker -> rootless service``: Debian's docker CLI against ``rootless system service`` on a
  Unix socket of the bench's;
- ``rootless run``: the same container from ``rootless run --rm`` (the CLI path);
- ``docker -> podman service``: the docker CLI against ``podman system service`` (podman's own
  storage and config of the bench, as in the ``run`` group), when podman works here.

Each with ``--network none`` and with the default network (slirp4netns for all three). Target:
the service path at most 1.5x the CLI's time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

# Debian's docker client: where scripts/setup.sh unpacks it (beside this Python), else the docker.io package's
_BESIDE = os.path.join(os.path.dirname(sys.executable), "docker")
DOCKER = _BESIDE if os.access(_BESIDE, os.X_OK) else "/usr/bin/docker"
SERVICE_RATIO_TARGET = 1.5


def _serve(argv: list[str], env: dict, sock: str, log: str) -> subprocess.Popen:
    os.makedirs(os.path.dirname(sock), mode=0o700, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log, errors="replace") as f:
                raise RuntimeError(f"{argv[0]} service exited: {f.read()[-500:]}")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            return proc
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    proc.kill()
    raise RuntimeError(f"{argv[0]} service did not listen on {sock}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _docker_env(sock: str, home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    os.makedirs(home, exist_ok=True)
    env.update(DOCKER_HOST=f"unix://{sock}", HOME=home)
    return env


def bench_api(rootless: list[str], env: dict, pm, tmp: str, runs: int, measure, stats) -> dict:
    """Figures of the group (``{"unavailable": why}`` without a docker CLI)."""
    if not shutil.which(DOCKER):
        return {"unavailable": f"{DOCKER} is missing (scripts/setup.sh puts the client in .venv/bin)"}
    base = os.path.join(tmp, "api")
    sock = os.path.join(base, "sock", "docker.sock")
    service = _serve(rootless + ["system", "service", "--time", "0", f"unix://{sock}"], env, sock,
                     os.path.join(base, "service.log"))
    samples: dict[str, list[float]] = {}
    notes = []
    try:
        denv = _docker_env(sock, os.path.join(base, "home"))
        for net, label in (("none", ""), ("", " net")):
            flags = ["--network", net] if net else []
            samples[f"docker -> rootless service{label}"] = measure(
                [DOCKER, "run", "--rm", *flags, "busybox", "true"], runs, denv)
            samples[f"rootless run{label}"] = measure(rootless + ["run", "--rm", *flags, "busybox", "true"], runs, env)
    finally:
        _stop(service)
    if pm is not None:
        psock = os.path.join(base, "pmsock", "podman.sock")
        try:
            podman = _serve(pm.argv + ["system", "service", "--time", "0", f"unix://{psock}"], pm.env, psock,
                            os.path.join(base, "podman-service.log"))
        except RuntimeError as e:
            notes.append(f"podman service: {e}")
        else:
            try:
                penv = _docker_env(psock, os.path.join(base, "pmhome"))
                for net, label in (("none", ""), ("slirp4netns", " net")):
                    samples[f"docker -> podman service{label}"] = measure(
                        [DOCKER, "run", "--rm", "--network", net, pm.image, "true"], runs, penv)
            finally:
                _stop(podman)
    results = {name: stats(s) for name, s in samples.items()}
    ratios = {}
    for label in ("", " net"):
        svc, cli = results[f"docker -> rootless service{label}"], results[f"rootless run{label}"]
        ratios[f"service / cli{label}"] = svc["median"] / cli["median"]
        pod = results.get(f"docker -> podman service{label}")
        if pod:
            ratios[f"rootless service / podman service{label}"] = svc["median"] / pod["median"]
    return {"results": results, "samples": samples, "ratios": ratios, "notes": notes,
            "target": SERVICE_RATIO_TARGET}


def report(api: dict, podman_note: str) -> None:
    print("\napi: docker run --rm busybox true through the Docker Engine API (ms)")
    if "unavailable" in api:
        print(f"  unavailable: {api['unavailable']}")
        return
    print(f"  {'':34} {'median':>8} {'p10':>8} {'p90':>8} {'runs':>5}")
    for name, s in api["results"].items():
        print(f"  {name:34} {s['median']:8.1f} {s['p10']:8.1f} {s['p90']:8.1f} {s['runs']:5d}")
    for note in api["notes"]:
        print(f"  {note}")
    if podman_note:
        print(f"  (podman: {podman_note})")
    for name, value in api["ratios"].items():
        verdict = ""
        if name.startswith("service / cli"):
            verdict = "ok" if value <= api["target"] else "OVER"
            verdict = f"   target <= {api['target']:.1f}   {verdict}"
        print(f"  {name:44} {value:6.2f}{verdict}")
