"""System use cases: ``info`` (the host diagnosis), ``system df``, ``system reset``, ``unshare``."""

from __future__ import annotations

import os
from collections import namedtuple

from rootless.engine.context import Context

DfRow = namedtuple("DfRow", "type total active size reclaimable")


def system_df(ctx: Context) -> list[DfRow]:
    from rootless.runtime import state
    images = ctx.store.images()
    recs = [r for r in state.all_records(ctx.paths) if not r.get("corrupt")]
    used = {r.get("spec", {}).get("image_id") for r in recs}
    size = sum(i.get("size", 0) for i in images)
    unused = sum(i.get("size", 0) for i in images if i["id"] not in used)
    running = [r for r in recs if r.get("state", {}).get("status") == "running"]

    def tree_size(path: str) -> int:
        total = 0
        for root, _d, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
        return total
    sizes = {r["id"]: tree_size(ctx.paths.upper(r["id"])) for r in recs}
    stopped = sum(v for k, v in sizes.items() if k not in {r["id"] for r in running})
    return [DfRow("Images", len(images), len([i for i in images if i["id"] in used]), size, unused),
            DfRow("Containers", len(recs), len(running), sum(sizes.values()), stopped),
            DfRow("Local Volumes", 0, 0, 0, 0), DfRow("Build Cache", 0, 0, 0, 0)]


def unshare(ctx: Context, argv: list[str]) -> int:
    from rootless.base import userns
    if ctx.mapping.warning:
        ctx.warn(ctx.mapping.warning)
    return userns.exec_in_userns(ctx.mapping, argv or [os.environ.get("SHELL", "/bin/sh")])


def system_reset(ctx: Context) -> None:
    """Wipe the store (as root of the user namespace: it holds files of subordinate uids)."""
    import shutil

    from layers.store import remove_trees
    paths = ctx.paths
    ctx.userns_call(remove_trees, [paths.root])
    shutil.rmtree(paths.runroot, ignore_errors=True)


def info(ctx: Context):
    from layers import overlay
    from rootless.engine import preflight
    # A diagnosis probes afresh (and refreshes the cache) rather than trusting an old result.
    return preflight.run_checks(ctx.paths, ctx.config,
                                lambda: overlay.probe(ctx.paths, ctx.userns_call, refresh=True))
