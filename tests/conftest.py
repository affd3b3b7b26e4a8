"""Shared fixtures: test images built from the host's busybox, a per-test storage root,
and the installed ``rootless`` CLI run as a subprocess.

The namespace tests must run as an unprivileged user: a session guard refuses
to run them as root (as root they would prove nothing about rootless use).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import signal as _signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# A suite started in the background by a non-interactive shell (`cmd &`) has SIGINT ignored, and
# every command it runs would inherit that: the tests that stop `rootless` with a ctrl-C
# (SIGINT) would wait for ever. The suite takes SIGINT back, so its commands start with it.
if _signal.getsignal(_signal.SIGINT) is _signal.SIG_IGN:
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
BUSYBOX = os.environ.get("ROOTLESS_TEST_BUSYBOX", "/bin/busybox")  # a static busybox


def pytest_collection_modifyitems(config, items):
    needs_userns = [i for i in items if i.get_closest_marker("userns")]
    if needs_userns and os.geteuid() == 0 and not os.environ.get("ROOTLESS_TESTS_ALLOW_ROOT"):
        pytest.exit(
            "refusing to run the namespace tests as root: they must prove rootless use. "
            "Run them as an unprivileged user, e.g. `runuser -u USER -- .venv/bin/just test` "
            "(`.ci/run` creates such a user).", returncode=3)


def _load_mkimages():
    spec = importlib.util.spec_from_file_location("mkimages", REPO / "scripts" / "mkimages.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Path:
    """The test images (busybox, layered, demo) in every format, built once per session."""
    if not os.path.exists(BUSYBOX):
        pytest.fail(f"{BUSYBOX} is missing: install busybox-static (scripts/setup.sh does)")
    out = tmp_path_factory.mktemp("images")
    _load_mkimages().build_all(str(out), BUSYBOX)
    return out


def rootless_argv() -> list[str]:
    exe = shutil.which("rootless", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return [exe] if exe else [sys.executable, "-m", "rootless.cli.main"]


@dataclass
class Result:
    argv: list[str]
    code: int
    out: str
    err: str


class Rootless:
    """The CLI with this test's own storage root, config and runtime directory."""

    def __init__(self, base: Path, overlay: str = "auto", idmap: str = "auto"):
        self.base = base
        self.root = base / "store"
        self.runtime = base / "run"
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.config = base / "config.toml"
        self.configure(overlay=overlay, idmap=idmap)

    def configure(self, overlay: str = "auto", idmap: str = "auto", insecure: tuple[str, ...] = ()) -> None:
        text = f'[storage]\noverlay = "{overlay}"\n\n[userns]\nidmap = "{idmap}"\n'
        text += "\n[registries]\ninsecure = [" + ", ".join(f'"{h}"' for h in insecure) + "]\n"
        # Tests never reach the internet: a short name's registry is never contacted.
        text += '\n[registries."docker.io"]\nblocked = true\n'
        self.config.write_text(text)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(ROOTLESS_ROOT=str(self.root), ROOTLESS_CONFIG=str(self.config),
                   XDG_RUNTIME_DIR=str(self.runtime), REGISTRY_AUTH_FILE=str(self.base / "auth.json"),
                   ROOTLESS_SYSTEM_CONFIG=str(self.base / "system-config.toml"))
        # the shared network's holder leaves a second after its store's last container, not a minute
        env.setdefault("ROOTLESS_NETSTACK_IDLE", "1")
        return env

    def __call__(self, *args: str, input: bytes | str | None = None, timeout: float = 120,
                 expect: int | None = 0) -> Result:
        argv = rootless_argv() + [str(a) for a in args]
        if isinstance(input, str):
            input = input.encode()
        try:
            cp = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=self.env,
                                stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"timed out after {timeout}s: {shlex.join(argv)}\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}")
        res = Result(argv, cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace"))
        if expect is not None and res.code != expect:
            pytest.fail(f"{shlex.join(argv)}\nexit code {res.code}, expected {expect}\n"
                        f"--- stdout\n{res.out}\n--- stderr\n{res.err}")
        return res

    def load(self, images: Path, name: str, fmt: str = "tar") -> None:
        path = images / {"tar": f"{name}.tar", "oci": f"{name}.oci", "oci-tar": f"{name}-oci.tar",
                         "dir": f"{name}.dir"}[fmt]
        self("load", "-i", path)

    def leftovers(self) -> list[str]:
        """Anything a finished command should not have left behind in the store or runtime dir."""
        found = []
        for sub in ("tmp", "layers"):
            d = self.root / sub
            if d.is_dir():
                found += [str(p) for p in d.iterdir() if p.name.startswith((".tmp", ".del", "blob-", "probe-"))]
        return found


def drain_pty(master: int) -> bytes:
    """Everything written to a pty whose other end is closed (EIO or EOF ends it); closes it."""
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` with a deadline (never a bare sleep as synchronisation); its value."""
    import time
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    pytest.fail(f"timed out waiting for {what}")


def one_error(r: Result, *needles: str) -> str:
    """The single ``rootless: error:`` line of a failed command (a hint line may follow it)."""
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    errors = [line for line in r.err.splitlines() if line.startswith("rootless: error: ")]
    assert len(errors) == 1, r.err
    assert len(r.err.splitlines()) <= 2, r.err
    for needle in needles:
        assert needle in errors[0], r.err
    return errors[0]


def inspect(rl: Rootless, ref: str) -> dict:
    """``inspect REF``'s object."""
    import json
    return json.loads(rl("inspect", ref).out)[0]


def status(rl: Rootless, ref: str) -> str:
    return rl("inspect", "-f", "{{.State.Status}}", ref).out.strip()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory):
    """At the end of the session: no process, mount or runtime directory of the tests' stores remains."""
    yield
    base = str(tmp_path_factory.getbasetemp())

    def processes() -> list[str]:
        procs = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():
                try:  # the environment too: slirp4netns and the relay name no path, but inherit ROOTLESS_ROOT
                    with open(f"/proc/{d}/cmdline", "rb") as f, open(f"/proc/{d}/environ", "rb") as e:
                        if base.encode() in f.read() or base.encode() in e.read():
                            procs.append(d)
                            continue
                    # and what holds a file of the stores open (a keeper forked by the warm forker
                    # has the forker's environment), but this process's own helpers (a userns
                    # worker of an in-process test holds what this process holds; it ends with it)
                    if any(os.readlink(f"/proc/{d}/fd/{fd}").startswith(base) for fd in os.listdir(f"/proc/{d}/fd")) \
                            and not _descends_from_me(int(d)):
                        procs.append(d)
                except OSError:
                    continue
        return procs

    # A keeper tidies up for a few ms after an attached CLI returned (it no longer makes it wait
    # for slirp4netns to exit): give it a moment, but no more.
    import time
    deadline = time.monotonic() + 5
    while (procs := processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if base in line]
    _give_back(base)
    assert not procs, f"processes of the tests' stores are still running: {[_described(p) for p in procs]}"
    assert not mounts, f"mounts of the tests' stores remain: {mounts}"


def _descends_from_me(pid: int) -> bool:
    while pid > 1:
        if pid == os.getpid():
            return True
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
    return False


def _described(pid: str) -> str:
    """A leftover process as ``PID (comm: command line)``, for the failure's message."""
    try:
        with open(f"/proc/{pid}/comm") as f, open(f"/proc/{pid}/cmdline", "rb") as c:
            comm, cmdline = f.read().strip(), c.read().replace(b"\0", b" ").decode(errors="replace")
        files = sorted({os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")})
        return f"{pid} ({comm}: {cmdline[:200]}; holding {files[:8]})"
    except OSError:
        return f"{pid} (gone)"


def _give_back(base: str) -> None:
    """Files the tests unpacked belong to subordinate uids, which pytest cannot delete when it
    prunes old temporary directories: make them the user's again (root of the user namespace is
    the user), so that they are pruned like any other and can be inspected meanwhile."""
    if os.geteuid() == 0 or not os.path.isdir(base):
        return
    env = dict(os.environ, ROOTLESS_ROOT=os.path.join(base, ".give-back-store"))
    subprocess.run(rootless_argv() + ["unshare", "chown", "-R", "-h", "0:0", base], env=env,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                   check=False)


@pytest.fixture
def rl(tmp_path) -> Rootless:
    return Rootless(tmp_path)


@pytest.fixture
def busybox(rl, images) -> Rootless:
    """busybox loaded; no container outlives the test, even a failed one."""
    rl.load(images, "busybox")
    yield rl
    ids = rl("ps", "-aq", expect=None).out.split()
    if ids:
        rl("rm", "-f", *ids, expect=None)


@pytest.fixture(params=["kernel", "fuse", "copy"])
def rl_method(request, tmp_path) -> Rootless:
    """The same test once per root filesystem method."""
    return Rootless(tmp_path, overlay=request.param)
