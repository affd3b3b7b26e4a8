#!/usr/bin/env python3
"""Run a peer's test suite, docker-py's ``tests/integration``, against ``rootless system service``.

Usage::

    python scripts/compat.py [--against rootless|podman] [--transport unix|tcp] [--json FILE] [--keep DIR]
                             [--tests DIR] [-- PYTEST_ARGS]

The suite is test data (``../shared/peers/docker-py`` beside the checkout, or ``--tests``): it is
copied, never edited, and run unchanged with docker 7.2.0, pytest 7.4.2 and pytest-timeout 2.1.0 (the
versions docker-py pins) in a virtual environment of its own, made once in
``~/.cache/rootless-tests/dockerpy-7.2.0`` from PyPI.

The images it pulls (``alpine:3.10``, ``alpine:latest``, ``busybox:latest``, ``hello-world``) are
stand-ins built here from the host's static busybox (``scripts/mkimages.py``), pushed to a registry
started on 127.0.0.1 (Debian's ``docker-registry``) and named as docker.io's mirror in the service's
configuration, so nothing leaves the machine. Everything lives in one temporary directory (the
store, the registry, the configuration, the socket) that is removed at the end.

The service listens on a Unix socket in that directory (``--transport unix``, the default: what
users use), or on ``tcp://127.0.0.1:PORT``, a free port (``--transport tcp``: what docker-py's own
CI uses; docker-py opens a websocket, ``attach_socket(ws=True)``, only to a ``tcp://`` host).
DOCKER_HOST names the one chosen.

Left out, as the issue that set the goal says: the files that need a swarm (swarm, service, secret,
config, plugin, node) and the three network tests that call ``init_swarm``. The tests that fail on
rootless for a reason Docker's behaviour cannot be had without root are listed, each with the
reason, in ``tests/peers/dockerpy-expected-failures.txt``.

Prints the count (``passed N of M``), the failures, and which of them are not expected. The exit
status is 0 when every failure is an expected one, 1 otherwise, 2 when the run itself could not be
made. ``--against podman`` runs the same suite against ``podman system service`` (its own storage in
the temporary directory) for the figure beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_TESTS = REPO.parent / "shared" / "peers" / "docker-py"
EXPECTED = REPO / "tests" / "peers" / "dockerpy-expected-failures.txt"
VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rootless-tests" / "dockerpy-7.2.0"
PINS = ["docker[ssh,websockets]==7.2.0", "paramiko==3.5.1", "pytest==7.4.2", "pytest-timeout==2.1.0",
        "websocket-client==1.8.0"]
BUSYBOX = "/bin/busybox"
# the swarm's files, and the network tests that make a swarm
LEFT_OUT_FILES = ["api_swarm_test.py", "api_service_test.py", "api_secret_test.py", "api_config_test.py",
                  "api_plugin_test.py", "models_swarm_test.py", "models_services_test.py", "models_nodes_test.py"]
LEFT_OUT_TESTS = [
    "tests/integration/api_network_test.py::TestNetworks::test_create_network_attachable",
    "tests/integration/api_network_test.py::TestNetworks::test_create_inspect_network_with_scope",
    "tests/integration/api_network_test.py::TestNetworks::test_create_remove_network_with_space_in_name",
]
STAND_INS = {"alpine:3.10": "alpine", "alpine:latest": "alpine", "busybox:latest": "busybox:latest",
             "busybox:buildroot-2014.02": "busybox:latest"}
# alpine's base accounts and directories, which the tests use (exec as postgres, a workdir in /var/opt)
ALPINE_PASSWD = "".join(f"{u}:x:{i}:{g}:{u}:{h}:{sh}\n" for u, i, g, h, sh in [
    ("root", 0, 0, "/root", "/bin/ash"), ("bin", 1, 1, "/bin", "/sbin/nologin"),
    ("daemon", 2, 2, "/sbin", "/sbin/nologin"), ("adm", 3, 4, "/var/adm", "/sbin/nologin"),
    ("lp", 4, 7, "/var/spool/lpd", "/sbin/nologin"), ("mail", 8, 12, "/var/spool/mail", "/sbin/nologin"),
    ("operator", 11, 0, "/root", "/sbin/nologin"), ("ftp", 21, 21, "/var/lib/ftp", "/sbin/nologin"),
    ("postgres", 70, 70, "/var/lib/postgresql", "/bin/sh"), ("guest", 405, 100, "/dev/null", "/sbin/nologin"),
    ("nobody", 65534, 65534, "/", "/sbin/nologin")])
ALPINE_GROUP = "".join(f"{g}:x:{i}:{m}\n" for g, i, m in [
    ("root", 0, "root"), ("bin", 1, "root,bin,daemon"), ("daemon", 2, "root,bin,daemon"), ("adm", 4, "root,adm,daemon"),
    ("lp", 7, "lp"), ("mail", 12, "mail"), ("ftp", 21, ""), ("postgres", 70, ""), ("users", 100, "games"),
    ("nogroup", 65533, ""), ("nobody", 65534, "")])
ALPINE_DIRS = ["etc", "var/opt", "var/lib", "var/cache", "var/log", "var/spool", "opt", "srv", "media", "mnt", "home",
               "run"]
HELLO = ('#!/bin/busybox sh\necho\necho "Hello from Docker!"\n'
         'echo "This message shows that your installation appears to be working correctly."\n')


def log(msg: str) -> None:
    print(f"compat: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"compat: {what} did not come up in {timeout:.0f} s")


def rootless_argv() -> list[str]:
    exe = Path(sys.executable).parent / "rootless"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rootless.cli.main"]


def run(argv: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    cp = subprocess.run(argv, env=env, capture_output=True, text=True, **kw)
    if cp.returncode:
        raise SystemExit(f"compat: {' '.join(map(str, argv))} failed ({cp.returncode}):\n{cp.stdout}{cp.stderr}")
    return cp


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / "pins.txt"
    if python.exists() and stamp.exists() and stamp.read_text().split() == PINS:
        return python
    log(f"making {VENV} ({', '.join(PINS)})")
    shutil.rmtree(VENV, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(VENV)])
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS])
    stamp.write_text("\n".join(PINS) + "\n")
    return python


class Registry:
    """Debian's docker-registry on 127.0.0.1, plain HTTP, its data in ``base``."""

    def __init__(self, base: Path):
        exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        if not os.path.exists(exe):
            raise SystemExit("compat: docker-registry is not installed (scripts/setup.sh installs it)")
        base.mkdir(parents=True)
        self.host = f"127.0.0.1:{free_port()}"
        cfg = base / "config.yml"
        cfg.write_text("\n".join(["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                                  "storage:", "  filesystem:", f"    rootdirectory: {base / 'data'}",
                                  "  delete:", "    enabled: true", "http:", f"  addr: {self.host}"]) + "\n")
        self.log = open(base / "registry.log", "wb")
        self.proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_for("the registry", self._answers, 30)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise SystemExit("compat: docker-registry exited")
        try:
            urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def rootless_env(work: Path, name: str, registry: str) -> dict[str, str]:
    """The environment of a rootless store of its own, docker.io mirrored by the local registry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "ROOTLESS_"))}
    config, run_dir = work / f"{name}-config", work / f"{name}-run"
    (config / "rootless").mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(mode=0o700, exist_ok=True)
    (config / "rootless" / "config.toml").write_text(
        f'[registries]\ninsecure = ["{registry}"]\n\n[registries."docker.io"]\nmirrors = ["{registry}"]\n')
    env.update(ROOTLESS_ROOT=str(work / f"{name}-store"), XDG_CONFIG_HOME=str(config), XDG_RUNTIME_DIR=str(run_dir))
    return env


def push_stand_ins(work: Path, registry: str) -> None:
    """The busybox image as alpine and busybox, and hello-world, in the registry as docker.io's library."""
    spec = importlib.util.spec_from_file_location("mkimages", HERE / "mkimages.py")
    mkimages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mkimages)
    out = work / "images"
    built = mkimages.build_all(str(out), BUSYBOX, {"busybox"})
    env = rootless_env(work, "seed", registry)
    rl = rootless_argv()
    run(rl + ["load", "-i", built["busybox.tar"]], env)
    ctxdir = work / "hello"
    ctxdir.mkdir()
    (ctxdir / "hello").write_text(HELLO)
    (ctxdir / "hello").chmod(0o755)
    (ctxdir / "Dockerfile").write_text("FROM busybox:latest\nCOPY hello /hello\nCMD [\"/hello\"]\n")
    run(rl + ["build", "-q", "--network", "none", "-t", f"{registry}/library/hello-world:latest", str(ctxdir)], env)
    ctxdir = work / "alpine"
    for d in ALPINE_DIRS:
        (ctxdir / "rootfs" / d).mkdir(parents=True)
    (ctxdir / "rootfs" / "etc" / "passwd").write_text(ALPINE_PASSWD)
    (ctxdir / "rootfs" / "etc" / "group").write_text(ALPINE_GROUP)
    (ctxdir / "rootfs" / "etc" / "alpine-release").write_text("3.10.9\n")
    (ctxdir / "Dockerfile").write_text('FROM busybox:latest\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n')
    run(rl + ["build", "-q", "--network", "none", "-t", "alpine", str(ctxdir)], env)
    for name, source in STAND_INS.items():
        run(rl + ["tag", source, f"{registry}/library/{name}"], env)
    for name in [*STAND_INS, "hello-world:latest"]:
        run(rl + ["push", "-q", f"{registry}/library/{name}"], env)
    subprocess.run(rl + ["system", "prune", "-a", "-f"], env=env, capture_output=True)


class Service:
    """``rootless system service`` (or ``podman system service``) on a socket in ``work``, or on
    a free port of 127.0.0.1 (``transport`` tcp); ``address`` is the DOCKER_HOST that reaches it."""

    def __init__(self, work: Path, against: str, registry: str, transport: str = "unix"):
        self.socket = work / "docker.sock"
        self.port = free_port() if transport == "tcp" else None
        self.address = f"tcp://127.0.0.1:{self.port}" if self.port else f"unix://{self.socket}"
        self.log = open(work / "service.log", "wb")
        if against == "rootless":
            self.env = rootless_env(work, "service", registry)
            argv = rootless_argv() + ["system", "service", self.address]
        else:
            self.env = podman_env(work, registry)
            argv = ["podman", "system", "service", "--time", "0", self.address]
        self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the API service", self._answers, 60)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise SystemExit(f"compat: the service exited with {self.proc.returncode}")
        try:
            with socket.socket(socket.AF_INET if self.port else socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(("127.0.0.1", self.port) if self.port else str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def podman_env_of(work: Path) -> dict[str, str]:
    conf = work / "podman"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERS_"))}
    env.update(CONTAINERS_STORAGE_CONF=str(conf / "storage.conf"),
               CONTAINERS_REGISTRIES_CONF=str(conf / "registries.conf"),
               CONTAINERS_CONF=str(conf / "containers.conf"), XDG_RUNTIME_DIR=str(work / "seed-run"))
    return env


def podman_env(work: Path, registry: str) -> dict[str, str]:
    conf = work / "podman"
    conf.mkdir()
    (conf / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{conf / "graph"}"\n'
                                       f'runroot = "{conf / "run"}"\n')
    (conf / "registries.conf").write_text(
        'unqualified-search-registries = ["docker.io"]\n\n[[registry]]\nprefix = "docker.io"\n'
        f'location = "docker.io"\n\n[[registry.mirror]]\nlocation = "{registry}"\ninsecure = true\n')
    (conf / "containers.conf").write_text('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                                          'runtime = "runc"\n')
    return podman_env_of(work)


def run_suite(python: Path, tests: Path, work: Path, docker_host: str, extra: list[str],
              only: list[str] | None = None) -> Path:
    """The suite's run (``only``: these test ids again, in a second report)."""
    suite = work / "docker-py"
    if not suite.exists():
        shutil.copytree(tests, suite, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        for d, _, _ in os.walk(suite):  # the peers' copy may be read-only: this one is removed at the end
            os.chmod(d, 0o755)
    junit = work / ("junit-again.xml" if only else "junit.xml")
    home = work / "client-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYTEST_"))}
    env.update(DOCKER_HOST=docker_host, HOME=str(home), PYTHONDONTWRITEBYTECODE="1",
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}")
    if not (work / "gnupg").exists():
        credential_store(suite, work, env)
    argv = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--timeout", "180", f"--junitxml={junit}",
            "-q", "-rN"]
    if only:
        argv += only
    else:
        argv += ["tests/integration", *extra]
        argv += [f"--ignore=tests/integration/{f}" for f in LEFT_OUT_FILES]
        argv += [f"--deselect={t}" for t in LEFT_OUT_TESTS]
    again = " again, the failures not expected" if only else ""
    log(f"running docker-py's integration tests against {docker_host}{again}")
    subprocess.run(argv, cwd=suite, env=env)
    if not junit.exists():
        raise SystemExit("compat: pytest wrote no report")
    return junit


def credential_store(suite: Path, work: Path, env: dict[str, str]) -> None:
    """What docker-py's CI sets up for its credential-store tests: ``pass`` with the suite's gpg key
    (docker-credential-pass is in .venv/bin, from scripts/setup.sh), all in the work directory."""
    gnupg, store = work / "gnupg", work / "pass"
    gnupg.mkdir(mode=0o700)
    env.update(GNUPGHOME=str(gnupg), PASSWORD_STORE_DIR=str(store))
    keys = suite / "tests" / "gpg-keys"
    if not shutil.which("pass") or not shutil.which("docker-credential-pass", path=env["PATH"]):
        log("pass or docker-credential-pass missing (scripts/setup.sh installs them): the store tests will fail")
        return
    run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--import", str(keys / "secret")], env)
    run(["gpg", "--batch", "--import-ownertrust", str(keys / "ownertrust")], env)
    listing = run(["gpg", "--batch", "--no-auto-check-trustdb", "--list-secret-keys", "--with-colons"], env).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    run(["pass", "init", fpr], env)


def outcomes(junit: Path) -> dict[str, str]:
    """test id (file::Class::name) -> passed | failed | error | skipped."""
    result = {}
    for case in ET.parse(junit).iter("testcase"):
        cls = case.get("classname", "")
        parts = cls.split(".")
        # the module is the first part named like docker-py's test modules (tests.integration.credentials.store_test)
        end = next((i + 1 for i, p in enumerate(parts) if p.endswith("_test") or p.startswith("test_")), 3)
        path = "/".join(parts[:end]) + ".py"
        tid = f"{path}::{'::'.join(parts[end:] + [case.get('name', '')])}"
        kinds = {child.tag for child in case}
        state = "failed" if "failure" in kinds else "error" if "error" in kinds else \
            "skipped" if "skipped" in kinds else "passed"
        # an error in teardown after a pass or failure is counted as what it is: not a pass
        if state == "passed" or tid not in result:
            result[tid] = state if tid not in result else result[tid]
        else:
            result[tid] = state
    return result


def expected_failures(path: Path = EXPECTED) -> dict[str, str]:
    """test id -> reason, from the list (``id  # reason`` per line; ``#`` lines are comments)."""
    found = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                tid, _, why = line.partition("#")
                found[tid.strip()] = why.strip()
    return found


def report(results: dict[str, str], against: str) -> dict:
    expected = expected_failures()
    bad = sorted(t for t, s in results.items() if s in ("failed", "error"))
    summary = {
        "against": against,
        "total": len(results),
        "passed": sum(s == "passed" for s in results.values()),
        "failed": len(bad),
        "skipped": sum(s == "skipped" for s in results.values()),
        "flaky": sorted(t for t, s in results.items() if s == "flaky"),
        "failures": bad,
        "unexpected": [t for t in bad if t not in expected] if against == "rootless" else [],
        "fixed": sorted(t for t in expected if results.get(t) == "passed") if against == "rootless" else [],
    }
    return summary


def remove_containers(env: dict[str, str]) -> None:
    """The containers the suite left (a teardown that failed early leaves them running; their
    keepers outlive the service): removed, so that no process of the run stays."""
    ids = subprocess.run(rootless_argv() + ["ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(rootless_argv() + ["rm", "-f", "-v", *ids], env=env, capture_output=True)


def remove(work: Path) -> None:
    """The stores hold files of subordinate uids: made the user's again in a user namespace, then removed."""
    if (work / "podman").exists():
        subprocess.run(["podman", "unshare", "rm", "-rf", str(work / "podman")], capture_output=True,
                       env=podman_env_of(work))
    env = dict(os.environ, ROOTLESS_ROOT=str(work / "give-back-store"))
    subprocess.run(rootless_argv() + ["unshare", "chown", "-R", "-h", "0:0", str(work)], env=env,
                   capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", choices=["rootless", "podman"], default="rootless")
    p.add_argument("--transport", choices=["unix", "tcp"], default="unix",
                   help="serve the API on a Unix socket (default) or on tcp://127.0.0.1:PORT, as docker-py's CI")
    p.add_argument("--tests", type=Path, default=DEFAULT_TESTS, help="docker-py's tests (a copy of the peer's)")
    p.add_argument("--json", type=Path, help="also write the summary as JSON")
    p.add_argument("--keep", type=Path, help="work in this (new) directory and keep it")
    p.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --), e.g. -k exec")
    args = p.parse_args(argv)
    if os.geteuid() == 0:
        raise SystemExit("compat: run it as an unprivileged user (the point is rootless)")
    if not (args.tests / "tests" / "integration").is_dir():
        raise SystemExit(f"compat: no docker-py tests in {args.tests} (give --tests)")
    python = ensure_venv()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rootless-compat-"))
    if args.keep:
        work.mkdir(parents=True, mode=0o700)
    registry = service = None
    try:
        registry = Registry(work / "registry")
        log(f"stand-in images into the registry {registry.host}")
        push_stand_ins(work, registry.host)
        service = Service(work, args.against, registry.host, args.transport)
        results = outcomes(run_suite(python, args.tests, work, service.address, args.pytest_args))
        again = [t for t, st in results.items() if st in ("failed", "error") and t not in expected_failures()]
        if again and args.against == "rootless":  # once: a peer's test that depends on timing
            second = outcomes(run_suite(python, args.tests, work, service.address, [], only=again))
            flaky = sorted(t for t in again if second.get(t) == "passed")
            results.update({t: "flaky" for t in flaky})
    finally:
        if (work / "gnupg").exists():  # the credential tests' gpg-agent
            subprocess.run(["gpgconf", "--homedir", str(work / "gnupg"), "--kill", "gpg-agent"], capture_output=True)
        if service:
            service.stop()
            if args.against == "rootless":
                remove_containers(service.env)
            else:  # podman's conmon restarts a container with a policy for ever: removed, with its processes
                subprocess.run(["podman", "rm", "-af", "-t", "0"], env=service.env, capture_output=True)
        if registry:
            registry.stop()
        if not args.keep:
            remove(work)
    summary = report(results, args.against)
    for t in summary["failures"]:
        mark = "  (not expected)" if t in summary["unexpected"] else ""
        print(f"FAILED {t}{mark}")
    for t in summary["flaky"]:
        print(f"FLAKY {t}  (failed, then passed when run again)")
    for t in summary["fixed"]:
        print(f"PASSED {t}  (listed as an expected failure: take it off the list)")
    print(f"{args.against}: passed {summary['passed']} of {summary['total']} "
          f"({summary['failed']} failed, {summary['skipped']} skipped; {len(summary['unexpected'])} not expected; "
          f"{len(summary['flaky'])} passed only when run again)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if summary["unexpected"] else 0


if __name__ == "__main__":
    sys.exit(main())
