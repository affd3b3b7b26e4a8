"""Real Dockerfiles for the ``build`` group of ``scripts/bench.py`` (issue 25), beside ``podman build``.

Both start ``FROM debian:bookworm``, a minbase bookworm made by ``mmdebstrap`` from this machine's
Debian mirror (the test suite's cached one, ``~/.cache/rootless-tests/debian-bookworm-minbase.tar``,
made when missing) and imported into both tools; their ``RUN`` steps reach that mirror (the only
network the bench uses besides loopback). When the mirror does not answer, the figures are
``n/a: the Debian mirror does not answer``.

- ``curl``: buildpack-deps:curl's packages (``apt-get install --no-install-recommends
  ca-certificates curl gnupg netbase wget``), then a ``COPY`` of one small file;
- ``multistage``: gcc from apt in a build stage compiles ``hello.c``, ``COPY --from`` puts the
  binary into a fresh stage, a ``RUN`` runs it.

For each tool and Dockerfile: ``cold`` (``--no-cache``), ``cached`` (all steps cached) and
``touched`` (curl: the copied file rewritten; multistage: a comment of ``hello.c`` changed, so the
compiled binary is byte-identical) in ms. ``reused``: whether that multi-stage rebuild gave the
previous image id again, i.e. the ``COPY --from`` and every later step came from the cache.
``disk``: a fresh store of each tool holding only the base and the curl image (built once):
``du -s`` in bytes, real (``-B1``) and apparent (``--apparent-size``), hard links counted once.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.request

BASE = "debian:bookworm"
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rootless-tests")
TIMEOUT = 1800  # seconds for one build (apt on a loaded machine)
FIGURES = ("cold", "cached", "touched")

CURL = f"""\
FROM {BASE}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl gnupg netbase wget \\
    && rm -rf /var/lib/apt/lists/*
COPY motd /etc/motd
"""

MULTISTAGE = f"""\
FROM {BASE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY hello.c /src/hello.c
RUN mkdir -p /out && gcc -O2 -o /out/hello /src/hello.c

FROM {BASE}
COPY --from=build /out/hello /usr/local/bin/hello
RUN hello > /greeting
CMD ["hello"]
"""

HELLO = '/* {comment} */\n#include <stdio.h>\nint main(void) {{ puts("hello from rootless bench"); return 0; }}\n'


class Failed(Exception):
    pass


def mirror() -> str | None:
    """The first Debian mirror of this machine's apt sources."""
    for path in ["/etc/apt/sources.list", *sorted(
            os.path.join("/etc/apt/sources.list.d", n) for n in os.listdir("/etc/apt/sources.list.d")
            if os.path.isdir("/etc/apt/sources.list.d"))]:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(https?://\S+)", text, re.M)
        if m:
            return m.group(1).rstrip("/")
    return None


def mirror_answers(url: str | None) -> bool:
    if not url:
        return False
    try:
        with urllib.request.urlopen(f"{url}/dists/bookworm/Release", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def debian_tar(url: str) -> str:
    out = os.path.join(CACHE, "debian-bookworm-minbase.tar")
    if os.path.exists(out):
        return out
    if not shutil.which("mmdebstrap"):
        raise Failed("no debian minbase image (mmdebstrap is not installed)")
    os.makedirs(CACHE, exist_ok=True)
    tmp = os.path.join(CACHE, f".debian-bookworm-minbase-{os.getpid()}.tar")
    try:
        _run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=unshare", "--format=tar", "bookworm", tmp, url],
             None)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _run(argv: list[str], env: dict | None) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        cp = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            errors="replace", timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failed(f"{shlex.join(argv)}: {e}") from None
    if cp.returncode != 0:
        tail = "\n".join((cp.stderr + cp.stdout).strip().splitlines()[-8:])
        raise Failed(f"{shlex.join(argv)}: exit code {cp.returncode}\n{tail}")
    return (time.perf_counter() - t0) * 1000.0, cp.stdout


def _image_id(stdout: str) -> str:
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    return lines[-1].removeprefix("sha256:") if lines else ""


def make_contexts(base: str) -> dict[str, str]:
    ctx = {"curl": os.path.join(base, "curl"), "multistage": os.path.join(base, "multistage")}
    for name, text in (("curl", CURL), ("multistage", MULTISTAGE)):
        os.makedirs(ctx[name])
        with open(os.path.join(ctx[name], "Dockerfile"), "w") as f:
            f.write(text)
    touch(ctx, "curl", "first")
    touch(ctx, "multistage", "first")
    return ctx


def touch(ctx: dict[str, str], name: str, mark: str) -> None:
    if name == "curl":
        with open(os.path.join(ctx["curl"], "motd"), "w") as f:
            f.write(f"rootless bench {mark} {time.time_ns()}\n")
    else:
        with open(os.path.join(ctx["multistage"], "hello.c"), "w") as f:
            f.write(HELLO.format(comment=f"{mark} {time.time_ns()}"))


def _build(argv: list[str], env: dict, context: str, tag: str, no_cache: bool, podman: bool) -> tuple[float, str]:
    flags = (["--no-cache"] if no_cache else []) + (["--layers"] if podman else [])
    ms, out = _run(argv + ["build", *flags, "-t", tag, context], env)
    return ms, _image_id(out)


def tool_figures(name: str, argv: list[str], env: dict, ctx: dict[str, str], rounds: int, out: dict) -> None:
    podman = name == "podman"
    for df in ("curl", "multistage"):
        tag = f"bench-{df}"
        samples: dict[str, list[float]] = {f: [] for f in FIGURES}
        for _ in range(rounds):
            samples["cold"].append(_build(argv, env, ctx[df], tag, True, podman)[0])
        _, warm = _build(argv, env, ctx[df], tag, False, podman)
        for _ in range(rounds):
            ms, image = _build(argv, env, ctx[df], tag, False, podman)
            if image != warm:
                raise Failed(f"{name}: a cached rebuild of {df} gave {image[:12]}, not {warm[:12]}")
            samples["cached"].append(ms)
        reused = True
        for i in range(rounds):
            touch(ctx, df, f"{name} {i}")
            ms, image = _build(argv, env, ctx[df], tag, False, podman)
            samples["touched"].append(ms)
            if df == "multistage":
                reused = reused and image == warm
                warm = image
        if df == "multistage":
            out["reused"][name] = reused
        for f, v in samples.items():
            out["results"].setdefault(df, {})[f"{name} {f}"] = sorted(v)[len(v) // 2]
        out["samples"].setdefault(df, {})[name] = samples
        subprocess.run(argv + ["rmi", "-f", tag], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300, check=False)
    out["cold"][name] = sum(out["results"][df][f"{name} cold"] for df in ("curl", "multistage"))


def store_du(unshare: list[str], env: dict, path: str) -> dict:
    """``du -s`` of ``path`` inside the tool's user namespace (its files belong to subordinate ids)."""
    real = _run(unshare + ["du", "-s", "-B1", path], env)[1].split()[0]
    apparent = _run(unshare + ["du", "-s", "-B1", "--apparent-size", path], env)[1].split()[0]
    return {"real": int(real), "apparent": int(apparent)}


def bench_real(rootless: list[str], env: dict, pm, tmp: str, rounds: int, rootless_env, make_podman) -> dict:
    """The real Dockerfiles' figures. ``rootless_env(base)``: a private rootless environment;
    ``make_podman(base)``: a private podman (or None)."""
    out: dict = {"unavailable": None, "rounds": rounds, "results": {}, "samples": {}, "cold": {},
                 "reused": {}, "disk": {}, "failures": {}}
    url = mirror()
    if not mirror_answers(url):
        out["unavailable"] = "the Debian mirror does not answer"
        return out
    try:
        tar = debian_tar(url)
    except Failed as e:
        out["unavailable"] = str(e).splitlines()[0]
        return out
    base = os.path.join(tmp, "build-real")
    ctx = make_contexts(os.path.join(base, "ctx"))
    tools = [("rootless", rootless, env, ["import", tar, BASE])]
    if pm:
        tools.append(("podman", pm.argv, pm.env, ["import", tar, BASE]))
    for name, argv, tenv, imp in tools:
        try:
            _run(argv + imp, tenv)
            tool_figures(name, argv, tenv, ctx, rounds, out)
        except Failed as e:
            out["failures"][name] = str(e)
    # disk: fresh stores with the base and the curl image only
    disk_env = rootless_env(os.path.join(base, "rl-disk"))
    try:
        _run(rootless + ["import", tar, BASE], disk_env)
        _run(rootless + ["build", "-t", "bench-curl", ctx["curl"]], disk_env)
        out["disk"]["rootless"] = store_du(rootless + ["unshare"], disk_env, disk_env["ROOTLESS_ROOT"])
    except Failed as e:
        out["failures"].setdefault("rootless", str(e))
    finally:
        subprocess.run(rootless + ["system", "reset", "-f"], env=disk_env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
    if pm:
        pm_base = os.path.join(tmp, "pd")  # short: podman refuses a runroot of over 50 characters
        os.makedirs(pm_base)
        dpm = make_podman(pm_base)
        try:
            _run(dpm.argv + ["import", tar, BASE], dpm.env)
            _run(dpm.argv + ["build", "--layers", "-t", "bench-curl", ctx["curl"]], dpm.env)
            out["disk"]["podman"] = store_du(dpm.argv + ["unshare"], dpm.env, dpm.root)
        except Failed as e:
            out["failures"].setdefault("podman", str(e))
        finally:
            dpm.cleanup()
    return out


def report(real: dict) -> None:
    if real.get("unavailable"):
        print(f"  real Dockerfiles: n/a: {real['unavailable']}")
        return
    print(f"  real Dockerfiles (FROM {BASE}, apt from the Debian mirror), medians of {real['rounds']}, s:")
    for df, figs in real["results"].items():
        print(f"    {df:11}" + "".join(f"  {k} {v / 1000:.1f}" for k, v in figs.items()))
    for tool, yes in real["reused"].items():
        print(f"    {tool}: multi-stage rebuild with a byte-identical stage output reused later steps: "
              f"{'yes' if yes else 'no'}")
    for tool, d in real["disk"].items():
        print(f"    {tool}: store with debian + curl: {d['real'] / 1e6:.0f} MB real, "
              f"{d['apparent'] / 1e6:.0f} MB apparent")
    for tool, why in real["failures"].items():
        print(f"    {tool} FAILED: " + why.replace("\n", "\n      "))
