"""Use cases: what each command does, on a Context built once by the CLI.

The CLI parses flags and renders results; everything with a policy or a side
effect is here or below.
"""

from __future__ import annotations

import os
import sys
from collections import namedtuple
from functools import cached_property

from rootless import config as configmod
from rootless.errors import RootlessError, UsageError
from rootless.paths import Paths, default_root, default_runroot


class Context:
    """Paths, settings and probed features for one command (no module-level state)."""

    def __init__(self, root: str | None = None, debug: bool = False):
        self.root = root
        self.debug = debug
        self.warned: set[str] = set()

    @cached_property
    def config(self) -> configmod.Config:
        return configmod.load()

    @cached_property
    def paths(self) -> Paths:
        root = default_root(self.root or self.config.root)
        p = Paths(root, default_runroot(root))
        p.ensure()
        return p

    @cached_property
    def mapping(self):
        from rootless import idmap
        return idmap.plan(self.config.idmap)

    def warn(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            print(f"rootless: warning: {message}", file=sys.stderr)

    def userns_call(self, fn, *args):
        from rootless import userns
        if self.mapping.warning:
            self.warn(self.mapping.warning)
        return userns.call(self.mapping, fn, *args)

    @cached_property
    def store(self):
        from layers.store import ImageStore
        return ImageStore(self.paths, self.userns_call, self.mapping.key)

    def overlay_method(self) -> str:
        from layers import overlay
        return overlay.choose(self.config.overlay, self.paths, self.userns_call)


# ---- images ------------------------------------------------------------------------
def load(ctx: Context, path: str) -> list[str]:
    from layers import archive, reference
    lines = []
    for img in archive.load(ctx.store, path):
        if img.tags:
            for t in img.tags:
                ref = reference.parse(t)
                lines.append(f"Loaded image: {ref.familiar_repository}:{ref.tag}")
        else:
            lines.append(f"Loaded image ID: {img.id}")
    return lines


def import_rootfs(ctx: Context, path: str, name: str | None) -> str:
    from layers import archive
    return archive.import_rootfs(ctx.store, path, name).id


ImageRow = namedtuple("ImageRow", "repository tag id created size")


def images(ctx: Context) -> list[ImageRow]:
    from layers import reference
    rows = []
    for rec in ctx.store.images():
        tags = rec.get("repo_tags") or []
        if not tags:
            rows.append(ImageRow("<none>", "<none>", rec["id"], rec.get("created", ""), rec.get("size", 0)))
        for t in tags:
            ref = reference.parse(t)
            rows.append(ImageRow(ref.familiar_repository, ref.tag or "<none>", rec["id"], rec.get("created", ""),
                                 rec.get("size", 0)))
    return rows


def rmi(ctx: Context, names: list[str], force: bool) -> list[str]:
    from rootless import state
    out = []
    errors = []

    def in_use(image_id: str) -> list[str]:
        return [r["id"] for r in state.all_records(ctx.paths) if r.get("spec", {}).get("image_id") == image_id]

    def layers_in_use() -> set[str]:
        return {d for r in state.all_records(ctx.paths) for d in r.get("spec", {}).get("layers", [])}

    for name in names:
        try:
            out += ctx.store.remove(name, force, in_use, layers_in_use)
        except RootlessError as e:
            errors.append(e)
    if errors:
        for line in out:
            print(line)
        raise errors[0] if len(errors) == 1 else RootlessError("; ".join(str(e) for e in errors))
    return out


# ---- containers ----------------------------------------------------------------------
def run(ctx: Context, opts) -> int:
    """``rootless run`` in the foreground; the container's exit code."""
    from rootless import timing
    timing.mark("engine")
    from layers import reference
    from layers.overlay import RootfsPlan
    from netstack import etcfiles
    from rootless import child, launcher, mountplan, names, spec, state
    from rootless.errors import Conflict

    image = ctx.store.resolve(opts.image)
    image_config = ctx.store.config(image)
    ctx.store.unpack_layers(_layer_refs(image))
    env_texts = {}
    for path in opts.env_files:
        try:
            with open(path) as f:
                env_texts[path] = f.read()
        except OSError as e:
            raise UsageError(f"open {path}: {e.strerror.lower()}") from None
    tags = image.get("repo_tags") or []
    image_name = _familiar(reference, tags[0]) if tags else image["id"][7:19]
    method = ctx.overlay_method()
    if ctx.mapping.warning:
        ctx.warn(ctx.mapping.warning)

    for _attempt in range(5):
        cid = names.new_id()
        taken = {r.get("name") for r in state.all_records(ctx.paths)} if not opts.name else set()
        name = opts.name or names.generate(taken)
        cspec = spec.build(opts, cid, name, image, image_config, image_name, dict(os.environ), env_texts)
        try:
            state.create(ctx.paths, cspec, method, generated_name=not opts.name)
            break
        except Conflict:
            if opts.name:
                raise
    else:  # pragma: no cover
        raise RootlessError("could not generate a unique container name")

    run_dir = ctx.paths.run_dir(cid)
    os.makedirs(run_dir, 0o700, exist_ok=True)
    etc_files = etcfiles.write(run_dir, cspec.hostname, cspec.network)
    rootfs = RootfsPlan(
        method=method,
        lowers=tuple(ctx.paths.layer(d) for d in reversed(cspec.layers)),
        upper=ctx.paths.upper(cid), work=ctx.paths.work(cid), merged=ctx.paths.merged(cid),
        copy_dir=ctx.paths.copy_rootfs(cid),
    )
    plan = child.LaunchPlan(
        spec=cspec, rootfs=rootfs,
        mounts=tuple(mountplan.plan(etc_files, own_netns=cspec.network != "host",
                                    pts_gid=5 if ctx.mapping.mode == "subid" else None)),
        run_dir=run_dir,
        remove_dirs=(ctx.paths.container(cid),) if cspec.remove else (),
        winsize=launcher.terminal_size() if cspec.tty else None,
        single_uid=ctx.mapping.mode == "single",
    )

    def started(pid: int, start: str) -> None:
        if not cspec.remove:
            state.update_state(ctx.paths, cid, status="running", pid=pid, pid_start=start,
                               started_at=state.now_iso())

    try:
        timing.mark("launch")
        code = launcher.run(plan, ctx.mapping, started)
    except RootlessError as e:
        _finish(ctx, cid, cspec.remove, e.exit_code, str(e))
        raise
    timing.mark("reaped")
    _finish(ctx, cid, cspec.remove, code, "")
    timing.mark("done")
    timing.dump()
    return code


def _finish(ctx: Context, cid: str, remove: bool, code: int, error: str) -> None:
    from rootless import state
    if remove:
        # The keeper removed the container's files; make sure no empty record remains.
        cdir = ctx.paths.container(cid)
        if os.path.isdir(cdir):
            from layers.store import remove_trees
            ctx.userns_call(remove_trees, [cdir])
        return
    state.update_state(ctx.paths, cid, status="exited", pid=0, exit_code=code, error=error,
                       finished_at=state.now_iso())


def _layer_refs(image: dict):
    from layers.store import LayerRef
    return [LayerRef(lr["diff_id"], lr["blob"], lr["media_type"], lr.get("size", 0)) for lr in image["layers"]]


def _familiar(reference, tag: str) -> str:
    ref = reference.parse(tag)
    return f"{ref.familiar_repository}:{ref.tag}"


# ---- system --------------------------------------------------------------------------
def unshare(ctx: Context, argv: list[str]) -> int:
    from rootless import userns
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
    from rootless import preflight
    # A diagnosis probes afresh (and refreshes the cache) rather than trusting an old result.
    return preflight.run_checks(ctx.paths, ctx.config,
                                lambda: overlay.probe(ctx.paths, ctx.userns_call, refresh=True))
