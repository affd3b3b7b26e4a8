"""System use cases: ``info`` (the host diagnosis), ``system df``, ``system check``, ``system reset``,
``unshare``."""

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
    from rootless.runtime import logs
    sizes = {r["id"]: _tree_size(ctx.paths.upper(r["id"])) + logs.size_on_disk(ctx.paths.container_log(r["id"]))
             for r in recs}  # a container's writable layer and its log
    stopped = sum(v for k, v in sizes.items() if k not in {r["id"] for r in running})
    return [DfRow("Images", len(images), len([i for i in images if i["id"] in used]), size, unused),
            DfRow("Containers", len(recs), len(running), sum(sizes.values()), stopped),
            _volumes_row(ctx, recs), _build_cache_row(ctx, images)]


def _tree_size(path: str) -> int:
    total = 0
    for root, _d, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _volumes_row(ctx: Context, recs: list[dict]) -> DfRow:
    """Volumes: their data; reclaimable is what no container uses."""
    from rootless.engine.volumes import mounted
    from rootless.runtime import volumes
    used = mounted(recs)
    sizes = {v["name"]: _tree_size(ctx.paths.volume_data(v["name"])) for v in volumes.all_volumes(ctx.paths)}
    return DfRow("Local Volumes", len(sizes), len([n for n in sizes if n in used]), sum(sizes.values()),
                 sum(v for n, v in sizes.items() if n not in used))


def _build_cache_row(ctx: Context, images: list[dict]) -> DfRow:
    """The build cache: its entries; the size of the layers only it keeps (``builder prune``
    frees that), "active" being the entries whose layer an image uses."""
    from layers import buildcache
    entries = buildcache.entries(ctx.paths.root)
    layers = {lr["diff_id"]: lr.get("size", 0) for lr in buildcache.layers_of(entries)}
    in_images = {lr["diff_id"] for i in images for lr in i["layers"]}
    only_cache = sum(size for d, size in layers.items() if d not in in_images)
    return DfRow("Build Cache", len(entries), len([d for d in layers if d in in_images]), only_cache, only_cache)


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


def check(ctx: Context) -> list[str]:
    """``system check``: what is wrong in the store, a line each (empty: nothing). Images whose
    config or layers are missing, damaged container records, containers whose image is gone,
    runtime directories and half-made or half-removed directories left by a killed command."""
    from rootless.base.errors import RootlessError
    from rootless.runtime import records
    problems = []
    try:
        images = ctx.store.images()
    except RootlessError as e:
        images = []
        problems.append(str(e))
    image_ids = set()
    for img in images:
        image_ids.add(img["id"])
        if not ctx.store.has_blob(img["id"]):
            problems.append(f"image {img['id'][7:19]}: its config blob is missing")
        for lr in img.get("layers", []):
            if not ctx.store.layer_present(lr["diff_id"]):
                problems.append(f"image {img['id'][7:19]}: layer {lr['diff_id'][7:19]} is missing "
                                "(it is unpacked again on the next run)")
    running = set()
    for rec in records.all_current(ctx):
        cid = rec["id"]
        if rec.get("corrupt"):
            problems.append(f"container {cid[:12]}: its record is damaged: remove it with `rootless rm -f {cid[:12]}`")
            continue
        if records.is_running(rec):
            running.add(cid)
        image = rec["spec"].get("image_id")
        if image and image not in image_ids:
            problems.append(f"container {cid[:12]} ({rec['name']}): its image {image[7:19]} is gone")
    try:
        run_dirs = [d for d in os.listdir(ctx.paths.runroot) if len(d) == 64]
    except OSError:
        run_dirs = []
    for d in run_dirs:
        if d not in running and os.path.isdir(ctx.paths.run_dir(d)):
            problems.append(f"runtime directory {ctx.paths.run_dir(d)} of a container that is not running")
    try:
        leftovers = [d for d in os.listdir(ctx.paths.containers) if d.startswith((".new-", ".del-"))]
    except OSError:
        leftovers = []
    for d in leftovers:
        problems.append(f"{os.path.join(ctx.paths.containers, d)}: left by an interrupted create or rm")
    return problems
