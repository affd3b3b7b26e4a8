"""A container's resources: ``stats`` (use, from its cgroup or /proc) and ``update`` (its limits)."""

from __future__ import annotations

import os
from collections import namedtuple

from rootless.base.errors import RootlessError
from rootless.runtime import state
from rootless.runtime.records import is_running

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord

# ---- resource limits: stats, update --------------------------------------------------------------
StatsRow = namedtuple(
    "StatsRow", "id name cpu_percent mem_usage mem_limit mem_percent net_rx net_tx block_read block_write pids")


def stats(ctx: Context, recs: list[ContainerRecord], interval: float = 0.5) -> list[StatsRow]:
    """One line per running container, from its cgroup: CPU % over ``interval`` seconds (100% is
    one CPU, as Docker counts), memory use and limit, network bytes (the container's interfaces
    but loopback), block I/O, processes. A container without a cgroup (the host delegates none)
    shows what its processes' /proc tells (memory, processes) and zeros elsewhere."""
    import time as time_

    from rootless.runtime import cgroups
    running = [r for r in recs if is_running(r)]
    first = {r["id"]: _sample(r) for r in running}
    t0 = time_.monotonic()
    if running:
        time_.sleep(interval)
    elapsed = time_.monotonic() - t0
    rows = []
    for r in running:
        a, b = first[r["id"]], _sample(r)
        if a is None or b is None:
            continue
        cpu = (b.cpu_usec - a.cpu_usec) / 1e6 / elapsed * 100 if elapsed > 0 else 0.0
        rx, tx = _net_bytes(r["state"]["pid"])
        limit = b.memory_limit or cgroups.host_memory()
        rows.append(StatsRow(id=r["id"], name=r["name"], cpu_percent=cpu, mem_usage=b.memory, mem_limit=limit,
                             mem_percent=100.0 * b.memory / limit if limit else 0.0, net_rx=rx, net_tx=tx,
                             block_read=b.io_read, block_write=b.io_write, pids=b.pids))
    return rows


def _sample(rec: ContainerRecord):
    from rootless.runtime import cgroups
    where = rec["state"].get("cgroup")
    if where and os.path.isdir(where):
        return cgroups.sample(where)
    pid = rec["state"].get("pid") or 0
    return _proc_sample(pid)


def _proc_sample(pid: int):
    """Without a cgroup: PID 1 and its descendants from /proc (memory = their RSS)."""
    from rootless.runtime import cgroups
    kids: dict[int, list[int]] = {}
    stat: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            stat[int(d)] = fields
            kids.setdefault(int(fields[1]), []).append(int(d))
    if pid not in stat:
        return None
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += kids.get(p, [])
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = sum(int(stat[p][11]) + int(stat[p][12]) for p in tree) * 1_000_000 // ticks
    rss = sum(int(stat[p][21]) for p in tree) * os.sysconf("SC_PAGE_SIZE")
    return cgroups.Sample(cpu, rss, 0, len(tree), 0, 0)


def _net_bytes(pid: int) -> tuple[int, int]:
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = rest.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def update(ctx: Context, rec: ContainerRecord, limits: dict) -> None:
    """``update``: new limits for a container: written into its cgroup when it runs, kept in its
    record for its next start either way."""
    from rootless.runtime import cgroups
    if rec.get("corrupt"):
        raise RootlessError(f"cannot update container {rec['id'][:12]}: {state.DAMAGED}")
    merged = cgroups.merge(rec["spec"].get("limits") or {}, limits)
    cgroups.parse_consistency(merged)
    if is_running(rec):
        where = rec["state"].get("cgroup")
        if not where:
            cgroups.check(cgroups.detect(), limits)
            raise RootlessError(f"container {rec['name']} runs without a cgroup of its own: restart it to apply limits",
                                "`rootless restart` it: the new limits are kept for its next start", exit_code=1)
        cfs = {"cpu_quota", "cpu_period"}
        # a new quota keeps the period it had, and the other way round: cpu.max holds both
        cgroups.update(where, {k: v for k, v in merged.items() if k in limits or (k in cfs and cfs & limits.keys())})
    else:
        cgroups.check(cgroups.detect(), merged)
    state.update_spec(ctx.paths, rec["id"], limits=merged)


def discard_unenforceable(limits: dict | None) -> tuple[dict, dict, list[str]]:
    """The API's rule where this host cannot enforce a limit (Docker's on a host without the
    capability): (the limits kept, those discarded, a warning for each discarded one). The
    command line refuses such a limit instead (``cgroups.check``): a user typing ``-m`` on a
    shared node is told, not left unprotected."""
    if not limits:
        return {}, {}, []
    from rootless.runtime import cgroups
    return cgroups.split_enforceable(cgroups.detect(), limits)


def update_api(ctx: Context, rec: ContainerRecord, limits: dict) -> list[str]:
    """The API's ``update``: the limits this host can enforce as ``update`` does, the others
    kept in the record only to be shown (``spec.asked``), each said in a warning."""
    kept, dropped, warnings = discard_unenforceable(limits)
    if kept:
        update(ctx, rec, kept)
    if dropped:
        from rootless.runtime import cgroups
        merged = cgroups.merge(rec["spec"].get("limits") or {}, limits)
        cgroups.parse_consistency(merged)
        asked = dict(rec["spec"].get("asked") or {})
        asked["discarded_limits"] = {**(asked.get("discarded_limits") or {}), **dropped}
        state.update_spec(ctx.paths, rec["id"], asked=asked)
    return warnings
