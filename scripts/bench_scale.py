"""The ``scale`` group of ``scripts/bench.py``: N idle detached containers at once.

``run -d --name scaleI busybox sleep 300`` N times (default 100, ``--quick`` 20, ``--scale N``),
one after the other, with the default network (slirp4netns for both tools, as users run them);
then, after they idled ``SETTLE`` seconds:

- ``start s``: the wall time of the N ``run -d`` commands together;
- ``pss``, ``rss`` (bytes) and ``processes``: the sum over every process the tool leaves behind
  for them (rootless: keepers, relays, slirp4netns...; podman: conmon, slirp4netns, rootlessport,
  its pause process), the containers' own processes not counted. rootless' warm forker is the
  CLI's, not the containers' (it leaves 60 s after the last command; a keeper at rest has exec'd
  and shares no page with it): its memory is reported beside the total, not in it. A process is
  the tool's when its
  environment names the bench's private store (``ROOTLESS_ROOT``) or podman's private runtime
  dir, or it is a rootless keeper of one of them; the containers' processes have the image's
  environment, not ours. PSS is read from ``/proc/PID/smaps_rollup`` (RSS where it is not
  readable, counted in ``pss unreadable``).

Every container is removed at the end, also on a failure or Ctrl-C (bench.py's clean-up kills
what an interruption left). Goal (issue 25): rootless' memory at most half of podman's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

SETTLE = 3.0  # seconds the containers idle before their memory is read (keepers rest after ~2 s)
SLEEPER = ["sleep", "300"]


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _memory(pid: int) -> tuple[int, int | None]:
    """RSS and PSS in bytes (PSS None when not readable); (0, 0) for a process gone."""
    rss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return rss, int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, None


def tool_processes(marker: bytes, roots: set[int], excluded: set[int]) -> set[int]:
    """Pids whose environment holds ``marker``, plus ``roots`` and their descendants; a pid in
    ``excluded`` (a container's PID 1) and its descendants are left out, and so is this process."""
    parents = {}
    chosen = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        parents[pid] = _ppid(pid)
        if pid in roots or marker in _environ(pid):
            chosen.add(pid)

    def under(pid: int, group: set[int]) -> bool:
        seen = 0
        while pid > 1 and seen < 64:
            if pid in group:
                return True
            pid, seen = parents.get(pid, 0), seen + 1
        return False

    chosen |= {pid for pid in parents if under(pid, roots)}
    return {pid for pid in chosen if not under(pid, excluded)}


def forkers() -> set[int]:
    """This user's warm forkers (``rootless/runtime/forker.py``), the CLI's warm cache."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                mine = f.read().strip() == "rootless-forker" and os.stat(f"/proc/{entry}").st_uid == os.getuid()
        except OSError:
            continue
        if mine:
            out.add(int(entry))
    return out


def shared_network_holders(env: dict) -> set[int]:
    """The shared network's holders (``rootless/runtime/netholder.py``) of the runtime directory:
    counted with their slirp4netns, whatever environment they were forked with."""
    import glob
    out = set()
    for path in glob.glob(os.path.join(env.get("XDG_RUNTIME_DIR", "/nonexistent"), "rootless", "*", "sharednet",
                                       "holder.json")):
        try:
            with open(path) as f:
                out.add(int(json.load(f)["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def memory_of(pids: set[int]) -> dict:
    rss = pss = unreadable = 0
    for pid in pids:
        r, p = _memory(pid)
        rss += r
        if p is None:
            unreadable += 1
            p = r
        pss += p
    return {"pss": pss, "rss": rss, "processes": len(pids), "pss unreadable": unreadable}


def _rootless_pids(root: str) -> tuple[set[int], set[int]]:
    """Keepers and containers' PID 1 of the store's running containers."""
    keepers, ctrs = set(), set()
    base = os.path.join(root, "containers")
    for cid in os.listdir(base) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, cid, "container.json")) as f:
                st = json.load(f).get("state", {})
        except (OSError, ValueError):
            continue
        if st.get("keeper"):
            keepers.add(st["keeper"])
        if st.get("pid"):
            ctrs.add(st["pid"])
    return keepers, ctrs


def _start(argvs: list[list[str]], env: dict, run_checked) -> float:
    t0 = time.perf_counter()
    for argv in argvs:
        run_checked(argv, env)
    return time.perf_counter() - t0


def _quiet(argv: list[str], env: dict) -> None:
    subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600, check=False)


def bench_scale(rootless: list[str], env: dict, pm, n: int, run_checked) -> dict:
    """N idle containers of each tool, measured then removed; ``run_checked(argv, env)`` raises on failure."""
    out: dict = {"containers": n, "settle s": SETTLE}
    names = [f"scale{i}" for i in range(n)]
    try:
        start = _start([rootless + ["run", "-d", "--name", name, "busybox", *SLEEPER] for name in names],
                       env, run_checked)
        time.sleep(SETTLE)
        keepers, ctrs = _rootless_pids(env["ROOTLESS_ROOT"])
        warm = forkers()
        holders = shared_network_holders(env)
        pids = tool_processes(b"ROOTLESS_ROOT=" + env["ROOTLESS_ROOT"].encode(), keepers | holders, ctrs) - warm
        out["rootless"] = dict(memory_of(pids), **{"start s": start, "forkers": memory_of(warm)})
    finally:
        for i in range(0, n, 25):
            _quiet(rootless + ["rm", "-f", *names[i:i + 25]], env)
    if pm:
        try:
            start = _start([pm.argv + ["run", "-d", "--name", name, "--network", "slirp4netns", pm.image,
                                       *SLEEPER] for name in names], pm.env, run_checked)
            time.sleep(SETTLE)
            ctrs = set()
            for line in run_checked(pm.argv + ["inspect", "--format", "{{.State.Pid}}", *names],
                                   pm.env).stdout.decode().split():
                if line.isdigit():
                    ctrs.add(int(line))
            marker = b"XDG_RUNTIME_DIR=" + pm.env["XDG_RUNTIME_DIR"].encode()
            out["podman"] = dict(memory_of(tool_processes(marker, set(), ctrs)), **{"start s": start})
        finally:
            pm.remove_all_containers()
    return out


def report(scale: dict, podman_note: str) -> None:
    print(f"\nscale: {scale['containers']} idle `run -d` containers (default network), "
          f"memory of every process the tool leaves for them")
    for tool in ("rootless", "podman"):
        r = scale.get(tool)
        if not r:
            continue
        note = f" ({r['pss unreadable']} PSS unreadable: RSS counted)" if r["pss unreadable"] else ""
        print(f"  {tool:9} start {r['start s']:7.2f} s  PSS {r['pss'] / 1e6:8.1f} MB  RSS {r['rss'] / 1e6:8.1f} MB"
              f"  {r['processes']} processes{note}")
        warm = r.get("forkers")
        if warm and warm["processes"]:
            print(f"            and the warm forker (the CLI's, until 60 s after the last command): PSS "
                  f"{warm['pss'] / 1e6:.1f} MB, {warm['processes']} processes")
    if podman_note:
        print(f"  podman: not measured ({podman_note})")
