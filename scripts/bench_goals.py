"""Issue 25's scoreboard: one row per figure of its table, with the goal and PASS/MISS.

``goals(figures)`` reads the figures ``scripts/bench.py`` gathered (the same dict it writes with
``--json``) and returns the rows; ``report(rows)`` prints them. Nothing is measured here. A row
whose group did not run, or whose reference tool is missing, says ``n/a: why`` instead of a
verdict; a figure that is only reported (no goal) says ``info``. Each row::

    {"figure": ..., "value": "text", "reference": "text", "goal": "text",
     "status": "PASS" | "MISS" | "info" | "n/a: reason", "ratio": float | None}
"""

from __future__ import annotations

RUN_RATIO_GOAL = 0.3          # run --rm against podman's, with and without the network
NET_COST_GOAL_MS = 5.0        # the default network over --network none, paired runs
BUILD_RATIO_GOAL = 0.8        # cold builds of real Dockerfiles against podman build
DISK_RATIO_GOAL = 1.1         # debian + curl on disk against podman's store
KEEPER_RSS_GOAL_MB = 8.0
KEEPER_PSS_GOAL_MB = 3.0
SCALE_MEMORY_GOAL = 0.5       # memory of N idle containers against podman's
LOGS_GOAL_MBS = 20.0          # `logs` of a `yes` flood
VOLUME_WRITE_GOAL = 0.95      # a volume's 1 GB write against the host's
CONN_RATIO_GOAL = 0.8         # published-port connections/s against host loopback
CLIENT_ADDRESSES = ("127.0.0.1", "::1", "::ffff:127.0.0.1")  # what the bench's client connects from


def _row(figure: str, value: str, reference: str, goal: str, status: str, ratio: float | None = None) -> dict:
    return {"figure": figure, "value": value, "reference": reference, "goal": goal, "status": status,
            "ratio": ratio}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _not_run(group: str) -> str:
    return f"n/a: the {group} group did not run"


def _no_podman(figures: dict) -> str:
    why = figures.get("podman_unavailable")
    return f"n/a: no podman ({why})" if why else "n/a: no podman figure"


def _get(d, *keys):
    """d[k1][k2]... or None when any is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _failed(failures: dict, tool: str, otherwise: str) -> str:
    """``n/a: TOOL failed: first line`` when ``tool`` failed, else ``otherwise``."""
    why = failures.get(tool)
    return f"n/a: {tool} failed: {why.strip().splitlines()[0]}" if why else otherwise


def _ran(figures: dict, group: str) -> bool:
    return group in (figures.get("groups") or [])


def run_rows(figures: dict) -> list[dict]:
    goal = f"<= {RUN_RATIO_GOAL:g}x podman"
    rows = []
    for figure, mine, theirs in (("run --rm, default network (slirp4netns)", "rootless run net", "podman run net"),
                                 ("run --rm --network none", "rootless run", "podman run")):
        rl, pm = _get(figures, "results", mine, "median"), _get(figures, "results", theirs, "median")
        if not _ran(figures, "run") or rl is None:
            rows.append(_row(figure, "-", "-", goal, _not_run("run")))
        elif pm is None:
            rows.append(_row(figure, f"{rl:.1f} ms", "-", goal, _no_podman(figures)))
        else:
            ratio = rl / pm
            rows.append(_row(figure, f"{rl:.1f} ms = {ratio:.2f}x", f"podman {pm:.1f} ms", goal,
                             _verdict(ratio <= RUN_RATIO_GOAL), ratio))
        if mine == "rootless run net":
            cost = _get(figures, "network cost")
            name = "the network's cost over --network none (paired)"
            ngoal = f"<= {NET_COST_GOAL_MS:g} ms"
            if not _ran(figures, "run") or not cost:
                rows.append(_row(name, "-", "-", ngoal, _not_run("run")))
            else:
                rows.append(_row(name, f"{cost['median']:.1f} ms",
                                 f"{cost['none']:.1f} vs {cost['default']:.1f} ms, {cost['pairs']} pairs", ngoal,
                                 _verdict(cost["median"] <= NET_COST_GOAL_MS)))
    return rows


def build_rows(figures: dict) -> list[dict]:
    real = _get(figures, "build", "real")
    cold_goal = f"<= {BUILD_RATIO_GOAL:g}x podman build"
    names = ("cold build of real Dockerfiles (apt-get, gcc)",
             "multi-stage rebuild, a stage's output byte-identical: later steps reused",
             "disk used by debian + curl (real / apparent)")
    goals = (cold_goal, "reused (yes)", f"<= {DISK_RATIO_GOAL:g}x podman")
    if not _ran(figures, "build") or real is None:
        return [_row(n, "-", "-", g, _not_run("build")) for n, g in zip(names, goals, strict=True)]
    if real.get("unavailable"):
        return [_row(n, "-", "-", g, f"n/a: {real['unavailable']}") for n, g in zip(names, goals, strict=True)]
    rows = []
    failed = real.get("failures") or {}
    cold = real.get("cold") or {}
    rl, pm = cold.get("rootless"), cold.get("podman")
    if rl is None:
        rows.append(_row(names[0], "-", "-", goals[0], _failed(failed, "rootless", "n/a: no rootless figure")))
    elif pm is None:
        rows.append(_row(names[0], f"{rl / 1000:.1f} s", "-", goals[0],
                         _failed(failed, "podman", _no_podman(figures))))
    else:
        ratio = rl / pm
        rows.append(_row(names[0], f"{rl / 1000:.1f} s = {ratio:.2f}x", f"podman build {pm / 1000:.1f} s",
                         goals[0], _verdict(ratio <= BUILD_RATIO_GOAL), ratio))
    reused = real.get("reused") or {}
    ref = "podman: " + ("yes" if reused["podman"] else "no") if reused.get("podman") is not None else "-"
    if reused.get("rootless") is None:
        rows.append(_row(names[1], "-", ref, goals[1], _failed(failed, "rootless", "n/a: no rootless figure")))
    else:
        rows.append(_row(names[1], "yes" if reused["rootless"] else "no", ref, goals[1],
                         _verdict(bool(reused["rootless"]))))
    disk = real.get("disk") or {}
    rd, pd = disk.get("rootless"), disk.get("podman")
    if not rd:
        rows.append(_row(names[2], "-", "-", goals[2], _failed(failed, "rootless", "n/a: no rootless figure")))
    elif not pd:
        rows.append(_row(names[2], f"{rd['real'] / 1e6:.0f} / {rd['apparent'] / 1e6:.0f} MB", "-", goals[2],
                         _failed(failed, "podman", _no_podman(figures))))
    else:
        r_real, r_app = rd["real"] / pd["real"], rd["apparent"] / pd["apparent"]
        rows.append(_row(names[2], f"{rd['real'] / 1e6:.0f} / {rd['apparent'] / 1e6:.0f} MB = "
                                   f"{r_real:.2f}x / {r_app:.2f}x",
                         f"podman {pd['real'] / 1e6:.0f} / {pd['apparent'] / 1e6:.0f} MB", goals[2],
                         _verdict(max(r_real, r_app) <= DISK_RATIO_GOAL), r_real))
    return rows


def keeper_rows(figures: dict) -> list[dict]:
    keeper = _get(figures, "lifecycle", "detail", "keeper (MB medians)")
    conmon = _get(figures, "lifecycle", "detail", "conmon (MB medians)") or {}
    rows = []
    for field, label, goal in (("VmRSS", "RSS", KEEPER_RSS_GOAL_MB), ("Pss", "PSS", KEEPER_PSS_GOAL_MB)):
        name, g = f"idle keeper {label}", f"<= {goal:g} MB"
        ref = f"conmon {conmon[field]:.1f} MB" if conmon.get(field) is not None else "-"
        if not _ran(figures, "lifecycle") or keeper is None:
            rows.append(_row(name, "-", "-", g, _not_run("lifecycle")))
        elif keeper.get(field) is None:
            rows.append(_row(name, "-", ref, g, "n/a: /proc/PID/smaps_rollup not readable"))
        else:
            value = f"{keeper[field]:.1f} MB" if keeper[field] >= 0.1 else f"{keeper[field] * 1000:.0f} kB"
            rows.append(_row(name, value, ref, g, _verdict(keeper[field] <= goal)))
    return rows


def scale_rows(figures: dict) -> list[dict]:
    scale = figures.get("scale")
    goal = f"memory <= {SCALE_MEMORY_GOAL:g}x podman"
    n = scale.get("containers") if scale else None
    name = f"{n or 100} idle run -d containers: total memory (PSS) and time to start them"
    if not _ran(figures, "scale") or not scale:
        return [_row(name, "-", "-", goal, _not_run("scale"))]
    rl, pm = scale.get("rootless"), scale.get("podman")
    if not rl:
        return [_row(name, "-", "-", goal, f"n/a: {scale.get('failure') or 'no rootless figure'}")]
    value = f"{rl['pss'] / 1e6:.0f} MB, {rl['start s']:.1f} s"
    warm = rl.get("forkers") or {}
    if warm.get("processes"):
        value += f" (+ {warm['pss'] / 1e6:.0f} MB warm forker, until it leaves)"
    if not pm:
        return [_row(name, value, "-", goal, _no_podman(figures))]
    ratio = rl["pss"] / pm["pss"]
    return [_row(name, f"{value} = {ratio:.2f}x", f"podman {pm['pss'] / 1e6:.0f} MB, {pm['start s']:.1f} s",
                 goal, _verdict(ratio <= SCALE_MEMORY_GOAL), ratio)]


def logs_rows(figures: dict) -> list[dict]:
    name, goal = "logs of a `yes` flood (2-byte lines)", f">= {LOGS_GOAL_MBS:g} MB/s"
    flood = _get(figures, "logs", "results", "yes flood")
    if not _ran(figures, "logs") or not flood or "rootless json-file" not in flood:
        return [_row(name, "-", "-", goal, _not_run("logs"))]
    mbs = flood["rootless json-file"]["logs MB/s"]
    pm = flood.get("podman k8s-file")
    ref = f"podman {pm['logs MB/s']:.2f} MB/s" if pm else "-"
    return [_row(name, f"{mbs:.2f} MB/s", ref, goal, _verdict(mbs >= LOGS_GOAL_MBS))]


def volume_rows(figures: dict) -> list[dict]:
    name, goal = "volume 1 GB write", f">= {VOLUME_WRITE_GOAL:g}x the host"
    ratio = _get(figures, "volumes", "speed vs host", "volume", "write 1 GB")
    if not _ran(figures, "volumes") or ratio is None:
        return [_row(name, "-", "-", goal, _not_run("volumes"))]
    host = _get(figures, "volumes", "seconds", "host", "write 1 GB")
    ref = f"host {host:.2f} s" if host is not None else "-"
    paired = _get(figures, "volumes", "volume write")
    if paired and paired.get("host s"):  # the host writing into the volume's own directory, in pairs
        times = sorted(paired["host s"])
        ref = f"host {times[len(times) // 2]:.2f} s in the volume's directory, {paired['pairs']} alternating pairs"
    return [_row(name, f"{ratio:.2f}x the host", ref, goal, _verdict(ratio >= VOLUME_WRITE_GOAL), ratio)]


def net_rows(figures: dict) -> list[dict]:
    name, goal = "published-port connections/s", f">= {CONN_RATIO_GOAL:g}x loopback"
    aname, agoal = "client address seen through a published port", "the client's (127.0.0.1)"
    results = _get(figures, "net", "results")
    if not _ran(figures, "net") or not results:
        return [_row(name, "-", "-", goal, _not_run("net")), _row(aname, "-", "-", agoal, _not_run("net"))]
    relay, loop = results.get("rootless (built-in relay)"), results.get("host loopback")
    pm, least = results.get("podman (rootlessport)"), results.get("least a relay costs (C)")
    ref = f"loopback {loop['conn/s']:.0f}/s" + (f", podman {pm['conn/s']:.0f}/s" if pm else "")
    if least:  # the ceiling of any relay (bench_net.MINIMAL_RELAY)
        ref += f", the least a relay costs {least['conn/s']:.0f}/s = {least['conn/s'] / loop['conn/s']:.2f}x"
    ratio = relay["conn/s"] / loop["conn/s"]
    rows = [_row(name, f"{relay['conn/s']:.0f}/s = {ratio:.2f}x", ref, goal, _verdict(ratio >= CONN_RATIO_GOAL),
                 ratio)]
    seen = _get(figures, "net", "client address") or {}
    mine = seen.get("rootless (built-in relay)")
    pref = f"podman sees {seen['podman (rootlessport)']}" if seen.get("podman (rootlessport)") else "-"
    if not mine:
        rows.append(_row(aname, "-", pref, agoal, "n/a: not measured"))
    else:
        ok = mine in CLIENT_ADDRESSES
        rows.append(_row(aname, f"{'yes' if ok else 'no'}: the server sees {mine}", pref, agoal, _verdict(ok)))
    return rows


def goals(figures: dict) -> list[dict]:
    """Every row of issue 25's table, in its order."""
    return (run_rows(figures) + build_rows(figures) + keeper_rows(figures) + scale_rows(figures)
            + logs_rows(figures) + volume_rows(figures) + net_rows(figures))


def report(rows: list[dict]) -> None:
    print("\ngoals (issue 25)")
    width = max(len(r["figure"]) for r in rows)
    for r in rows:
        if r["value"] == "-" and r["reference"] == "-":  # nothing measured: the goal on the same line
            print(f"  {r['figure']:{width}}  {r['status']} (goal: {r['goal']})")
            continue
        print(f"  {r['figure']:{width}}  {r['status']}")
        print(f"  {'':{width}}    {r['value']}; reference: {r['reference']}; goal: {r['goal']}")
    counted = [r["status"] for r in rows]
    print(f"  {counted.count('PASS')} PASS, {counted.count('MISS')} MISS, "
          f"{sum(s.startswith('n/a') for s in counted)} n/a")
