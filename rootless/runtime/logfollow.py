"""Following a container's log (``logs -f``): what is there (``--tail``, ``--since``), then new
entries as the writer appends them, polling, across rotations, until the container stops or
``--until`` has passed."""

from __future__ import annotations

import os
import time

from rootless.runtime.logparse import blocks, parser
from rootless.runtime.logread import _inode, _open_all, _read_files, _read_forward, _wanted

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO

    from rootless.runtime.logparse import LogBlock, LogEntry

_CHUNK = 1024 * 1024  # read size when following


def _rotated(path: str, fd: int) -> bool:
    """Whether ``path`` is no longer the file open on ``fd`` (the writer rotated the log)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    own = os.fstat(fd)
    return (st.st_ino, st.st_dev) != (own.st_ino, own.st_dev)


def _after_rotation(path: str, f: IO[bytes], pos: int, pending: bytes,
                    fmt: str) -> tuple[list[LogBlock], IO[bytes] | None]:
    """When the file a follower reads (``f``, read up to ``pos``) was rotated away: the entries it
    has not read (the rest of ``f``, which the writer may have added to before renaming it, then
    every rotated file newer than it: several rotations may come between two looks) and the
    current file, opened, to read next (None if there is none yet). From one consistent listing."""
    rest = pending + os.pread(f.fileno(), max(0, os.fstat(f.fileno()).st_size - pos), pos)
    out = blocks(rest[:rest.rfind(b"\n") + 1], fmt)
    opened = _open_all(path)
    if not opened or _inode(path) != os.fstat(opened[-1].fileno()).st_ino:
        for g in opened:
            g.close()
        return out, None
    own = os.fstat(f.fileno()).st_ino
    *older, current = opened
    inodes = [os.fstat(g.fileno()).st_ino for g in older]
    # own dropped: what came between it and the current file cannot be placed for sure (inodes of
    # dropped files are reused): go on with the current file, losing them as the writer did
    start = inodes.index(own) + 1 if own in inodes else len(older)
    for i, g in enumerate(older):
        with g:
            if i >= start:
                out += _read_forward(g.fileno(), fmt)[0]
    return out, current


def _wait_for_files(path: str, is_running: Callable[[], bool], poll: float) -> list[IO[bytes]]:
    """The log's files, opened, once there are any; none if the container stopped first."""
    opened = _open_all(path)
    while not opened:  # not created yet (or between a rotation's rename and the new file)
        alive = is_running()
        opened = _open_all(path)
        if not opened:
            if not alive:
                return []
            time.sleep(poll)
    return opened


def _read_present(opened: list[IO[bytes]], tail: int | None, fmt: str) -> tuple[list[LogBlock], int]:
    """What the opened files hold (``tail``: the last that many) and where the complete lines of
    the newest end; the older files are closed, the newest stays open to be followed."""
    try:
        return _read_files(opened, tail, fmt)
    except BaseException:
        opened[-1].close()
        raise
    finally:
        for older in opened[:-1]:
            older.close()


def follow(path: str, is_running: Callable[[], bool], since_ns: int | None = None,
           tail: int | None = None, poll: float = 0.05,
           until_ns: int | None = None, fmt: str = "json-file") -> Iterator[LogEntry]:
    """:func:`follow_batches`, an entry at a time."""
    for batch in follow_batches(path, is_running, since_ns, tail, poll, until_ns, fmt):
        yield from batch


def follow_batches(path: str, is_running: Callable[[], bool], since_ns: int | None = None,
                   tail: int | None = None, poll: float = 0.05,
                   until_ns: int | None = None, fmt: str = "json-file") -> Iterator[list[LogEntry]]:
    """:func:`follow_blocks`' batches as entries, a line each."""
    for batch in follow_blocks(path, is_running, since_ns, tail, poll, until_ns, fmt):
        yield [e for b in batch for e in b.entries()]


def follow_blocks(path: str, is_running: Callable[[], bool], since_ns: int | None = None,
                  tail: int | None = None, poll: float = 0.05,
                  until_ns: int | None = None, fmt: str = "json-file") -> Iterator[list[LogBlock]]:
    """Yield the log's entries in blocks (respecting ``tail``/``since_ns``), then new ones as they are
    appended (a list of what one read found, never empty), until ``is_running()`` is False and
    no complete line is left to read; a rotation is followed into the new file.

    ``is_running`` is checked before the last read, so what was written just
    before the stop is still yielded. With ``until_ns`` the entries after it are
    left out and following ends once that time has passed.
    """
    if tail is not None and tail < 0:
        raise ValueError("tail must be None or >= 0")
    parser(fmt)
    opened = _wait_for_files(path, is_running, poll)
    if not opened:
        return
    entries, pos = _read_present(opened, tail, fmt)
    f = opened[-1]
    try:
        first = [e for e in entries if _wanted(e, since_ns, until_ns)]
        if first:
            yield first
        pending = b""
        while True:
            alive = is_running() and (until_ns is None or time.time_ns() <= until_ns)
            got = False
            fd = f.fileno()
            while True:
                chunk = os.pread(fd, _CHUNK, pos)
                if not chunk:
                    break
                got = True
                pos += len(chunk)
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                batch = [b for b in blocks(data[:cut], fmt) if _wanted(b, since_ns, until_ns)]
                if batch:
                    yield batch
            if _rotated(path, fd):  # go on with what came after this file, then the new one
                missed, new = _after_rotation(path, f, pos, pending, fmt)
                if new is not None:
                    f.close()
                    f, pos, pending = new, 0, b""
                    batch = [e for e in missed if _wanted(e, since_ns, until_ns)]
                    if batch:
                        yield batch
                    continue
            if not alive:
                return
            if not got:
                if os.fstat(fd).st_size < pos:  # truncated: start over
                    pos, pending = 0, b""
                    continue
                time.sleep(poll)
    finally:
        f.close()
