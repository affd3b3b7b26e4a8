"""The ``build`` group of ``scripts/bench.py``: ``rootless build`` of a 12-instruction Dockerfile,
beside ``podman build``, in one run.

The Dockerfile (``FROM busybox``, the test image made from the host's static busybox, loaded into
both tools) has 12 instructions: ``FROM``, ``ARG``, ``ENV``, ``LABEL``, ``WORKDIR``, a ``RUN``
that writes a file, ``COPY`` of a directory of ``CONTEXT_FILES`` small files from the context, a
``RUN`` that reads them, ``EXPOSE``, ``USER``, ``CMD`` and ``ENTRYPOINT``. Every build is
``--network none`` (for both tools: the network is not measured), tags ``benchimg`` and runs in
the bench's own store (podman: its own storage, runc, cgroupfs). Three figures, each the wall time
of the whole command (``time.perf_counter()`` around ``subprocess.run``), N runs after one
warm-up, median, p10 and p90 in milliseconds:

- ``cold``: ``build --no-cache -t benchimg CONTEXT`` (podman: ``podman build --no-cache --layers``);
- ``cached``: the same without ``--no-cache`` once a warm build filled the cache: every step
  cached (podman: ``podman build --layers``);
- ``touched``: one file the ``COPY`` reads rewritten with new content before each build: the
  steps from the ``COPY`` on run again, those before it come from the cache.

Ratios rootless / podman for each; targets: the cached rebuild at most 0.5x podman's and under
1 s. A cached rebuild must give the warm build's image id; each tool's image is then run once
(``CMD`` prints how many files the ``COPY`` brought). A failing build does not stop the group:
the command and the end of its output are reported, and the figures it could not give are
missing.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time

CONTEXT_FILES = 50
TAG = "benchimg"
TIMEOUT = 600  # seconds for one build
WARMUP = 1
CACHED_TARGET_MS = 1000.0
CACHED_RATIO_TARGET = 0.5
FIGURES = ("cold", "cached", "touched")


def context_file(i: int) -> str:
    """The context's i-th file: ``files/d(i % 5)/fNNN.txt``."""
    return os.path.join("files", f"d{i % 5}", f"f{i:03d}.txt")


TOUCHED = context_file(26)  # the file rewritten before each ``touched`` build

DOCKERFILE = """\
FROM busybox
ARG GREETING=hello
ENV APP_HOME=/app APP_MODE=bench
LABEL org.opencontainers.image.title="rootless bench" bench.instructions="12"
WORKDIR /app
RUN mkdir -p /app/data && echo "$GREETING from $APP_MODE" > /app/data/greeting
COPY files/ /app/files/
RUN find /app/files -type f | wc -l > /app/data/count && cat /app/files/*/* | md5sum > /app/data/sum
EXPOSE 8080/tcp
USER 1000:1000
CMD ["cat /app/data/count"]
ENTRYPOINT ["/bin/sh", "-c"]
"""


class BuildFailed(Exception):
    """One build (or the check of its image) failed: the command and the end of its output."""


def make_context(path: str) -> None:
    """The Dockerfile and ``files/``: CONTEXT_FILES files of ~1 kB in 5 directories."""
    for i in range(CONTEXT_FILES):
        name = os.path.join(path, context_file(i))
        os.makedirs(os.path.dirname(name), exist_ok=True)
        with open(name, "w") as f:
            f.write(f"file {i}\n" + "0123456789abcdef" * 64 + "\n")
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)


def instruction_count() -> int:
    return sum(1 for ln in DOCKERFILE.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))


def _tail(text: str, lines: int = 12) -> str:
    kept = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:]) if kept else "(no output)"


def _run(argv: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """Wall ms of ``argv`` and its outcome; BuildFailed when it fails."""
    t0 = time.perf_counter()
    try:
        cp = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            errors="replace", timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildFailed(f"{shlex.join(argv)}: {e}") from None
    elapsed = (time.perf_counter() - t0) * 1000.0
    if cp.returncode != 0:
        raise BuildFailed(f"{shlex.join(argv)}: exit code {cp.returncode}\n"
                          f"{_tail(cp.stderr + chr(10) + cp.stdout)}")
    return elapsed, cp


def _image_id(cp: subprocess.CompletedProcess) -> str:
    """The id a build printed last on stdout (both tools end their stdout with it)."""
    lines = [ln.strip() for ln in cp.stdout.splitlines() if ln.strip()]
    return lines[-1].removeprefix("sha256:") if lines else ""


def _cache_hits(cp: subprocess.CompletedProcess) -> int:
    """How many steps said ``Using cache`` (rootless: only steps that make a layer, WORKDIR, RUN, COPY)."""
    return sum("Using cache" in ln for ln in (cp.stdout + "\n" + cp.stderr).splitlines())


class Tool:
    """One builder: how to build, how to run the image, in which environment."""

    def __init__(self, name: str, argv: list[str], env: dict, cold: list[str], warm: list[str],
                 run: list[str]):
        self.name, self.argv, self.env = name, argv, env
        self.cold, self.warm, self.run = cold, warm, run

    def build(self, context: str, no_cache: bool) -> tuple[float, subprocess.CompletedProcess]:
        return _run(self.argv + ["build", *(self.cold if no_cache else self.warm), "--network", "none",
                                 "-t", TAG, context], self.env)


def _touch(context: str, tool: str, n: int) -> None:
    """New content (and size) for the touched file, never seen before by either tool's cache."""
    with open(os.path.join(context, TOUCHED), "w") as f:
        f.write(f"touched by the {tool} run {n} at {time.time_ns()}\n" + "x" * (n % 7) + "\n")


def _measure(tool: Tool, context: str, figure: str, runs: int, out: dict) -> None:
    """``runs`` builds of one figure (after WARMUP), into ``out``; stops at the first failure."""
    samples: list[float] = []
    detail = out["detail"].setdefault(tool.name, {})
    for i in range(WARMUP + runs):
        if figure == "touched":
            _touch(context, tool.name, i)
        ms, cp = tool.build(context, no_cache=figure == "cold")
        image = _image_id(cp)
        if figure == "cached" and image != detail["warm image"]:
            raise BuildFailed(f"{tool.name}: a cached rebuild gave image {image[:12]}, not the warm build's "
                              f"{detail['warm image'][:12]}: the cache was not used")
        if i >= WARMUP:
            samples.append(ms)
        detail[f"{figure} cache hits"] = _cache_hits(cp)
    out["samples"][f"{tool.name} {figure}"] = samples


def _tool_figures(tool: Tool, context: str, runs: int, out: dict) -> None:
    """cold, one warm build (not timed), its image checked, cached, touched; a failure is recorded."""
    detail = out["detail"].setdefault(tool.name, {})
    try:
        _measure(tool, context, "cold", runs, out)
        _, cp = tool.build(context, no_cache=False)  # fills the cache for ``cached``
        detail["warm image"] = _image_id(cp)
        detail["warm cache hits"] = _cache_hits(cp)
        _, run = _run(tool.run, tool.env)
        detail["image prints"] = run.stdout.strip()
        if detail["image prints"] != str(CONTEXT_FILES):
            raise BuildFailed(f"{shlex.join(tool.run)} printed {detail['image prints']!r}, "
                              f"not the {CONTEXT_FILES} files the COPY brought")
        _measure(tool, context, "cached", runs, out)
        _measure(tool, context, "touched", runs, out)
    except BuildFailed as e:
        out["failures"][tool.name] = str(e)


def bench_build(rootless: list[str], env: dict, pm, tmp: str, runs: int, stats) -> dict:
    """The build figures of rootless and (when ``pm``) podman; a failed build is in ``failures``.
    ``stats``: bench.py's summary of a list of samples."""
    base = os.path.join(tmp, "build")
    context = os.path.join(base, "context")
    scratch = os.path.join(base, "tmp")  # TMPDIR of both tools: what they spill stays in the bench's dir
    os.makedirs(scratch)
    make_context(context)
    tools = [Tool("rootless", rootless, dict(env, TMPDIR=scratch), ["--no-cache"], [],
                  rootless + ["run", "--rm", "--network", "none", TAG])]
    if pm:
        tools.append(Tool("podman", pm.argv, dict(pm.env, TMPDIR=scratch), ["--no-cache", "--layers"],
                          ["--layers"], pm.argv + ["run", "--rm", "--network", "none", TAG]))
    out: dict = {"instructions": instruction_count(), "context files": CONTEXT_FILES, "runs": runs,
                 "warmup": WARMUP, "samples": {}, "detail": {}, "failures": {}}
    try:
        for tool in tools:
            _tool_figures(tool, context, runs, out)
    finally:
        for tool in tools:  # the images; the stores themselves go with bench.py's clean-up
            subprocess.run(tool.argv + ["rmi", "-f", TAG], env=tool.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
    order = [f"{t} {f}" for f in FIGURES for t in ("rootless", "podman")]
    out["samples"] = {k: out["samples"][k] for k in order if out["samples"].get(k)}
    out["results"] = {k: stats(v) for k, v in out["samples"].items()}
    out["targets"] = targets(out["results"])
    out["failed"] = "rootless" in out["failures"]
    return out


def targets(results: dict) -> dict:
    out = {}
    for figure in FIGURES:
        rl, pm = results.get(f"rootless {figure}"), results.get(f"podman {figure}")
        if rl and pm:
            out[f"{figure}: rootless / podman"] = {"value": rl["median"] / pm["median"]}
    cached = results.get("rootless cached")
    if cached:
        out["cached (ms)"] = {"value": cached["median"], "target": CACHED_TARGET_MS,
                              "pass": cached["median"] < CACHED_TARGET_MS}
    ratio = out.get("cached: rootless / podman")
    if ratio:
        ratio.update(target=CACHED_RATIO_TARGET, **{"pass": ratio["value"] <= CACHED_RATIO_TARGET})
    return out


def report(build: dict, podman_note: str) -> None:
    print(f"\nbuild: a {build['instructions']}-instruction Dockerfile (COPY of {build['context files']} files, "
          f"2 RUN), --network none; ms, {build['warmup']} warm-up")
    print(f"  {'figure':18} {'median':>8} {'p10':>8} {'p90':>8} {'min':>8} {'max':>8} {'runs':>5}")
    for name, s in build["results"].items():
        print(f"  {name:18} {s['median']:8.1f} {s['p10']:8.1f} {s['p90']:8.1f} "
              f"{s['min']:8.1f} {s['max']:8.1f} {s['runs']:5d}")
    for tool, d in build["detail"].items():
        hits = ", ".join(f"{f} {d[f + ' cache hits']}" for f in ("cold", "warm", "cached", "touched")
                         if f + " cache hits" in d)
        if hits:
            print(f"  {tool} 'Using cache' lines per build: {hits}")
    if podman_note:
        print(f"  podman: not measured ({podman_note})")
    for tool, why in build["failures"].items():
        print(f"  {tool} FAILED: " + why.replace("\n", "\n    "))
    t = build["targets"]
    for figure in FIGURES:
        r = t.get(f"{figure}: rootless / podman")
        if not r:
            print(f"  {figure + ': rootless / podman':27}    n/a")
        elif "target" in r:
            print(f"  {figure + ': rootless / podman':27} {r['value']:6.2f}   target <= {r['target']:.2f}  "
                  f"{'PASS' if r['pass'] else 'MISS'}")
        else:
            print(f"  {figure + ': rootless / podman':27} {r['value']:6.2f}")
    c = t.get("cached (ms)")
    if c:
        print(f"  {'cached rebuild':27} {c['value']:6.1f}   target <  {c['target']:.0f} ms  "
              f"{'PASS' if c['pass'] else 'MISS'}")
    else:
        print(f"  {'cached rebuild':27}    n/a   target <  {CACHED_TARGET_MS:.0f} ms  MISS")
