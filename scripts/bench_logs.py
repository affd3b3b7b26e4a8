"""The ``logs`` group of ``scripts/bench.py``: what a chatty container costs (issue 12).

Two outputs, each written by a container without a network as fast as it can:

- ``yes flood``: ``yes | head -c 10M``, two-byte lines, the worst case for a log with a record
  (and a timestamp) per line;
- ``80 columns``: 50 MB of 80-column lines, a verbose program's output.

For each log driver (json-file and k8s-file here; podman's k8s-file beside them when podman
works), with rotation out of the way (``max-size=1g``, ``max-file=1``) so that the format's own
cost shows:

- ``run s``: ``run -d`` until ``wait`` returns: how much the log slows the container down;
- ``disk/output``: bytes of log on disk per byte of output;
- ``logs MB/s``: output bytes per second of ``logs NAME > /dev/null``;
- ``tail ms``: ``logs --tail 10``.

Then the flood once more with the default settings: its log on disk stays under the default
cap (5 files of 20 MB).
"""

from __future__ import annotations

import os
import subprocess
import time

OUTPUTS = {
    "yes flood": ("yes | head -c 10485760", 10485760),
    "80 columns": ("yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678"
                   " | head -c 52428800", 52428800),
}
UNBOUNDED = ["--log-opt", "max-size=1g", "--log-opt", "max-file=1"]
DEFAULT_CAP = 5 * 20 * 1024 * 1024


def _timed(argv: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   check=True, timeout=600)
    return time.perf_counter() - t


def _log_bytes(store: str, cid: str) -> int:
    d = os.path.join(store, "containers", cid)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("ctr.log"))


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def _one(run: list[str], wait: list[str], logs: list[str], env: dict, size_of, output_bytes: int) -> dict:
    """run -d + wait, the disk, logs and logs --tail of one container (its name in ``run``)."""
    t = time.perf_counter()
    cid = subprocess.run(run, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True,
                         timeout=600).stdout.strip()
    subprocess.run(wait, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=600)
    run_s = time.perf_counter() - t
    disk = size_of(cid)
    logs_s = _timed(logs, env)
    tail_s = _timed(logs[:-1] + ["--tail", "10", logs[-1]], env)
    return {"run s": run_s, "disk/output": disk / output_bytes, "logs MB/s": output_bytes / 1e6 / logs_s,
            "tail ms": tail_s * 1000}


def bench_logs(rootless: list[str], env: dict, pm, rounds: int) -> dict:
    store = env["ROOTLESS_ROOT"]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for out_name, (cmd, output_bytes) in OUTPUTS.items():
        for driver in ("json-file", "k8s-file"):
            samples = []
            for r in range(rounds):
                name = f"logbench-{driver}-{r}-{len(results)}"
                samples.append(_one(rootless + ["run", "-d", "--name", name, "--network", "none", "--log-driver",
                                                driver, *UNBOUNDED, "busybox", "sh", "-c", cmd],
                                    rootless + ["wait", name], rootless + ["logs", name], env,
                                    lambda cid: _log_bytes(store, cid), output_bytes))
                subprocess.run(rootless + ["rm", "-f", name], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, check=False, timeout=120)
            results.setdefault(out_name, {})[f"rootless {driver}"] = {
                k: _median([s[k] for s in samples]) for k in samples[0]}
        if pm:
            samples = []
            for r in range(rounds):
                name = f"logbench-podman-{r}-{len(results)}"
                run = pm.argv + ["run", "-d", "--name", name, "--network", "none", "--log-driver", "k8s-file",
                                 pm.image, "sh", "-c", cmd]

                def podman_size(cid, name=name):
                    path = subprocess.run(pm.argv + ["inspect", "-f", "{{.HostConfig.LogConfig.Path}}", name],
                                          env=pm.env, capture_output=True, text=True, check=True).stdout.strip()
                    return os.path.getsize(path)
                samples.append(_one(run, pm.argv + ["wait", name], pm.argv + ["logs", name], pm.env, podman_size,
                                    output_bytes))
                subprocess.run(pm.argv + ["rm", "-f", name], env=pm.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=120)
            results[out_name]["podman k8s-file"] = {k: _median([s[k] for s in samples]) for k in samples[0]}
    # the flood with the default settings: bounded on disk (issue 12 measured 91 s and 1.9 GB before)
    t = time.perf_counter()
    cid = subprocess.run(rootless + ["run", "-d", "--name", "logbench-default", "--network", "none", "busybox",
                                     "sh", "-c", "yes | head -c 52428800"], env=env, capture_output=True, text=True,
                         check=True, timeout=600).stdout.strip()
    subprocess.run(rootless + ["wait", cid], env=env, stdout=subprocess.DEVNULL, check=True, timeout=600)
    flood_s = time.perf_counter() - t
    capped = _log_bytes(store, cid)
    subprocess.run(rootless + ["rm", "-f", cid], env=env, stdout=subprocess.DEVNULL, check=False, timeout=120)
    return {"results": results, "default cap": {"flood bytes": 52428800, "run s": flood_s, "log bytes on disk": capped,
                                                "cap": DEFAULT_CAP, "within cap": capped <= DEFAULT_CAP}}


def report(logs: dict, podman_note: str) -> None:
    print("\nlogs: a container's output through its log (rotation off: the format's own cost), median")
    cols = ("run s", "disk/output", "logs MB/s", "tail ms")
    print(f"  {'output':12} {'driver':22}" + "".join(f"{c:>13}" for c in cols))
    for out_name, drivers in logs["results"].items():
        for driver, figures in drivers.items():
            print(f"  {out_name:12} {driver:22}" + "".join(f"{figures[c]:13.2f}" for c in cols))
    if podman_note:
        print(f"  (podman: {podman_note})")
    cap = logs["default cap"]
    print(f"  default settings: 50 MB of `yes` ran {cap['run s']:.1f} s "
          f"and left {cap['log bytes on disk'] / 1e6:.1f} MB of log on disk "
          f"(cap {cap['cap'] / 1e6:.0f} MB): {'ok' if cap['within cap'] else 'OVER'}")
