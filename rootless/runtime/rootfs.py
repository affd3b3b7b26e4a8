"""Paths inside a container root: the resolver that follows symlinks within the root
(:func:`rootless.base.inroot.resolve`, shared with the build context) and ``cp``'s variant.

``resolve(root, "/etc/hosts")`` never leaves ``root``: an absolute symlink is
taken relative to the root and ``..`` stops at the root, as the kernel would
see it after ``pivot_root``. Never join container paths with ``os.path.join``
alone: an absolute container path would silently become a host path.
"""

from __future__ import annotations

import os

from rootless.base.inroot import resolve


def resolve_parent(root: str, path: str) -> str:
    """As :func:`resolve`, but a symlink in the last component stays itself (``cp`` copies a
    link as a link, as Docker does without ``-L``); a trailing ``/`` follows it, as in Docker."""
    head, _, last = path.rpartition("/")
    if last in ("", ".", ".."):
        return resolve(root, path)
    return os.path.join(resolve(root, head or "/"), last)
