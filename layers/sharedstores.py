"""Read-only additional image stores (``storage.additional_stores``, Podman's
``additionalimagestores``): stores on a shared filesystem, filled once (``rootless pull --store``),
whose images every node lists and runs beside its own store's. Everything here only reads: no
lock is taken and no file made there (the store may be read-only); an index is replaced by a
rename, never written in place, so a read without a lock sees a whole one."""

from __future__ import annotations

import os

from rootless.base import atomic
from rootless.base.errors import Conflict, ImageNotFound
from rootless.base.paths import Paths

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable


def indices(shared: tuple[Paths, ...]) -> list[tuple[Paths, dict]]:
    """Each readable additional store with its images (id -> record)."""
    out = []
    for paths in shared:
        try:
            data = atomic.read_json(paths.images_file)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("images"), dict):
            out.append((paths, data["images"]))
    return out


def merged(recs: list[dict], shared: tuple[Paths, ...]) -> list[dict]:
    """``recs`` (the own store's) and the additional stores' records they lack, marked."""
    seen = {r["id"] for r in recs}
    out = list(recs)
    for paths, images in indices(shared):
        out += [marked(r, paths) for r in images.values() if r["id"] not in seen]
        seen.update(images)
    return out


def resolve(shared: tuple[Paths, ...], resolve_among: Callable[[dict], dict]) -> dict | None:
    """The first additional store's record that ``resolve_among(images)`` finds, marked; None."""
    for paths, images in indices(shared):
        try:
            return marked(resolve_among(images), paths)
        except ImageNotFound:
            continue
    return None


def marked(rec: dict, paths: Paths) -> dict:
    """An additional store's image record, marked as such (a copy: its index is never written)."""
    return {**rec, "store": paths.root, "read_only": True}


def find(shared: tuple[Paths, ...], path_of: Callable[[Paths], str], own: str, alt: str = "") -> str:
    """``own`` when it (or it + ``alt``) exists, else the first additional store's
    ``path_of(paths)`` that does (a blob may be kept as its recipe, ``.tarsplit``, beside it)."""
    here = (lambda p: os.path.lexists(p) or os.path.lexists(p + alt)) if alt else os.path.lexists
    if not shared or here(own):
        return own
    for paths in shared:
        if here(path_of(paths)):
            return path_of(paths)
    return own


def refuse(rec: dict, name: str) -> None:
    """An image of an additional store cannot be removed or tagged from here: one line."""
    store = rec.get("store")
    raise Conflict(f"image {name} is in the read-only image store {store}: it cannot be changed from here",
                   f"change it there (`rootless --root {store} ...`, by its owner), or pull the image into your "
                   "own store")
