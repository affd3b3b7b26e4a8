#!/usr/bin/env python3
"""Containers in Slurm array jobs on the test bed (issue 26): the per-task start time of an
8-task ``sbatch --array`` with ``rootless run`` against the same array without containers, and
the registry's pulls per array.

Run it as an unprivileged Slurm user while the bed is up (as root: ``scripts/slurm-testbed.sh
up``)::

    .venv/bin/python scripts/bench_slurm.py [--tasks 8] [--runs 2]

The image (the test busybox) is pushed to a ``docker-registry`` on the bed's bridge, which every
node reaches. Each task notes the clock when its batch script starts and the clock its command
reads inside the container (``/proc/uptime``: one kernel, so one clock for every node); the
difference is the task's start time. The arrays:

- ``bare``: the command without a container (the floor: Slurm's own start of a task);
- ``local store, cold``: ``rootless run`` pulling into each node's fresh node-local store;
- ``local store, warm``: the same again, the image now on each node;
- ``shared store``: ``rootless run`` of the image in a read-only store in the shared home,
  filled once by ``rootless pull --store`` (``ROOTLESS_ADDITIONAL_STORES``), fresh node stores.

Printed per array: the median and the largest task start, the overhead of the median over
``bare``, the array's wall time (submission to the end of ``sbatch --wait``), and the registry's
manifest requests during the array (its access log). Everything made is removed at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("ROOTLESS_SLURM_TESTBED", "/run/rootless-slurm-testbed"))
ROOTLESS = str(Path(sys.executable).with_name("rootless"))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def testbed() -> dict[str, str]:
    try:
        text = STATE.read_text()
    except OSError:
        sys.exit(f"bench_slurm: the Slurm test bed is not up ({STATE} missing): as root, scripts/slurm-testbed.sh up")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class Bench:
    def __init__(self, state: dict[str, str], tasks: int):
        self.state = state
        self.tasks = tasks
        self.key = uuid.uuid4().hex[:8]
        self.shared = Path.home() / ".cache" / "rootless-bench-slurm" / self.key  # every node sees the home
        self.shared.mkdir(parents=True)
        self.local = f"/tmp/rlbench-{self.key}"  # node-local: each node's /tmp
        self.config = self.shared / "config.toml"
        self.host_store = self.shared / "host"  # the pusher's store (on the host)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("XDG_RUNTIME_DIR", "TMPDIR") and not k.startswith(("SLURM_", "ROOTLESS_"))}
        env.update(ROOTLESS_CONFIG=str(self.config), ROOTLESS_ROOT=f"{self.local}/store", **extra)
        env["PATH"] = os.path.dirname(ROOTLESS) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        return env

    def host_rootless(self, *args: str) -> str:
        env = dict(self.env(), ROOTLESS_ROOT=str(self.host_store), XDG_RUNTIME_DIR=str(self.shared / "run"))
        (self.shared / "run").mkdir(mode=0o700, exist_ok=True)
        return subprocess.run([ROOTLESS, *args], env=env, check=True, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL).stdout

    def on_nodes(self, script: str) -> None:
        subprocess.run(["srun", "--quiet", f"--chdir={self.shared}", "-N2", "--ntasks-per-node=1", "sh", "-c", script],
                       env=self.env(), check=False, capture_output=True, stdin=subprocess.DEVNULL)

    def array(self, name: str, command: str, **env: str) -> tuple[list[float], float]:
        """Run ``command`` as an array (after ``t0`` is read in the batch script, it prints the
        clock inside); the tasks' start times and the array's wall time."""
        script = self.shared / f"{name}.sh"
        script.write_text("#!/bin/sh\nt0=$(cut -d' ' -f1 /proc/uptime)\n"
                          f"t1=$({command})\necho \"$t0 $t1\"\n")
        begun = time.monotonic()
        subprocess.run(["sbatch", "--wait", "--quiet", f"--array=0-{self.tasks - 1}", f"--chdir={self.shared}",
                        f"--job-name=rlbench-{name}", f"--output={self.shared}/{name}-%a.out",
                        f"--error={self.shared}/{name}-%a.err", str(script)],
                       env=self.env(**env), check=True, stdin=subprocess.DEVNULL)
        wall = time.monotonic() - begun
        starts = []
        for i in range(self.tasks):
            fields = (self.shared / f"{name}-{i}.out").read_text().split()
            if len(fields) != 2:
                sys.exit(f"bench_slurm: task {i} of {name} failed: {fields}")
            starts.append(float(fields[1]) - float(fields[0]))
        return starts, wall

    def reset_nodes(self) -> None:
        self.on_nodes(f"[ -d {self.local}/store ] && {ROOTLESS} system reset --force >/dev/null; rm -rf {self.local}")

    def cleanup(self) -> None:
        self.reset_nodes()
        store = self.shared / "ro-store"
        if store.exists():
            self.host_rootless("unshare", "sh", "-c", f"chmod -R u+w {store} && rm -rf {store}")
        if self.host_store.exists():
            self.host_rootless("system", "reset", "--force")
        shutil.rmtree(self.shared, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks per array (default 8)")
    args = parser.parse_args(argv)
    state = testbed()
    registryd = _load("registryd", REPO / "tests" / "registryd.py")
    mkimages = _load("mkimages", REPO / "scripts" / "mkimages.py")
    bench = Bench(state, args.tasks)
    registry = None
    try:
        mkimages.build_all(str(bench.shared / "images"), os.environ.get("ROOTLESS_TEST_BUSYBOX", "/bin/busybox"),
                           only={"busybox"})
        registry = registryd.Registry(bench.shared / "registry", address=state["host_address"], access_log=True)
        bench.config.write_text(f'[registries]\ninsecure = ["{registry.host}"]\n')
        ref = f"{registry.host}/hpc/busybox:1"
        bench.host_rootless("load", "-i", str(bench.shared / "images" / "busybox.tar"))
        bench.host_rootless("tag", "busybox", ref)
        bench.host_rootless("push", "-q", ref)
        log = registry.base / "registry.log"

        def manifests() -> int:
            return len(re.findall(r'"GET /v2/[^ ]*/manifests/[^ ]* HTTP', log.read_text(errors="replace")))

        run = f"{ROOTLESS} run --rm --network host {ref} cut -d' ' -f1 /proc/uptime"
        rows = []
        for name, command, env, fresh in (
                ("bare", "cut -d' ' -f1 /proc/uptime", {}, False),
                ("local store, cold", run, {}, True),
                ("local store, warm", run, {}, False),
                ("shared store", run, {"ROOTLESS_ADDITIONAL_STORES": str(bench.shared / "ro-store")}, True)):
            if fresh:
                bench.reset_nodes()
            if name == "shared store":
                before_fill = manifests()
                bench.host_rootless("pull", "-q", "--store", str(bench.shared / "ro-store"), ref)
                filled = manifests() - before_fill
            before = manifests()
            starts, wall = bench.array(name.split(",")[0].replace(" ", "-") + ("-cold" if "cold" in name else ""),
                                       command, **env)
            pulls = manifests() - before
            if name == "shared store":
                pulls_text = f"{pulls} (+{filled} for pull --store)"
            else:
                pulls_text = str(pulls)
            rows.append((name, statistics.median(starts), max(starts), wall, pulls_text))
        bare = rows[0][1]
        print(f"{args.tasks}-task array on {state['nodes']} (one machine, {os.cpu_count()} cores):")
        print(f"{'array':<20} {'median start':>13} {'max start':>10} {'overhead':>9} {'wall':>7}  registry pulls")
        for name, median, biggest, wall, pulls_text in rows:
            print(f"{name:<20} {median:>12.2f}s {biggest:>9.2f}s {median - bare:>8.2f}s {wall:>6.1f}s  {pulls_text}")
        return 0
    finally:
        if registry is not None:
            registry.stop()
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
