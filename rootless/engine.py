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
from rootless.errors import RootlessError
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

    def slirp_features(self):
        """slirp4netns's path, version and options (probed once per binary, cached in the runroot)."""
        from netstack import slirp
        from rootless import proc
        from rootless.errors import HostError
        exe = proc.which("slirp4netns")
        if not exe:
            raise HostError("slirp4netns not found: the default network needs it",
                            "install it (apt-get install slirp4netns), or use --network none")
        return slirp.probe(exe, os.path.join(self.paths.runroot, "slirp4netns.json"))

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


def image_inspect(ctx: Context, name: str) -> dict:
    """Docker-compatible ``image inspect`` JSON."""
    from layers import reference
    rec = ctx.store.resolve(name)
    config = ctx.store.config(rec)
    tags = []
    for t in rec.get("repo_tags") or []:
        ref = reference.parse(t)
        tags.append(f"{ref.familiar_repository}:{ref.tag}")
    return {
        "Id": rec["id"], "RepoTags": tags, "RepoDigests": rec.get("repo_digests", []),
        "Created": config.get("created", ""), "Author": config.get("author", ""),
        "Config": config.get("config") or {}, "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""), "Size": rec.get("size", 0),
        "RootFS": {"Type": "layers", "Layers": [lr["diff_id"] for lr in rec["layers"]]},
        "History": config.get("history", []),
    }


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


# ---- containers: see rootless/containers.py ------------------------------------------
def layer_refs(image: dict):
    from layers.store import LayerRef
    return [LayerRef(lr["diff_id"], lr["blob"], lr["media_type"], lr.get("size", 0)) for lr in image["layers"]]


def familiar_name(image: dict) -> str:
    """How Docker shows an image: its first tag (``busybox:latest``), else its short id."""
    from layers import reference
    tags = image.get("repo_tags") or []
    if not tags:
        return image["id"][7:19]
    ref = reference.parse(tags[0])
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
