"""System use cases: ``info`` (the host diagnosis), ``system df``, ``system check``, ``system reset``,
``unshare``."""

from __future__ import annotations

import os
from collections import namedtuple

from layers.leftovers import size_of
from rootless.base.errors import RootlessError
from rootless.engine.context import Context

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.runtime.state import ContainerRecord

DfRow = namedtuple("DfRow", "type total active size reclaimable")


def system_df(ctx: Context) -> list[DfRow]:
    from rootless.runtime import state
    images = ctx.store.images()
    recs = [r for r in state.all_records(ctx.paths) if not r.get("corrupt")]
    used = {r.get("spec", {}).get("image_id") for r in recs}
    size = ctx.store.stored_size(images)  # what is on disk: shared layers once, with the blobs kept
    unused = size - ctx.store.stored_size(i for i in images if i["id"] in used)
    running = [r for r in recs if r.get("state", {}).get("status") == "running"]
    from rootless.runtime import logs
    sizes = {r["id"]: size_of(ctx.paths.upper(r["id"])) + logs.size_on_disk(ctx.paths.container_log(r["id"]))
             for r in recs}  # a container's writable layer and its log
    stopped = sum(v for k, v in sizes.items() if k not in {r["id"] for r in running})
    rows = [DfRow("Images", len(images), len([i for i in images if i["id"] in used]), size, unused),
            DfRow("Containers", len(recs), len(running), sum(sizes.values()), stopped),
            _volumes_row(ctx, recs), _build_cache_row(ctx, images)]
    files, steps = leftovers(ctx)
    if files or steps:  # what killed commands left: all of it reclaimable (`system prune`)
        total = sum(lo.size for lo in files) + sum(sizes.get(r["id"], 0) for r in steps)
        rows.append(DfRow("Leftovers", len(files) + len(steps), 0, total, total))
    return rows


DfImage = namedtuple("DfImage", "repository tag id created size shared containers")
DfVolume = namedtuple("DfVolume", "name links size")


def df_verbose(ctx: Context) -> tuple[list, list, list]:
    """``system df -v``: each image (a row per tag, as ``images``: its layers' bytes, those it
    shares with another image, the containers made from it), each container with the bytes of
    its writable layer (``containerlist.sizes``), each volume with the containers that mount it."""
    from rootless.engine import images as image_ops
    from rootless.engine.containerlist import sizes
    from rootless.engine.volumes import mounted
    from rootless.runtime import state, volumes
    recs = [r for r in state.all_records(ctx.paths) if not r.get("corrupt")]
    by_id = {i["id"]: i for i in ctx.store.images()}
    users: dict[str, int] = {}  # a layer -> how many images have it
    for img in by_id.values():
        for d in {lr["diff_id"] for lr in img["layers"]}:
            users[d] = users.get(d, 0) + 1
    made = [r.get("spec", {}).get("image_id") for r in recs]
    images = []
    for row in image_ops.images(ctx):
        img = by_id.get(row.id)
        shared = sum(lr.get("size", 0) for lr in (img or {}).get("layers", ()) if users.get(lr["diff_id"], 0) > 1)
        images.append(DfImage(row.repository, row.tag, row.id, row.created, row.size, shared, made.count(row.id)))
    containers = [(r, sizes(ctx, r)[0]) for r in recs]
    vols = [DfVolume(v["name"], sum(1 for r in recs if v["name"] in mounted([r])),
                     size_of(ctx.paths.volume_data(v["name"]))) for v in volumes.all_volumes(ctx.paths)]
    return images, containers, vols


def _volumes_row(ctx: Context, recs: list[ContainerRecord]) -> DfRow:
    """Volumes: their data; reclaimable is what no container uses."""
    from rootless.engine.volumes import mounted
    from rootless.runtime import volumes
    used = mounted(recs)
    sizes = {v["name"]: size_of(ctx.paths.volume_data(v["name"])) for v in volumes.all_volumes(ctx.paths)}
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
    checks = preflight.run_checks(ctx.paths, ctx.config,
                                  lambda: overlay.probe(ctx.paths, ctx.userns_call, refresh=True))
    return checks + [preflight.host_pause()]  # how `pause` works here


def check(ctx: Context) -> list[str]:
    """``system check``: what is wrong in the store, a line each (empty: nothing). Images whose
    config or layers are missing, damaged container records, containers whose image is gone,
    runtime directories and half-made or half-removed directories left by a killed command."""
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
    image_ids |= {i["id"] for i in ctx.store.images(with_shared=True) if i.get("read_only")}  # additional stores'
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
    files, steps = leftovers(ctx)
    for lo in files:
        problems.append(f"{lo.path}: {lo.what}, left by a command that is gone ({lo.size} bytes): "
                        "`rootless system prune` removes it")
    for rec in steps:
        problems.append(f"container {rec['id'][:12]} ({rec['name']}): a step of a build that is gone: "
                        "`rootless builder prune` removes it")
    return problems


# ---- leftovers of killed commands -------------------------------------------------------------
BUILD_LABEL = "io.rootless.build"  # "step" on a RUN step's container (engine.build)
BUILD_OWNER = "io.rootless.build.owner"  # "PID:START" of the build that made it


def build_leftovers(ctx: Context) -> list[ContainerRecord]:
    """The RUN-step containers whose build is gone (killed): a live build removes its own."""
    from rootless.runtime import records, state
    out = []
    for rec in records.all_current(ctx):
        labels = (rec.get("spec") or {}).get("labels") or {}
        if rec.get("corrupt") or labels.get(BUILD_LABEL) != "step":
            continue
        pid, _, start = labels.get(BUILD_OWNER, "").partition(":")
        if pid.isdigit() and start and state.pid_start_time(int(pid)) == start:
            continue  # its build goes on
        out.append(rec)
    return out


_HALF_MADE = (("containers", "containers_lock", (".new-", ".del-")), ("volumes", "volumes_lock", (".new-",)))


def _referenced(ctx: Context) -> tuple[set[str], set[str]]:
    """The blobs and layers something names: images, the build cache, containers."""
    from layers import buildcache
    from rootless.engine.images import layers_in_use
    images = ctx.store.images()
    cached = buildcache.layers_of(buildcache.entries(ctx.paths.root))
    blobs = {i["id"] for i in images} | {lr["blob"] for i in images for lr in i["layers"]}
    blobs |= {lr["blob"] for lr in cached if lr.get("blob")}
    layers = {lr["diff_id"] for i in images for lr in i["layers"]} | {lr["diff_id"] for lr in cached}
    return blobs, layers | layers_in_use(ctx)


def leftovers(ctx: Context):
    """What killed commands left: (temporary files and directories, blobs and layers no image
    uses, build-step containers)."""
    from layers import leftovers as lo
    files = lo.find(ctx.paths)
    for attr, _lock, prefixes in _HALF_MADE:
        files += lo.half_made(getattr(ctx.paths, attr), prefixes)
    files += lo.unreferenced(ctx.paths, *_referenced(ctx))
    return files, build_leftovers(ctx)


def _sweep_unreferenced(ctx: Context) -> tuple[list[str], int]:
    from layers import leftovers as lo
    from rootless.base import locking
    with locking.locked(ctx.paths.store_lock):
        gone = lo.remove_unreferenced(ctx.paths, *_referenced(ctx), ctx.userns_call)
    return [g.path for g in gone], sum(g.size for g in gone)


def _sweep_half_made(ctx: Context) -> tuple[list[str], int]:
    """Containers and volumes made or removed aside by a killed command: each under its lock
    (held while a live one is made or removed aside)."""
    from layers import leftovers as lo
    from layers.store import remove_trees
    from rootless.base import locking
    lines, freed = [], 0
    for attr, lock, prefixes in _HALF_MADE:
        with locking.locked(getattr(ctx.paths, lock)):
            found = lo.half_made(getattr(ctx.paths, attr), prefixes)
            if found:
                ctx.userns_call(remove_trees, [f.path for f in found])
        lines += [f.path for f in found if not os.path.lexists(f.path)]
        freed += sum(f.size for f in found if not os.path.lexists(f.path))
    return lines, freed


def sweep(ctx: Context, builds_only: bool = False, build_steps: bool = True) -> tuple[list[str], int]:
    """Remove the leftovers of killed commands (``builds_only``: a build's, for ``builder
    prune``; ``build_steps``: the containers of killed builds too): (what was removed, a line
    each; the bytes freed). Nothing a live command still writes is touched (see
    :mod:`layers.leftovers`)."""
    from layers import leftovers as lo
    from rootless.engine import containers
    from rootless.runtime import logs
    files, steps = leftovers(ctx)
    if not build_steps:
        steps = []
    if builds_only:
        files = [f for f in files if os.path.basename(f.path).startswith(("build-", "api-build-"))]
    lines, freed = [], 0
    for rec in steps:
        size = size_of(ctx.paths.upper(rec["id"])) + logs.size_on_disk(ctx.paths.container_log(rec["id"]))
        try:
            containers.remove(ctx, rec, force=True)
        except RootlessError:
            continue
        lines.append(rec["id"])
        freed += size
    if not builds_only:  # those removed under their own locks, then the rest
        swept = {f.path for attr, _lock, prefixes in _HALF_MADE
                 for f in lo.half_made(getattr(ctx.paths, attr), prefixes)}
        swept |= {f.path for f in files if os.path.dirname(f.path) in (ctx.paths.layers, ctx.paths.blobs)
                  and len(os.path.basename(f.path).removesuffix(".tarsplit")) == 64}  # a blob, a layer or its recipe
        for part in (_sweep_half_made, _sweep_unreferenced):
            part_lines, part_bytes = part(ctx)
            lines += part_lines
            freed += part_bytes
        files = [f for f in files if f.path not in swept]
    gone = lo.remove(files, ctx.userns_call)
    still = {f.path for f in lo.find_at([os.path.dirname(f.path) for f in files])}
    lines += [f.path for f in files if f.path not in still and not os.path.lexists(f.path)]
    return lines, freed + gone


def container_prune(ctx: Context, filters=()) -> tuple[list[str], int]:
    """``container prune`` with the bytes it freed: each removed container's writable layer and
    log, measured before it goes (Docker's ``SpaceReclaimed``); ``filters``: ``until=``, ``label=``."""
    from rootless.engine import containers
    from rootless.runtime import logs, records
    sizes = {r["id"]: size_of(ctx.paths.upper(r["id"])) + logs.size_on_disk(ctx.paths.container_log(r["id"]))
             for r in records.all_current(ctx) if not records.is_running(r)}
    removed = containers.prune(ctx, filters)
    return removed, sum(sizes.get(c, 0) for c in removed)


def volume_prune(ctx: Context, all_: bool) -> tuple[list[str], int]:
    """``volume prune`` with the bytes it freed (each removed volume's data, measured before)."""
    from rootless.engine import volumes as volumes_uc
    from rootless.runtime import volumes as volstore
    sizes = {v["name"]: size_of(ctx.paths.volume_data(v["name"])) for v in volstore.all_volumes(ctx.paths)}
    gone = volumes_uc.prune(ctx, all_)
    return gone, sum(sizes.get(n, 0) for n in gone)


def prune_warning(all_: bool, volumes: bool) -> str:
    """What ``system prune`` asks before it removes anything (Docker's list)."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_ else "all dangling images")
    items.append("all build cache" if all_ else "unused build cache")
    items.append("what killed commands left in the store (temporary files, build steps)")
    return "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)


PruneReport = namedtuple("PruneReport", "sections freed")


def system_prune(ctx: Context, all_: bool, volumes: bool) -> PruneReport:
    """``system prune``: Docker's order (containers, networks, volumes, images, build cache),
    then the leftovers of killed commands; the lines of each part and the bytes freed."""
    from rootless.engine import build as build_ops
    from rootless.engine import containers, images, networks
    from rootless.engine import volumes as volumes_uc
    from rootless.runtime import logs, records
    freed = 0
    stopped = [r for r in records.all_current(ctx) if not records.is_running(r)]
    sizes = {r["id"]: size_of(ctx.paths.upper(r["id"])) + logs.size_on_disk(ctx.paths.container_log(r["id"]))
             for r in stopped}
    removed = containers.prune(ctx)
    freed += sum(sizes.get(c, 0) for c in removed)
    sections = [("Deleted Containers", removed), ("Deleted Networks", networks.prune(ctx))]
    if volumes:
        from rootless.runtime import volumes as volstore
        vsizes = {v["name"]: size_of(ctx.paths.volume_data(v["name"])) for v in volstore.all_volumes(ctx.paths)}
        gone = volumes_uc.prune(ctx, False)
        freed += sum(vsizes.get(n, 0) for n in gone)
        sections.append(("Deleted Volumes", gone))
    lines, reclaimed = images.image_prune(ctx, all_)
    freed += reclaimed
    sections.append(("Deleted Images", lines))
    entries, cache_bytes = build_ops.builder_prune(ctx)
    freed += cache_bytes
    sections.append(("Deleted build cache objects", [f"{entries} entries"] if entries else []))
    swept, swept_bytes = sweep(ctx)
    freed += swept_bytes
    sections.append(("Deleted leftovers of killed commands", swept))
    return PruneReport(sections, freed)
