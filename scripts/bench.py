#!/usr/bin/env python3
"""Measure how long ``rootless run`` takes, beside the references this machine has.

Usage::

    python scripts/bench.py [--runs N | --quick] [--only run|lifecycle|net|pull|logs|volumes|build|api|scale]
                            [--scale N] [--json FILE]

Run it as a normal, unprivileged user: the point is rootless containers.
Everything happens in one temporary directory that is removed at the end
(images, storage roots, config, runtime dirs, podman's storage); neither the
user's own rootless store nor their podman set-up is touched.

What is measured (wall time of the whole command, ``time.perf_counter()``
around ``subprocess.run``; N runs after 3 warm-up runs; median, p10, p90,
min and max in milliseconds):

``floor``
    ``unshare -Urmpf --mount-proc chroot ROOTFS /bin/true``: a new user,
    mount and PID namespace, /proc and a chroot into an extracted busybox
    rootfs. About the least a container start can cost on this kernel.
``python``
    ``python -c pass``: the bare interpreter start-up; no Python CLI can
    start faster than this.
``cli startup``
    ``rootless images -q`` on an empty store: interpreter, imports and
    argument parsing of the CLI (target: under 120 ms).
``rootless run``
    ``rootless run --rm --network none busybox true``: a whole container
    life cycle: image lookup, id-mapped user namespace, overlay root
    filesystem, pivot_root, exec, teardown and removal.
``podman run``
    the same with podman (runc, cgroupfs, overlay storage in a temporary
    root), when podman is installed and works for this user. The target is
    that ``rootless run`` takes at most half of podman's time.

Then a separate set of N ``rootless run`` runs with ``ROOTLESS_TIMING`` set
(so the main figure is not measured with it) gives the breakdown of a run
into phases from the marks ``rootless`` records (CLOCK_MONOTONIC, see
``rootless/base/timing.py``). What happens before the ``main`` mark (interpreter
start and imports) and after ``done`` (interpreter exit) is not observable
from the inside; it is reported as the wall time minus ``main -> done``.

A second group, the container life cycle (``--only lifecycle``; both groups run
by default), measures what a container costs once it outlives a command:

``keeper rss``
    VmRSS (with RssAnon, RssFile, RssShmem and, when readable, the PSS) from
    ``/proc/KEEPER/status`` of the keepers of 3 idle detached
    ``busybox sleep 300`` containers, read 1 s after they all run (target: at
    most 15 MB; MB here is 10^6 bytes), read ``RSS_SETTLE`` s after they all
    run: by then the keepers rest (``rootless/runtime/hibernate.py``). The warm
    forker (``rootless/runtime/forker.py``: the CLI's, it leaves 60 s after the
    last command; a resting keeper shares no page with it) is reported beside
    them, not in their figures. The RSS of the container process
    (PID 1, ``sleep``) is reported beside it for context. With podman, the
    same for conmon, the supervisor it starts per container.
``run -d + stop``
    ``rootless run -d --name bN --network none busybox sleep 300`` followed by
    ``rootless stop -t 0 bN``: the sum of both commands' wall times, measured
    per iteration (the ``rm`` after it is not timed); the same with podman.
``ps -a 500``
    ``rootless ps -a`` with 500 containers in the store (target: under
    300 ms): one made by ``rootless create``, 499 more records written with the
    project's own ``rootless.runtime.state.create`` (``rootless create`` one by one
    would take some 20 s), with that container's image, layers, command and
    environment.
``exec``
    ``rootless exec NAME true`` in a running detached container; with podman
    ``podman exec ID true`` (target: at most half of podman's time).

The ``pull`` (``scripts/bench_pull.py``), ``net`` (``scripts/bench_net.py``), ``logs``
(``scripts/bench_logs.py``: run time, bytes on disk per byte of output and ``logs`` throughput
for a ``yes`` flood and for 80-column lines, per log driver, beside podman's k8s-file) and
``volumes`` (``scripts/bench_volumes.py``: 1 GB written and read and 20k small files in a
volume and in the root filesystem of each overlay method, beside the host) and ``build``
(``scripts/bench_build.py``: cold, fully cached and one-file-touched builds of a 12-instruction
Dockerfile, beside ``podman build``) and ``api`` (``scripts/bench_api.py``: ``docker run --rm``
through ``rootless system service`` beside ``rootless run`` and podman's service) groups are
described in their modules. Every group runs by default; ``--only`` picks one.

The ``run`` group also measures the default network's cost over ``--network none`` *paired*
(``network cost``: N pairs, alternating which of the two runs first, the median of the per-pair
differences in ms), so both see the same load. The ``build`` group adds real Dockerfiles
(``scripts/bench_build_real.py``, under ``build.real``: apt-get from this machine's Debian mirror
and a multi-stage gcc build, cold, cached and touched, whether a byte-identical stage output keeps
later steps cached, and the store's size with debian + curl beside podman's; ``n/a`` when the
mirror does not answer). The ``scale`` group (``scripts/bench_scale.py``) starts N idle
``run -d`` containers (``--scale N``, default 100, ``--quick`` 20) of each tool and sums the PSS
of every process the tool leaves for them.

Every run ends with issue 25's goals table (``scripts/bench_goals.py``, ``goals`` in the JSON):
one row per figure of the issue's table, with the figure, its reference, the goal and PASS or
MISS, or ``n/a: why`` when its group did not run or podman (or the mirror) is missing.

Every container made is removed (``rm -f``, then the keepers and podman
containers left by an interruption are killed) and the temporary directory
is removed, also when a command fails or the run is interrupted.

The script exits 0 even when a target is missed (it measures, it does not
test) and non-zero only when something failed to run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUSYBOX = "/bin/busybox"
WARMUP = 3
DEFAULT_RUNS = 30
QUICK_RUNS = 10
TIMEOUT = 120  # seconds for any single command

CLI_TARGET_MS = 120.0
PODMAN_RATIO_TARGET = 0.5

GROUPS = ("run", "lifecycle", "net", "pull", "logs", "volumes", "build", "api", "scale")
SCALE_CONTAINERS = 100  # idle detached containers of the scale group (--scale N; --quick: 20)
SCALE_QUICK = 20
PULL_ROUNDS = 3
NET_BYTES = 2 * 10**9  # one transfer through a published port (issue 4: 2 GB)
NET_ROUNDS = 5
NET_SECONDS = 2.0
KEEPER_RSS_TARGET_MB = 15.0
PS_TARGET_MS = 300.0
EXEC_RATIO_TARGET = 0.5
PS_CONTAINERS = 500
RSS_CONTAINERS = 3
RSS_SETTLE = 3.0  # seconds the detached containers idle before their memory is read (their keepers rest)
RUNNING_TIMEOUT = 30.0  # seconds for a detached container to be recorded running
SLEEPER = ["sleep", "300"]

PODMAN_IMAGE = "localhost/busybox:latest"
PODMAN_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

# (from mark, to mark, what happens in between)
PHASES = [
    ("main", "engine", "CLI parse and context"),
    ("engine", "launch", "image, record, plans (engine)"),
    ("launch", "mapped", "fork + user namespace + id maps (newuidmap/newgidmap)"),
    ("mapped", "container-forked", "namespaces + root filesystem mount (+ slirp4netns' start)"),
    ("container-forked", "exec", "mounts, pivot_root, identity, exec (container PID 1; awaits the network)"),
    ("exec", "exited", "the command itself"),
    ("exited", "reaped", "teardown (unmount, --rm cleanup)"),
    ("reaped", "done", "record update"),
]


class BenchError(Exception):
    """Something the benchmark needs failed to run."""


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


def run_checked(argv: list[str], env: dict[str, str] | None = None,
                capture: bool = False) -> subprocess.CompletedProcess:
    """Run a command; raise BenchError with its stderr when it fails."""
    try:
        cp = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{shlex.join(argv)}: {e}") from None
    if cp.returncode != 0:
        err = cp.stderr.decode(errors="replace").strip()
        raise BenchError(f"{shlex.join(argv)}: exit code {cp.returncode}\n{err}")
    return cp


def measure(argv: list[str], runs: int, env: dict[str, str] | None = None,
            warmup: int = WARMUP) -> list[float]:
    """Wall times in ms of ``runs`` runs of ``argv``, after ``warmup`` unrecorded runs."""
    samples = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        run_checked(argv, env)
        elapsed = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            samples.append(elapsed)
    return samples


def stats(samples: list[float]) -> dict:
    """Median, p10, p90, min, max (ms) and the number of runs."""
    if len(samples) >= 2:
        deciles = statistics.quantiles(samples, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = samples[0]
    return {"median": statistics.median(samples), "p10": p10, "p90": p90,
            "min": min(samples), "max": max(samples), "runs": len(samples)}


# --------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """A host tool from PATH or the sbin directories (often missing from a user's PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if not found:
        raise BenchError(f"{name} not found (it comes with util-linux/coreutils)")
    return found


def rootless_exe() -> str:
    """The ``rootless`` beside the running interpreter, else the one on PATH."""
    exe = os.path.join(os.path.dirname(sys.executable), "rootless")
    if os.access(exe, os.X_OK):
        return exe
    found = shutil.which("rootless")
    if not found:
        raise BenchError("rootless CLI not found beside the interpreter nor on PATH "
                         "(install the project into .venv: scripts/setup.sh)")
    return found


def build_images(out_dir: str) -> dict[str, str]:
    """The busybox image and its plain rootfs tarball, built by scripts/mkimages.py."""
    spec = importlib.util.spec_from_file_location("mkimages", os.path.join(HERE, "mkimages.py"))
    mkimages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mkimages)
    try:
        return mkimages.build_all(out_dir, BUSYBOX, {"busybox", "rootfs"})
    except (OSError, subprocess.CalledProcessError) as e:
        raise BenchError(f"building the test images failed: {e}") from None


def extract_rootfs(tar_path: str, dest: str) -> str:
    """Untar the uncompressed rootfs (symlinks kept; ownership is not applied as non-root)."""
    os.makedirs(dest)
    with tarfile.open(tar_path, "r:") as tar:
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(dest, filter="tar")
        else:
            tar.extractall(dest)
    return dest


def rootless_env(base: str) -> dict[str, str]:
    """Environment for a private rootless store, config and runtime dir under ``base``."""
    os.makedirs(os.path.join(base, "run"), mode=0o700)
    # No config file (the defaults, as most users run), and never the user's own one.
    config = os.path.join(base, "config.toml")
    env = dict(os.environ)
    env.pop("ROOTLESS_TIMING", None)
    env.update(ROOTLESS_ROOT=os.path.join(base, "store"), ROOTLESS_CONFIG=config,
               XDG_RUNTIME_DIR=os.path.join(base, "run"))
    return env


class Podman:
    """podman with its own config, storage and runtime dir under ``base``."""

    def __init__(self, exe: str, base: str):
        self.base = base
        self.root = os.path.join(base, "pmroot")
        xdg = os.path.join(base, "pmxdg")  # keeps its pause process and tmp files apart
        os.makedirs(xdg, mode=0o700)
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write(PODMAN_CONF)
        self.pause_pid_file = os.path.join(xdg, "libpod", "tmp", "pause.pid")
        self.env = dict(os.environ, CONTAINERS_CONF=conf, XDG_RUNTIME_DIR=xdg)
        self.runroot = os.path.join(base, "pmrun")
        self.argv = [exe, "--root", self.root, "--runroot", self.runroot,
                     "--storage-driver", "overlay"]

    image = PODMAN_IMAGE

    def run_argv(self, network: str = "none") -> list[str]:
        return self.argv + ["run", "--rm", "--network", network, PODMAN_IMAGE, "true"]

    def run_detached_argv(self, name: str | None = None) -> list[str]:
        named = ["--name", name] if name else []
        return self.argv + ["run", "-d", *named, "--network", "none", PODMAN_IMAGE, *SLEEPER]

    def remove_all_containers(self) -> None:
        """``rm -f`` every container of this private storage (only ours are in it)."""
        subprocess.run(self.argv + ["rm", "--all", "--force", "--time", "0"], env=self.env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=False)

    def cleanup(self) -> None:
        """Remove podman's storage (files of subordinate uids) and stop its pause process.

        Not ``podman system reset``: besides --root it resets state of the user's own
        (podman machines under ~/.config/containers/podman). ``podman unshare`` keeps
        ``ROOT/overlay`` bind-mounted, hence the umount before the removal.
        """
        if os.path.exists(self.root):
            script = 'umount "$1" 2>/dev/null; rm -rf "$2" "$3"'
            argv = self.argv + ["unshare", "sh", "-c", script, "sh",
                                os.path.join(self.root, "overlay"), self.root, self.runroot]
            subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=False)
        self._stop_pause_process()

    def _stop_pause_process(self) -> None:
        """Stop the pause process podman started for our private runtime dir (and only it)."""
        try:
            with open(self.pause_pid_file) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError):
            return
        if comm not in ("catatonit", "podman", "podman pause"):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def first_line(text: str) -> str:
    """The most telling line of an error: the last non-empty one."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def setup_podman(base: str, image_tar: str) -> tuple[Podman | None, str]:
    """A working podman for this user, or None and the reason it is unavailable."""
    exe = shutil.which("podman")
    if not exe:
        return None, "not on PATH"
    pm = Podman(exe, base)
    try:
        run_checked(pm.argv + ["load", "-i", image_tar], pm.env)
        run_checked(pm.run_argv(), pm.env)
    except BenchError as e:
        pm.cleanup()
        return None, first_line(str(e))
    return pm, ""


# --------------------------------------------------------------------------
# Host facts
# --------------------------------------------------------------------------


def command_output(argv: list[str], env: dict[str, str] | None = None) -> str | None:
    try:
        cp = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cp.stdout.strip() if cp.returncode == 0 else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def overlay_method(rootless: list[str], env: dict[str, str]) -> str | None:
    """What ``rootless info`` says about the root filesystem method, if it says it."""
    out = command_output(rootless + ["info", "--format", "json"], env)
    try:
        checks = json.loads(out) if out else []
    except ValueError:
        return None
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and check.get("name") == "overlay":
            return check.get("action") or check.get("detail")
    return None


def bytecode_fact(dirs: list[str] | None = None) -> str | None:
    """A warning when the tool's modules have no current bytecode and none will be written: each
    start then compiles them and the start-up figures measure the compiler (a checkout owned by
    another user, edited since it was last run by its owner; or PYTHONDONTWRITEBYTECODE set, as
    some shells of this machine have it). ``dirs``: the packages' directories (the tool's)."""
    import importlib.util
    if dirs is None:
        dirs = []
        for pkg in ("rootless", "layers", "netstack"):
            spec = importlib.util.find_spec(pkg)
            if spec is not None and spec.submodule_search_locations:
                dirs.append(spec.submodule_search_locations[0])
    no_write = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    stale, unwritable = 0, False
    for top in dirs:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if not name.endswith(".py"):
                    continue
                src = os.path.join(dirpath, name)
                pyc = importlib.util.cache_from_source(src)
                if not os.path.exists(pyc) or os.path.getmtime(pyc) < os.path.getmtime(src):
                    stale += 1
                    unwritable = unwritable or not os.access(os.path.dirname(pyc) if os.path.isdir(
                        os.path.dirname(pyc)) else dirpath, os.W_OK)
    if stale and (unwritable or no_write):
        why = "PYTHONDONTWRITEBYTECODE is set" if no_write else "this user may not write it"
        return (f"WARNING: {stale} modules lack current bytecode ({why}); start-up times include compiling "
                "them (run `python -m compileall rootless layers netstack` as the owner, or unset "
                "PYTHONDONTWRITEBYTECODE)")
    return None


def host_facts(rootless: list[str], env: dict[str, str]) -> dict:
    podman = shutil.which("podman")
    return {
        "kernel": f"{platform.system()} {platform.release()}",
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "podman": command_output([podman, "--version"]) if podman else None,
        "overlay": overlay_method(rootless, env),
        "bytecode": bytecode_fact(),
    }


# --------------------------------------------------------------------------
# Breakdown
# --------------------------------------------------------------------------


def read_marks(path: str, runs: int) -> list[dict[str, float]]:
    """The last ``runs`` JSON lines of the timing file (one per measured run, in order)."""
    try:
        with open(path) as f:
            lines = [json.loads(ln) for ln in f if ln.strip()]
    except (OSError, ValueError) as e:
        raise BenchError(f"cannot read the timing file {path}: {e}") from None
    if len(lines) < runs:
        raise BenchError(f"{path}: {len(lines)} timing lines for {runs} runs "
                         "(does `rootless run` write ROOTLESS_TIMING?)")
    return lines[-runs:]


def breakdown(walls: list[float], marks: list[dict[str, float]]) -> dict:
    """Median ms of each phase, of main -> done, and of the wall time outside it."""
    phases = []
    for start, end, label in PHASES:
        deltas = [(m[end] - m[start]) * 1000.0 for m in marks if start in m and end in m]
        phases.append({"from": start, "to": end, "label": label,
                       "median": statistics.median(deltas) if deltas else None,
                       "runs": len(deltas)})
    pairs = [(w, (m["done"] - m["main"]) * 1000.0)
             for w, m in zip(walls, marks, strict=True) if "main" in m and "done" in m]
    inside = [d for _, d in pairs]
    outside = [w - d for w, d in pairs]
    return {
        "phases": phases,
        "main_to_done": statistics.median(inside) if inside else None,
        "outside_main": statistics.median(outside) if outside else None,
        "wall": stats(walls),
    }


# --------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------


def pid_start(pid: int) -> str:
    """The start time of ``pid`` (field 22 of /proc/PID/stat), "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""


def memory_kb(pid: int) -> dict[str, int | None]:
    """VmRSS, RssAnon, RssFile, RssShmem (kB) of ``pid``, and its Pss when readable."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    found: dict[str, int | None] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in wanted:
                    found[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError) as e:
        raise BenchError(f"cannot read the memory of pid {pid}: {e}") from None
    if "VmRSS" not in found:
        raise BenchError(f"pid {pid} has no VmRSS (is it a zombie?)")
    found["Pss"] = None
    try:  # needs ptrace read access: may be refused
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    found["Pss"] = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        pass
    return found


def kb_to_mb(kb: float) -> float:
    return kb * 1024 / 1e6


def repo_modules():
    """``rootless.base.paths``, ``rootless.runtime.spec`` and ``rootless.runtime.state`` of this repository."""
    root = os.path.dirname(HERE)
    if root not in sys.path:
        sys.path.insert(0, root)
    from rootless.base import paths
    from rootless.runtime import spec, state
    return paths, spec, state


class Lifecycle:
    """Detached containers in the private rootless store (and podman's), and their removal."""

    def __init__(self, rootless: list[str], env: dict[str, str], pm: Podman | None):
        self.rootless = rootless
        self.env = env
        self.pm = pm
        self.root = env["ROOTLESS_ROOT"]
        self.containers = os.path.join(self.root, "containers")

    def rl(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
        return run_checked(self.rootless + list(args), self.env, capture)

    def pm_cmd(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
        return run_checked(self.pm.argv + list(args), self.pm.env, capture)

    def record(self, cid: str) -> dict | None:
        try:
            with open(os.path.join(self.containers, cid, "container.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def records(self) -> list[dict]:
        try:
            ids = [d for d in os.listdir(self.containers) if not d.startswith(".")]
        except OSError:
            return []
        return [r for r in map(self.record, ids) if isinstance(r, dict)]

    def run_detached(self, name: str) -> str:
        """``run -d``; the container's id."""
        cp = self.rl("run", "-d", "--name", name, "--network", "none", "busybox", *SLEEPER,
                     capture=True)
        return cp.stdout.decode().strip()

    def wait_running(self, cid: str) -> dict:
        """The record once it says running with a live keeper and container process."""
        deadline = time.monotonic() + RUNNING_TIMEOUT
        while True:
            rec = self.record(cid) or {}
            st = rec.get("state", {})
            if st.get("status") == "running" and st.get("keeper") and st.get("pid"):
                if process_alive(st["keeper"]) and process_alive(st["pid"]):
                    return rec
            elif st.get("status") not in (None, "created", "running"):
                raise BenchError(f"container {cid[:12]} is {st.get('status')}: "
                                 f"{st.get('error') or 'exit code ' + str(st.get('exit_code'))}")
            if time.monotonic() >= deadline:
                raise BenchError(f"container {cid[:12]} not running after {RUNNING_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def cleanup(self) -> None:
        """Remove every container that still runs; kill whatever an interruption left behind."""
        if self.pm:
            self.pm.remove_all_containers()
        running = [r for r in self.records() if r.get("state", {}).get("status") == "running"]
        if running:
            subprocess.run(self.rootless + ["rm", "-f"] + [r["id"] for r in running], env=self.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=False)
        for rec in running:  # the keeper takes its container along (PR_SET_PDEATHSIG)
            st = rec["state"]
            for pid, start in ((st.get("keeper"), st.get("keeper_start")), (st.get("pid"), st.get("pid_start"))):
                if pid and start and pid_start(pid) == start:
                    kill_quietly(pid)
        self.kill_strays()

    def kill_strays(self) -> None:
        """Kill any process still working on this store: a keeper whose start an
        interruption cut short before its record said running, or a CLI."""
        needle = b"ROOTLESS_ROOT=" + self.root.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            if needle in environ:
                kill_quietly(int(entry))


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def measure_keeper_rss(lc: Lifecycle) -> tuple[dict[str, list[float]], dict, list[str], list[str]]:
    """Start the idle detached containers (left running, for exec) and read their memory."""
    names = [f"rss{i}" for i in range(RSS_CONTAINERS)]
    recs = [lc.wait_running(lc.run_detached(name)) for name in names]
    pm_ids = []
    if lc.pm:
        pm_ids = [run_checked(lc.pm.run_detached_argv(), lc.pm.env, capture=True)
                  .stdout.decode().strip() for _ in names]
    time.sleep(RSS_SETTLE)
    keepers = [memory_kb(r["state"]["keeper"]) for r in recs]
    from bench_scale import forkers
    # the warm forker is the CLI's (it leaves 60 s after the last command): reported apart, since a
    # resting keeper has exec'd and shares no page with it
    forker = [memory_kb(pid) for pid in forkers()]
    ctrs = [memory_kb(r["state"]["pid"]) for r in recs]
    samples = {"keeper rss (MB)": [kb_to_mb(m["VmRSS"]) for m in keepers],
               "container rss (MB)": [kb_to_mb(m["VmRSS"]) for m in ctrs]}
    detail: dict = {"keeper_kb": keepers, "container_kb": ctrs, "forker_kb": forker}
    if lc.pm:
        conmons = []
        for pid_text in (lc.pm_cmd("inspect", "-f", "{{.State.ConmonPid}}", cid, capture=True)
                         .stdout.decode().strip() for cid in pm_ids):
            if not pid_text.isdigit() or int(pid_text) == 0:
                raise BenchError(f"podman inspect gave no conmon pid ({pid_text!r})")
            conmons.append(memory_kb(int(pid_text)))
        samples["conmon rss (MB)"] = [kb_to_mb(m["VmRSS"]) for m in conmons]
        detail["conmon_kb"] = conmons
    return samples, detail, names, pm_ids


def measure_run_stop(start, stop, remove, env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Per iteration: ``start(name)`` then ``stop(name)`` timed, ``remove(name)`` not."""
    out: dict[str, list[float]] = {"total": [], "run -d": [], "stop": []}
    for i in range(WARMUP + runs):
        name = f"b{i}"
        t0 = time.perf_counter()
        run_checked(start(name), env)
        t1 = time.perf_counter()
        run_checked(stop(name), env)
        t2 = time.perf_counter()
        run_checked(remove(name), env)
        if i >= WARMUP:
            out["total"].append((t2 - t0) * 1000.0)
            out["run -d"].append((t1 - t0) * 1000.0)
            out["stop"].append((t2 - t1) * 1000.0)
    return out


def fill_store(lc: Lifecycle, count: int) -> list[str]:
    """``count`` containers in the store: one from ``rootless create``, the rest written with
    ``rootless.runtime.state.create`` from its image, layers and command. The ids written."""
    paths_mod, spec_mod, state_mod = repo_modules()
    ref = lc.record(lc.rl("create", "--name", "ps000", "busybox", "true", capture=True)
                    .stdout.decode().strip())
    if not ref:
        raise BenchError("rootless create wrote no readable record")
    rs = ref["spec"]
    paths = paths_mod.Paths(root=lc.root, runroot=os.path.join(lc.env["XDG_RUNTIME_DIR"], "rootless"))
    method = ref.get("rootfs_method") or "kernel"
    written = []
    for i in range(1, count):
        cid = os.urandom(32).hex()
        env = tuple(f"HOSTNAME={cid[:12]}" if e.startswith("HOSTNAME=") else e for e in rs["env"])
        cspec = spec_mod.ContainerSpec(
            id=cid, name=f"ps{i:03d}", image_id=rs["image_id"], image_name=rs["image_name"],
            layers=tuple(rs["layers"]), argv=tuple(rs["argv"]), env=env, user=rs.get("user", ""),
            workdir=rs.get("workdir", "/"), hostname=cid[:12])
        state_mod.create(paths, cspec, method, generated_name=False)
        written.append(cid)
    return written


def bench_lifecycle(lc: Lifecycle, runs: int) -> dict:
    """The lifecycle figures; containers are removed as it goes (lc.cleanup() for the rest)."""
    samples, detail, names, pm_ids = measure_keeper_rss(lc)

    samples["rootless exec (ms)"] = measure(lc.rootless + ["exec", names[0], "true"], runs, lc.env)
    if lc.pm:
        samples["podman exec (ms)"] = measure(lc.pm.argv + ["exec", pm_ids[0], "true"], runs,
                                              lc.pm.env)
    lc.rl("rm", "-f", *names)
    if lc.pm:
        lc.pm_cmd("rm", "-f", "-t", "0", *pm_ids)

    rl = lc.rootless
    rs = measure_run_stop(
        lambda n: rl + ["run", "-d", "--name", n, "--network", "none", "busybox", *SLEEPER],
        lambda n: rl + ["stop", "-t", "0", n], lambda n: rl + ["rm", "-f", n], lc.env, runs)
    samples["rootless run -d + stop (ms)"] = rs["total"]
    detail["rootless run -d + stop"] = {"run -d": rs["run -d"], "stop": rs["stop"]}
    if lc.pm:
        pm = lc.pm
        ps = measure_run_stop(pm.run_detached_argv, lambda n: pm.argv + ["stop", "-t", "0", n],
                              lambda n: pm.argv + ["rm", "-f", "-t", "0", n], pm.env, runs)
        samples["podman run -d + stop (ms)"] = ps["total"]
        detail["podman run -d + stop"] = {"run -d": ps["run -d"], "stop": ps["stop"]}

    written = fill_store(lc, PS_CONTAINERS)
    try:
        listed = lc.rl("ps", "-aq", capture=True).stdout.decode().split()
        if len(listed) != PS_CONTAINERS:
            raise BenchError(f"rootless ps -aq lists {len(listed)} containers, "
                             f"{PS_CONTAINERS} are in the store")
        samples[f"ps -a {PS_CONTAINERS} (ms)"] = measure(rl + ["ps", "-a"], runs, lc.env)
    finally:
        for cid in written:  # plain files of ours (never started): no user namespace needed
            shutil.rmtree(os.path.join(lc.containers, cid), ignore_errors=True)
    lc.rl("rm", "ps000")

    order = ["keeper rss (MB)", "conmon rss (MB)", "container rss (MB)",
             "rootless run -d + stop (ms)", "podman run -d + stop (ms)",
             f"ps -a {PS_CONTAINERS} (ms)", "rootless exec (ms)", "podman exec (ms)"]
    samples = {k: samples[k] for k in order if k in samples}
    results = {name: stats(s) for name, s in samples.items()}
    return {"results": results, "samples": samples, "detail": summarize_detail(detail),
            "targets": lifecycle_targets(results), "containers": {"rss": RSS_CONTAINERS,
                                                                 "ps": PS_CONTAINERS}}


def summarize_detail(detail: dict) -> dict:
    """Medians (MB) of each memory figure, the raw kB readings, and the run -d / stop split (ms)."""
    out: dict = {"raw": detail}
    for key in ("keeper_kb", "container_kb", "conmon_kb"):
        if key not in detail:
            continue
        fields = {}
        for field in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss"):
            values = [m.get(field) for m in detail[key]]
            known = [v for v in values if v is not None]
            fields[field] = kb_to_mb(statistics.median(known)) if len(known) == len(values) else None
        out[key.removesuffix("_kb") + " (MB medians)"] = fields
    for key in ("rootless run -d + stop", "podman run -d + stop"):
        if key in detail:
            out[key + " (ms medians)"] = {k: statistics.median(v) for k, v in detail[key].items()}
    return out


def lifecycle_targets(results: dict) -> dict:
    keeper = results["keeper rss (MB)"]["median"]
    out = {"keeper rss (MB)": {"value": keeper, "target": KEEPER_RSS_TARGET_MB,
                               "pass": keeper <= KEEPER_RSS_TARGET_MB}}
    if "conmon rss (MB)" in results:
        out["keeper rss / conmon rss"] = {"value": keeper / results["conmon rss (MB)"]["median"]}
    if "podman exec (ms)" in results:
        value = results["rootless exec (ms)"]["median"] / results["podman exec (ms)"]["median"]
        out["rootless exec / podman exec"] = {"value": value, "target": EXEC_RATIO_TARGET,
                                              "pass": value <= EXEC_RATIO_TARGET}
    if "podman run -d + stop (ms)" in results:
        out["run -d + stop: rootless / podman"] = {
            "value": results["rootless run -d + stop (ms)"]["median"]
            / results["podman run -d + stop (ms)"]["median"]}
    ps = results[f"ps -a {PS_CONTAINERS} (ms)"]["median"]
    out[f"ps -a {PS_CONTAINERS} (ms)"] = {"value": ps, "target": PS_TARGET_MS, "pass": ps < PS_TARGET_MS}
    return out


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ratios(results: dict) -> dict:
    """rootless run against podman (target), against the floor, and the CLI start-up target."""
    run = results["rootless run"]["median"]
    out = {"rootless run / floor": {"value": run / results["floor"]["median"]}}
    if "podman run" in results:
        value = run / results["podman run"]["median"]
        out["rootless run / podman run"] = {"value": value, "target": PODMAN_RATIO_TARGET,
                                            "pass": value <= PODMAN_RATIO_TARGET}
    cli = results["cli startup"]["median"]
    out["cli startup (ms)"] = {"value": cli, "target": CLI_TARGET_MS, "pass": cli < CLI_TARGET_MS}
    return out


def report_host(facts: dict) -> None:
    print("host")
    for key in ("kernel", "cpus", "cpu", "python", "podman", "overlay", "bytecode"):
        if facts.get(key) is not None:
            print(f"  {key + ':':9} {facts[key]}")
    print()


def report(facts: dict, results: dict, podman_note: str, rat: dict, bd: dict) -> None:
    report_host(facts)
    report_run(results, podman_note, rat, bd)


def report_run(results: dict, podman_note: str, rat: dict, bd: dict) -> None:
    print(f"{'measurement':<17} {'median':>8} {'p10':>8} {'p90':>8} {'min':>8} {'max':>8} {'runs':>5}   (ms)")
    for name, s in results.items():
        print(f"{name:<17} {s['median']:8.1f} {s['p10']:8.1f} {s['p90']:8.1f} "
              f"{s['min']:8.1f} {s['max']:8.1f} {s['runs']:5d}")
    print("(run: --network none; run net: the default network, slirp4netns for both tools)")
    if podman_note:
        print(f"podman: unavailable ({podman_note})")
    print()

    print("ratios")
    rr = rat.get("rootless run / podman run")
    if rr:
        print(f"  rootless run / podman run  {rr['value']:6.2f}   target <= {rr['target']:.2f}  "
              f"{verdict(rr['pass'])}")
        net = results["rootless run net"]["median"] / results["podman run net"]["median"]
        print(f"  with slirp4netns           {net:6.2f}   target <= {rr['target']:.2f}  {verdict(net <= rr['target'])}")
    else:
        print("  rootless run / podman run     n/a   (no podman)")
    print(f"  rootless run / floor       {rat['rootless run / floor']['value']:6.2f}")
    cli = rat["cli startup (ms)"]
    print(f"  cli startup                {cli['value']:6.1f}   target <  {cli['target']:.0f} ms  "
          f"{verdict(cli['pass'])}")
    print()

    print(f"breakdown of rootless run (medians of {bd['wall']['runs']} runs with ROOTLESS_TIMING; "
          f"wall median {bd['wall']['median']:.1f} ms)")
    print(f"  context: python -c pass {results['python']['median']:.1f} ms, "
          f"cli startup {results['cli startup']['median']:.1f} ms")
    print(f"  {'(start) -> main':<18} {fmt_ms(bd['outside_main']):>7}  "
          "interpreter start + imports before main (+ exit after done)")
    for p in bd["phases"]:
        span = f"{p['from']} -> {p['to']}"
        print(f"  {span:<18} {fmt_ms(p['median']):>7}  {p['label']}")
    print(f"  {'main -> done':<18} {fmt_ms(bd['main_to_done']):>7}  total inside the CLI")


def report_lifecycle(lc: dict, podman_note: str) -> None:
    results, detail, targets = lc["results"], lc["detail"], lc["targets"]
    print(f"{'lifecycle':<28} {'median':>8} {'p10':>8} {'p90':>8} {'min':>8} {'max':>8} {'runs':>5}")
    for name, s in results.items():
        print(f"{name:<28} {s['median']:8.1f} {s['p10']:8.1f} {s['p90']:8.1f} "
              f"{s['min']:8.1f} {s['max']:8.1f} {s['runs']:5d}")
    if podman_note:
        print(f"podman: unavailable ({podman_note})")
    n = lc["containers"]["rss"]
    for who, key in (("keeper", "keeper (MB medians)"), ("container PID 1", "container (MB medians)"),
                     ("conmon", "conmon (MB medians)")):
        m = detail.get(key)
        if m:
            parts = "".join(f"{sep}{label} {fmt_ms(m.get(field))}" for sep, label, field in (
                (" = ", "anon", "RssAnon"), (" + ", "file", "RssFile"), (" + ", "shmem", "RssShmem"),
                (", ", "PSS", "Pss")) if m.get(field) is not None)
            print(f"  {who} (median of {n}): VmRSS {m['VmRSS']:.3f} MB{parts}")
    forker = detail.get("raw", {}).get("forker_kb") or []
    if forker:
        pss = sum(f["Pss"] or 0 for f in forker) / 1000
        print(f"  warm forker (the CLI's; it leaves 60 s after the last command): {len(forker)} processes, "
              f"PSS {pss:.1f} MB, not in the keeper's figures")
    for who in ("rootless", "podman"):
        m = detail.get(f"{who} run -d + stop (ms medians)")
        if m:
            print(f"  {who} run -d + stop: run -d {m['run -d']:.1f} ms + stop {m['stop']:.1f} ms (medians)")
    print()

    print("lifecycle ratios")
    k = targets["keeper rss (MB)"]
    print(f"  keeper rss                   {k['value']:6.1f}   target <= {k['target']:.0f} MB   "
          f"{verdict(k['pass'])}")
    kc = targets.get("keeper rss / conmon rss")
    print(f"  keeper rss / conmon rss      {kc['value']:6.2f}" if kc
          else "  keeper rss / conmon rss         n/a   (no podman)")
    ex = targets.get("rootless exec / podman exec")
    if ex:
        print(f"  rootless exec / podman exec  {ex['value']:6.2f}   target <= {ex['target']:.2f}  "
              f"{verdict(ex['pass'])}")
    else:
        print("  rootless exec / podman exec     n/a   (no podman)")
    rs = targets.get("run -d + stop: rootless / podman")
    print(f"  run -d + stop / podman       {rs['value']:6.2f}" if rs
          else "  run -d + stop / podman          n/a   (no podman)")
    ps = targets[f"ps -a {PS_CONTAINERS} (ms)"]
    print(f"  ps -a with {PS_CONTAINERS} containers    {ps['value']:6.1f}   target <  "
          f"{ps['target']:.0f} ms  {verdict(ps['pass'])}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"measured runs per figure, after {WARMUP} warm-ups (default {DEFAULT_RUNS})")
    parser.add_argument("--quick", action="store_true", help=f"same as --runs {QUICK_RUNS}")
    parser.add_argument("--json", metavar="FILE", help="also write all figures as JSON to FILE")
    parser.add_argument("--scale", type=int, metavar="N",
                        help=f"idle containers of the scale group (default {SCALE_CONTAINERS}, "
                             f"--quick {SCALE_QUICK})")
    parser.add_argument("--only", choices=GROUPS,
                        help="measure one group: run (rootless run --rm against the floor and podman), "
                             "lifecycle (keeper memory, run -d + stop, ps -a, exec), net (published-port "
                             "throughput and connections per second) or pull (a 200 MB image from a local "
                             "registry, beside podman and skopeo), logs, volumes or build (cold, cached and "
                             "touched builds of a Dockerfile and of real ones, beside podman build), api or scale "
                             "(memory and start time of N idle containers); default all")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = QUICK_RUNS
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.scale is not None and args.scale < 1:
        parser.error("--scale must be at least 1")
    return args


def bench(tmp: str, runs: int, groups: tuple[str, ...] = GROUPS, scale: int | None = None) -> dict:
    """Set everything up under ``tmp``, measure the groups, and return all figures."""
    rootless = [rootless_exe()]
    images = build_images(os.path.join(tmp, "images"))
    image_tar = images["busybox.tar"]

    env = rootless_env(os.path.join(tmp, "rl"))
    empty_env = rootless_env(os.path.join(tmp, "rl-empty"))
    run_checked(rootless + ["load", "-i", image_tar], env)
    facts = host_facts(rootless, env)

    pm, podman_note = setup_podman(tmp, image_tar)
    lc = Lifecycle(rootless, env, pm)
    figures = {"host": facts, "runs": runs, "warmup": WARMUP, "groups": list(groups),
               "podman_unavailable": podman_note or None}
    try:
        if "run" in groups:
            rootfs = extract_rootfs(images["busybox-rootfs.tar"], os.path.join(tmp, "rootfs"))
            figures.update(bench_run(rootless, env, empty_env, rootfs, pm, tmp, runs))
        if "lifecycle" in groups:
            figures["lifecycle"] = bench_lifecycle(lc, runs)
        if "pull" in groups:
            import bench_pull
            base_layer, base_config = busybox_layer(image_tar)
            figures["pull"] = bench_pull.bench_pull(rootless, env, pm, tmp, 1 if runs <= QUICK_RUNS else PULL_ROUNDS,
                                                    base_layer, base_config, remove_tree)
        if "volumes" in groups:
            import bench_volumes
            figures["volumes"] = bench_volumes.bench_volumes(rootless, dict(env, BENCH_IMAGE=image_tar), tmp,
                                                             1 if runs <= QUICK_RUNS else 5)  # a start per place
        if "logs" in groups:
            import bench_logs
            figures["logs"] = bench_logs.bench_logs(rootless, env, pm, 1 if runs <= QUICK_RUNS else 3)
        if "build" in groups:
            import bench_build
            figures["build"] = bench_build.bench_build(rootless, env, pm, tmp, runs, stats)
            import bench_build_real
            figures["build"]["real"] = bench_build_real.bench_real(
                rootless, env, pm, tmp, 1 if runs <= QUICK_RUNS else 3, rootless_env,
                lambda base: Podman(pm.argv[0], base))
        if "api" in groups:
            import bench_api
            figures["api"] = bench_api.bench_api(rootless, env, pm, tmp, runs, measure, stats)
        if "scale" in groups:
            import bench_scale
            n = scale or (SCALE_QUICK if runs <= QUICK_RUNS else SCALE_CONTAINERS)
            figures["scale"] = bench_scale.bench_scale(rootless, env, pm, n,
                                                       lambda argv, e: run_checked(argv, e, capture=True))
        if "net" in groups:
            import bench_net
            quick = runs <= QUICK_RUNS
            figures["net"] = bench_net.bench_net(
                rootless, env, pm, NET_BYTES // 8 if quick else NET_BYTES, NET_ROUNDS,
                NET_SECONDS / 2 if quick else NET_SECONDS, lambda argv, e: run_checked(argv, e, capture=True))
    finally:
        cleanup(rootless, lc, pm, (env, empty_env))
    return figures


def busybox_layer(image_tar: str) -> tuple[bytes, dict]:
    """The busybox test image's one layer (a tar) and its config, from its docker-archive."""
    import tarfile
    with tarfile.open(image_tar) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        layer = t.extractfile(manifest["Layers"][0]).read()
        config = json.load(t.extractfile(manifest["Config"]))
    return layer, config


def cleanup(rootless: list[str], lc: Lifecycle, pm: Podman | None,
            envs: tuple[dict[str, str], ...]) -> None:
    """Containers, podman's storage and the stores; a Ctrl-C does not cut it short."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        lc.cleanup()
        if pm:
            pm.cleanup()
        for e in envs:
            subprocess.run(rootless + ["system", "reset", "-f"], env=e, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT,
                           check=False)
    finally:
        signal.signal(signal.SIGINT, old)


def bench_run(rootless: list[str], env: dict[str, str], empty_env: dict[str, str], rootfs: str,
              pm: Podman | None, tmp: str, runs: int) -> dict:
    """The ``rootless run --rm`` group: the floor, the references, the run and its breakdown."""
    run_argv = rootless + ["run", "--rm", "--network", "none", "busybox", "true"]
    plain_env = dict(os.environ)
    plain_env.pop("ROOTLESS_TIMING", None)
    samples = {
        "floor": measure([find_tool("unshare"), "-Urmpf", "--mount-proc",
                          find_tool("chroot"), rootfs, "/bin/true"], runs, plain_env),
        "python": measure([sys.executable, "-c", "pass"], runs, plain_env),
        "cli startup": measure(rootless + ["images", "-q"], runs, empty_env),
        "rootless run": measure(run_argv, runs, env),
        # the default network: a slirp4netns per container, as podman's
        "rootless run net": measure(rootless + ["run", "--rm", "busybox", "true"], runs, env),
    }
    if pm:
        samples["podman run"] = measure(pm.run_argv(), runs, pm.env)
        samples["podman run net"] = measure(pm.run_argv("slirp4netns"), runs, pm.env)

    timing_file = os.path.join(tmp, "timing.jsonl")
    walls = measure(run_argv, runs, dict(env, ROOTLESS_TIMING=timing_file))
    bd = breakdown(walls, read_marks(timing_file, runs))

    results = {name: stats(s) for name, s in samples.items()}
    cost = network_cost(rootless, env, runs)
    return {"results": results, "samples": samples, "ratios": ratios(results), "breakdown": bd,
            "network cost": cost}


def network_cost(rootless: list[str], env: dict[str, str], runs: int) -> dict:
    """What the default network adds to ``run --rm``, paired: each pair runs ``--network none``
    and the default network one after the other (alternating which goes first), so both see the
    same load; the median of the per-pair differences (ms)."""
    none = rootless + ["run", "--rm", "--network", "none", "busybox", "true"]
    default = rootless + ["run", "--rm", "busybox", "true"]
    diffs, a, b = [], [], []
    for i in range(1 + runs):  # one warm-up pair
        order = (none, default) if i % 2 else (default, none)
        walls = {}
        for argv in order:
            t0 = time.perf_counter()
            run_checked(argv, env)
            walls[argv is none] = (time.perf_counter() - t0) * 1000.0
        if i:
            a.append(walls[True])
            b.append(walls[False])
            diffs.append(walls[False] - walls[True])
    return {"median": statistics.median(diffs), "none": statistics.median(a), "default": statistics.median(b),
            "pairs": runs, "samples": diffs}


def remove_tree(path: str) -> None:
    """Remove the temporary directory; files of subordinate uids need the user namespace."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        cmd = shutil.which("rootless", path=os.path.dirname(sys.executable)) or "rootless"
        subprocess.run([cmd, "unshare", "rm", "-rf", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if os.path.exists(path):
        print(f"bench: warning: could not remove {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() == 0:
        print("bench: error: run this as a normal (unprivileged) user, not as root: "
              "it measures rootless containers", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="rootless-bench.")
    try:
        figures = bench(tmp, args.runs, (args.only,) if args.only else GROUPS, args.scale)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        remove_tree(tmp)
    podman_note = figures["podman_unavailable"] or ""
    report_host(figures["host"])
    if "results" in figures:
        report_run(figures["results"], podman_note, figures["ratios"], figures["breakdown"])
        cost = figures["network cost"]
        print(f"  the default network over --network none, paired: {cost['median']:.1f} ms "
              f"(medians {cost['none']:.1f} vs {cost['default']:.1f} ms, {cost['pairs']} pairs)")
    if "lifecycle" in figures:
        if "results" in figures:
            print()
        report_lifecycle(figures["lifecycle"], podman_note)
    if "pull" in figures:
        import bench_pull
        print()
        bench_pull.report(figures["pull"], podman_note)
    if "net" in figures:
        import bench_net
        print()
        bench_net.report(figures["net"], podman_note)
    if "volumes" in figures:
        import bench_volumes
        bench_volumes.report(figures["volumes"])
    if "logs" in figures:
        import bench_logs
        bench_logs.report(figures["logs"], podman_note)
    if "build" in figures:
        import bench_build
        bench_build.report(figures["build"], podman_note)
        import bench_build_real
        bench_build_real.report(figures["build"]["real"])
    if "api" in figures:
        import bench_api
        bench_api.report(figures["api"], podman_note)
    if "scale" in figures:
        import bench_scale
        bench_scale.report(figures["scale"], podman_note)
    import bench_goals
    figures["goals"] = bench_goals.goals(figures)
    bench_goals.report(figures["goals"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2, sort_keys=True)
            f.write("\n")
    return 1 if figures.get("build", {}).get("failed") else 0  # a rootless build failed: reported above


if __name__ == "__main__":
    sys.exit(main())
