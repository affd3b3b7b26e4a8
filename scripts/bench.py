#!/usr/bin/env python3
"""Measure how long ``rootless run`` takes, beside the references this machine has.

Usage::

    python scripts/bench.py [--runs N | --quick] [--json FILE]

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
``rootless/timing.py``). What happens before the ``main`` mark (interpreter
start and imports) and after ``done`` (interpreter exit) is not observable
from the inside; it is reported as the wall time minus ``main -> done``.

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
    ("mapped", "forked", "namespaces + root filesystem mount"),
    ("forked", "exec", "mounts, pivot_root, identity, exec (container PID 1)"),
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

    def run_argv(self) -> list[str]:
        return self.argv + ["run", "--rm", "--network", "none", PODMAN_IMAGE, "true"]

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


def host_facts(rootless: list[str], env: dict[str, str]) -> dict:
    podman = shutil.which("podman")
    return {
        "kernel": f"{platform.system()} {platform.release()}",
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "podman": command_output([podman, "--version"]) if podman else None,
        "overlay": overlay_method(rootless, env),
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


def report(facts: dict, results: dict, podman_note: str, rat: dict, bd: dict) -> None:
    print("host")
    for key in ("kernel", "cpus", "cpu", "python", "podman", "overlay"):
        if facts.get(key) is not None:
            print(f"  {key + ':':9} {facts[key]}")
    print()

    print(f"{'measurement':<14} {'median':>8} {'p10':>8} {'p90':>8} {'min':>8} {'max':>8} {'runs':>5}   (ms)")
    for name, s in results.items():
        print(f"{name:<14} {s['median']:8.1f} {s['p10']:8.1f} {s['p90']:8.1f} "
              f"{s['min']:8.1f} {s['max']:8.1f} {s['runs']:5d}")
    if podman_note:
        print(f"podman: unavailable ({podman_note})")
    print()

    print("ratios")
    rr = rat.get("rootless run / podman run")
    if rr:
        print(f"  rootless run / podman run  {rr['value']:6.2f}   target <= {rr['target']:.2f}  "
              f"{verdict(rr['pass'])}")
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


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"measured runs per figure, after {WARMUP} warm-ups (default {DEFAULT_RUNS})")
    parser.add_argument("--quick", action="store_true", help=f"same as --runs {QUICK_RUNS}")
    parser.add_argument("--json", metavar="FILE", help="also write all figures as JSON to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = QUICK_RUNS
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def bench(tmp: str, runs: int) -> dict:
    """Set everything up under ``tmp``, measure, and return all figures."""
    rootless = [rootless_exe()]
    images = build_images(os.path.join(tmp, "images"))
    image_tar = images["busybox.tar"]
    rootfs = extract_rootfs(images["busybox-rootfs.tar"], os.path.join(tmp, "rootfs"))

    env = rootless_env(os.path.join(tmp, "rl"))
    empty_env = rootless_env(os.path.join(tmp, "rl-empty"))
    run_checked(rootless + ["load", "-i", image_tar], env)
    facts = host_facts(rootless, env)

    pm, podman_note = setup_podman(tmp, image_tar)
    try:
        run_argv = rootless + ["run", "--rm", "--network", "none", "busybox", "true"]
        plain_env = dict(os.environ)
        plain_env.pop("ROOTLESS_TIMING", None)
        samples = {
            "floor": measure([find_tool("unshare"), "-Urmpf", "--mount-proc",
                              find_tool("chroot"), rootfs, "/bin/true"], runs, plain_env),
            "python": measure([sys.executable, "-c", "pass"], runs, plain_env),
            "cli startup": measure(rootless + ["images", "-q"], runs, empty_env),
            "rootless run": measure(run_argv, runs, env),
        }
        if pm:
            samples["podman run"] = measure(pm.run_argv(), runs, pm.env)

        timing_file = os.path.join(tmp, "timing.jsonl")
        walls = measure(run_argv, runs, dict(env, ROOTLESS_TIMING=timing_file))
        bd = breakdown(walls, read_marks(timing_file, runs))
    finally:
        if pm:
            pm.cleanup()
        for e in (env, empty_env):
            subprocess.run(rootless + ["system", "reset", "-f"], env=e, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT,
                           check=False)

    results = {name: stats(s) for name, s in samples.items()}
    return {"host": facts, "runs": runs, "warmup": WARMUP, "results": results,
            "samples": samples, "podman_unavailable": podman_note or None,
            "ratios": ratios(results), "breakdown": bd}


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
        figures = bench(tmp, args.runs)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        remove_tree(tmp)
    report(figures["host"], figures["results"], figures["podman_unavailable"] or "",
           figures["ratios"], figures["breakdown"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
