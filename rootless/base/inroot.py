"""A path inside a root directory, its symlinks followed within that root: the one resolver
for a container's root (:mod:`rootless.runtime.rootfs`) and a build context
(:mod:`layers.buildctx`).

An absolute symlink is taken relative to the root and ``..`` stops at the root, as the
kernel sees it after ``pivot_root``; with ``confined=True`` either is :class:`Escape`
instead (a build context may not be left at all). The root need not exist yet.
"""

from __future__ import annotations

import os

from rootless.base.errors import RootlessError

MAX_LINKS = 40  # as Linux's MAXSYMLINKS


class Escape(RootlessError):
    """``confined`` and the path leaves the root: ``link`` is the symlink (its path below the root)
    whose absolute ``target`` does, or None when a ``..`` climbs above the root."""

    def __init__(self, path: str, link: str | None = None, target: str | None = None):
        super().__init__(f"{path!r} leads outside {'through ' + link if link else 'its root'}")
        self.link, self.target = link, target


class LinkLoop(RootlessError):
    """More than :data:`MAX_LINKS` symlinks on the way."""


def resolve(root: str, path: str, confined: bool = False) -> str:
    """The host path of ``path`` (absolute or relative: both start at ``root``) under ``root``."""
    todo = [p for p in path.split("/") if p and p != "."]
    todo.reverse()
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if done:
                done.pop()
            elif confined:
                raise Escape(path)
            continue
        candidate = os.path.join(root, *done, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink, or not there (yet)
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise LinkLoop(f"too many levels of symbolic links in {path!r}")
        if target.startswith("/"):
            if confined:
                raise Escape(path, "/".join([*done, part]), target)
            done = []
        todo.extend(p for p in reversed(target.split("/")) if p and p != ".")
    return os.path.join(root, *done)
