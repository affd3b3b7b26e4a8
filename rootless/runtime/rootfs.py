"""Paths inside a container root: one resolver that follows symlinks within the root.

``resolve(root, "/etc/hosts")`` never leaves ``root``: an absolute symlink is
taken relative to the root and ``..`` stops at the root, as the kernel would
see it after ``pivot_root``. Never join container paths with ``os.path.join``
alone: an absolute container path would silently become a host path.
"""

from __future__ import annotations

import os

from rootless.base.errors import RootlessError

_MAX_LINKS = 40


def resolve(root: str, path: str) -> str:
    """The host path of container path ``path`` under ``root`` (which need not exist yet)."""
    todo = [p for p in path.split("/") if p and p != "."]
    todo.reverse()
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            target = os.readlink(candidate)
        except (FileNotFoundError, NotADirectoryError, OSError):
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise RootlessError(f"too many levels of symbolic links in {path!r}")
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p and p != "."]
        todo.extend(reversed(parts))
    return os.path.join(root, *done)


def resolve_parent(root: str, path: str) -> str:
    """As :func:`resolve`, but a symlink in the last component stays itself (``cp`` copies a
    link as a link, as Docker does without ``-L``); a trailing ``/`` follows it, as in Docker."""
    head, _, last = path.rpartition("/")
    if last in ("", ".", ".."):
        return resolve(root, path)
    return os.path.join(resolve(root, head or "/"), last)
