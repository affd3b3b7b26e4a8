"""How deletions are represented: OCI ``.wh.`` entries in layer tars, overlay's form on disk.

On disk (unpacked layers and upper directories) a deleted path is a character
device 0/0 and an opaque directory carries ``user.overlay.opaque=y``: what the
kernel's overlayfs (mounted with ``userxattr``) and fuse-overlayfs both read.
"""

from __future__ import annotations

import os
import stat

WH_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque", "user.fuseoverlayfs.opaque")
OPAQUE_XATTR = OPAQUE_XATTRS[0]


def is_whiteout_stat(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def make_whiteout(name: str, dir_fd: int) -> None:
    os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)


def mark_opaque(dir_fd: int) -> None:
    os.setxattr(f"/proc/self/fd/{dir_fd}", OPAQUE_XATTR, b"y")
