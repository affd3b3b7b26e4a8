"""Reading a container's log: its entries across the rotated files (:func:`read`, or in
blocks, :func:`read_blocks`, what the outputs take), with Docker's ``--tail`` (the last N, found
by scanning the newest file backwards) and ``--since``/``--until`` selection. A malformed line
and a torn last line (a write in progress) are skipped, never an error; the bytes become entries
in :mod:`~rootless.runtime.logparse` (the writer's own runs in bulk).
"""

from __future__ import annotations

import os
import time

from rootless.runtime.logparse import LogBlock, LogEntry, blocks, parser
from rootless.runtime.logrotate import files

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO

_BLOCK = 64 * 1024  # read size when scanning a file backwards for --tail
_READ_BLOCK = 8 * 1024 * 1024  # read size when reading a whole file


def _wanted(e: LogEntry | LogBlock, since_ns: int | None, until_ns: int | None) -> bool:
    return (since_ns is None or e.time_ns >= since_ns) and (until_ns is None or e.time_ns <= until_ns)


def _lines_backwards(fd: int, size: int) -> Iterator[tuple[bytes, int]]:
    """The complete lines of the file's first ``size`` bytes, last first, as (line, end offset)
    where the end offset of the first one yielded is the end of the last complete line."""
    pos = size
    carry = b""
    found_end = False
    end = 0
    while pos > 0:
        start = max(0, pos - _BLOCK)
        data = os.pread(fd, pos - start, start) + carry
        if len(data) < pos - start + len(carry):  # the file shrank under us (a torn append cut off)
            raise _Shrank
        pos = start
        parts = data.split(b"\n")
        if not found_end:
            if len(parts) == 1:  # still inside a torn last line
                carry = data
                continue
            found_end = True
            end = start + len(data) - len(parts[-1])
            parts.pop()  # the torn tail after the last newline
        if start > 0:
            carry = parts[0]
            complete = parts[1:]
        else:
            carry = b""
            complete = parts
        for line in reversed(complete):
            yield line, end
            end -= len(line) + 1


class _Shrank(Exception):
    """The file got shorter while it was scanned: a writer on a full disk cut off a torn append."""


_RESCANS = 100  # a writer cutting off appends without pause: at worst the last look stands


def _tail(fd: int, tail: int, fmt: str) -> tuple[list[LogBlock], int]:
    """The last ``tail`` valid entries in order, in blocks, and where the complete lines end; a
    scan that sees the file shrink starts again from its new size."""
    for _attempt in range(_RESCANS):
        try:
            return _tail_of(fd, os.fstat(fd).st_size, tail, fmt)
        except _Shrank:
            continue
    return [], 0


def _tail_of(fd: int, size: int, tail: int, fmt: str) -> tuple[list[LogBlock], int]:
    """Reads backwards, a block (then twice as much) at a time, and parses the complete lines of
    each in bulk until they hold ``tail`` entries; the surplus of the oldest is dropped."""
    if tail <= 0:
        return [], _complete_end(fd, size)
    found: list[LogBlock] = []
    count, end, pos, carry, step = 0, None, size, b"", _BLOCK
    while pos > 0 and count < tail:
        start = max(0, pos - step)
        data = os.pread(fd, pos - start, start)
        if len(data) < pos - start:  # the file shrank under us (a torn append cut off)
            raise _Shrank
        data, pos, step = data + carry, start, min(2 * step, _READ_BLOCK)
        if end is None:  # the end of the last complete line; a torn one after it is left out
            cut = data.rfind(b"\n") + 1
            if not cut:
                carry = data
                continue
            end, data = start + cut, data[:cut]
        cut = data.find(b"\n") + 1 if start > 0 else 0  # the first line may go on before the block
        if start > 0 and cut == len(data):  # one line, perhaps cut: with the next block
            carry = data
            continue
        got = blocks(data[cut:], fmt)
        carry = data[:cut]
        found[:0] = got
        count += sum(map(_entry_count, got))
    return _drop_first(found, count - tail), end or 0


def _entry_count(block: LogBlock) -> int:
    return block.data.count(b"\n") + (not block.data.endswith(b"\n"))


def _drop_first(found: list[LogBlock], surplus: int) -> list[LogBlock]:
    """The blocks without their first ``surplus`` entries."""
    while surplus > 0:
        first = found[0]
        n = _entry_count(first)
        if n <= surplus:
            found.pop(0)
            surplus -= n
            continue
        found[0] = first._replace(data=first.data.split(b"\n", surplus)[-1])
        break
    return found


def _complete_end(fd: int, size: int) -> int:
    for _line, end in _lines_backwards(fd, size):
        return end
    return 0


def _read_forward(fd: int, fmt: str) -> tuple[list[LogBlock], int]:
    """Every complete line's entry of the file, in blocks, and the offset after the last complete
    line. Each read starts at a line (an incomplete one is read again with the next): no copy."""
    out: list[LogBlock] = []
    pos, size = 0, _READ_BLOCK
    while True:
        chunk = os.pread(fd, size, pos)
        cut = chunk.rfind(b"\n") + 1
        if cut:
            out += blocks(chunk, fmt, cut)
            pos += cut
            size = _READ_BLOCK
        elif len(chunk) < size:  # the end: nothing, or a torn last line
            return out, pos
        else:  # a line longer than a read
            size *= 2


def _open_all(path: str) -> list[IO[bytes]]:
    """The log's files that exist, opened oldest first, from one consistent look: a rotation
    renames them all one by one, so the listing is taken again and every name must still be the
    file opened under it; if not, they are opened again."""
    opened: list[tuple[str, IO[bytes]]] = []
    for attempt in range(1000):
        if attempt >= 50:  # a rotation renames every file, one by one: let a long chain finish
            time.sleep(0.001)
        names = files(path)
        opened = [(n, f) for n, f in ((n, _open(n)) for n in names) if f is not None]
        if not opened and names == [path]:
            return []  # no log (yet)
        if len(opened) == len(names) and files(path) == names and all(
                _inode(n) == os.fstat(f.fileno()).st_ino for n, f in opened):
            return [f for _n, f in opened]
        for _n, f in opened:
            f.close()
    return [f for f in map(_open, files(path)) if f is not None]  # a writer rotating without pause for a second


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _read_files(opened: list[IO[bytes]], tail: int | None, fmt: str) -> tuple[list[LogBlock], int]:
    """The entries of the opened files in order, in blocks (``tail``: the last that many, from
    the newest file back), and where the complete lines of the newest end."""
    if not opened:
        return [], 0
    if tail is None:
        out: list[LogBlock] = []
        end = 0
        for f in opened:
            found, end = _read_forward(f.fileno(), fmt)  # end: of the newest, in the end
            out += found
        return out, end
    found, end = _tail(opened[-1].fileno(), tail, fmt)
    count = sum(map(_entry_count, found))
    for f in reversed(opened[:-1]):
        if count >= tail:
            break
        older, _ = _tail(f.fileno(), tail - count, fmt)
        found = older + found
        count += sum(map(_entry_count, older))
    return found, end


def read_blocks(path: str, tail: int | None = None, since_ns: int | None = None,
                until_ns: int | None = None, fmt: str = "json-file") -> list[LogBlock]:
    """:func:`read`'s entries in blocks (:class:`~rootless.runtime.logparse.LogBlock`)."""
    if tail is not None and tail < 0:
        raise ValueError("tail must be None or >= 0")
    parser(fmt)
    opened = _open_all(path)
    try:
        found, _end = _read_files(opened, tail, fmt)
    finally:
        for f in opened:
            f.close()
    if since_ns is None and until_ns is None:
        return found
    return [b for b in found if _wanted(b, since_ns, until_ns)]


def read(path: str, tail: int | None = None, since_ns: int | None = None,
         until_ns: int | None = None, fmt: str = "json-file") -> list[LogEntry]:
    """The log's entries, rotated files first, skipping malformed lines and a torn last line.

    ``tail`` keeps that many entries from the end (0: none, None: all); as in
    Docker, ``since_ns``/``until_ns`` (inclusive) then filter those. A missing
    file is an empty log.
    """
    return [e for b in read_blocks(path, tail, since_ns, until_ns, fmt) for e in b.entries()]


def _open(path: str) -> IO[bytes] | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
