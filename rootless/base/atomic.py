"""Atomic file writes: write a temporary file, fsync it, rename it into place."""

from __future__ import annotations

import json
import os
import stat

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the blocking descriptor ``fd`` (a short write goes on)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_bytes(path: str, data: bytes, mode: int = 0o644, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a torn one.
    On any failure (a full disk: ENOSPC while writing or at fsync) the temporary file is removed
    and ``path`` is left as it was. ``sync=False`` skips the fsyncs: still atomic for every
    reader, but not durable across a power loss (for files that do not outlive the command)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".tmp-{os.path.basename(path)}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync:
        fsync_dir(directory)


def write_json(path: str, obj: Any, mode: int = 0o644, sync: bool = True) -> None:
    write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), mode, sync)


def read_json(path: str) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


READ_TEXT_LIMIT = 64 << 20


def read_text(path: str) -> str:
    """A small text file's content, or "" when it is missing, unreadable or not a regular file
    (an image's /etc/passwd may be a FIFO, whose open would wait for a writer for ever, or a
    link to /dev/zero); at most :data:`READ_TEXT_LIMIT` bytes of it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return ""
            return f.read(READ_TEXT_LIMIT).decode("utf-8", "replace")
        except OSError:
            return ""


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
