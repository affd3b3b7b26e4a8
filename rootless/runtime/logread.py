"""Reading a container's log: its entries across the rotated files (:func:`read`), with
Docker's ``--tail`` (the last N, found by scanning the newest file backwards) and
``--since``/``--until`` selection. A malformed line and a torn last line (a write in
progress) are skipped, never an error; a json-file block in the writer's own shape is matched
in one regex pass, anything else decoded line by line.
"""

from __future__ import annotations

import collections
import json
import os
import re

from rootless.runtime.logrotate import files
from rootless.runtime.logtime import parse_time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO

_BLOCK = 64 * 1024  # read size when scanning a file backwards for --tail
_READ_BLOCK = 8 * 1024 * 1024  # read size when reading a whole file


class LogEntry(collections.namedtuple("LogEntry", "stream text time_ns")):
    """One entry of a log: ``stream`` is "stdout" or "stderr", ``text`` keeps its newline."""

    __slots__ = ()

    @property
    def partial(self) -> bool:
        """True for an entry that does not end a line (a 16 KiB split or the end of the output)."""
        return not self.text.endswith("\n")


_decode = json.JSONDecoder().decode


def _json_text(raw: bytes) -> str:
    """The text of an entry's ``log`` field, given the body of its JSON string."""
    if raw[-2:] == b"\\n" and raw.count(b"\\") == 1:  # a whole line, nothing else escaped
        return raw[:-2].decode() + "\n"
    if b"\\" in raw:
        return _decode('"' + raw.decode() + '"')
    return raw.decode()


def _parse(line: bytes) -> LogEntry | None:
    """The entry of one json-file line, or None for a malformed line. The writer's own shape is
    matched as a block of one (:func:`_json_entries`); anything else is decoded as JSON."""
    found = _json_entries(line if line.endswith(b"\n") else line + b"\n")
    if found:
        return found[0]
    try:
        obj = _decode(line.decode())
        text, stream, stamp = obj["log"], obj["stream"], obj["time"]
        if not (isinstance(text, str) and isinstance(stream, str) and isinstance(stamp, str)):
            return None
        return LogEntry(stream, text, parse_time(stamp))
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def _parse_k8s(line: bytes) -> LogEntry | None:
    """The entry of one k8s-file line (``TIME STREAM F|P TEXT``), or None for a malformed line."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    try:
        t = parse_time(parts[0].decode())
    except ValueError:
        return None
    text = parts[3].decode("utf-8", "replace") if len(parts) > 3 else ""
    return LogEntry(parts[1].decode(), text + "\n" if parts[2] == b"F" else text, t)


_PARSERS = {"json-file": _parse, "k8s-file": _parse_k8s}


def _parser(fmt: str):
    try:
        return _PARSERS[fmt]
    except KeyError:
        raise ValueError(f"no log to read for the {fmt!r} log driver") from None


_JSON_BLOCK = None  # the writer's entry shape, a line of a block (compiled on first use)
_STREAM = {b"stdout": "stdout", b"stderr": "stderr"}


def _entries(data: bytes, parse) -> list[LogEntry]:
    """The entries of ``data`` (complete lines), malformed lines left out. A json-file block in
    the writer's own shape (every line of it) is matched in one pass."""
    if parse is _parse:
        fast = _json_entries(data)
        if fast is not None:
            return fast
    return [e for e in map(parse, data.split(b"\n")[:-1]) if e is not None]


def _json_entries(data: bytes) -> list[LogEntry] | None:
    global _JSON_BLOCK
    if _JSON_BLOCK is None:
        _JSON_BLOCK = re.compile(rb'^\{"log":"([^"\\\n]*(?:\\.[^"\\\n]*)*)","stream":"(stdout|stderr)",'
                                 rb'"time":"([^"\\\n]*)"\}$', re.M)
    found = _JSON_BLOCK.findall(data)
    if len(found) != data.count(b"\n"):  # a line of another shape: each on its own
        return None
    out: list[LogEntry] = []
    append = out.append
    last, t = None, 0
    try:
        # The texts in one go when the only escapes are the newlines ending whole lines (a JSON
        # string holds no raw control character, so NUL separates them safely).
        raws = b"\0".join([f[0] for f in found]) + b"\0"
        if raws.count(b"\\") == raws.count(b"\\n\0"):
            texts = raws.replace(b"\\n\0", b"\n\0").decode().split("\0")[:-1]
        else:
            texts = [_json_text(f[0]) for f in found]
        for (_raw, stream, stamp), text in zip(found, texts, strict=True):
            if stamp != last:  # entries written together share their time
                last, t = stamp, parse_time(stamp.decode())
            append(LogEntry(_STREAM[stream], text, t))
    except ValueError:  # an escape or a time that does not decode: each line on its own
        return None
    return out


def _wanted(e: LogEntry, since_ns: int | None, until_ns: int | None) -> bool:
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


def _tail(fd: int, tail: int, parse=_parse) -> tuple[list[LogEntry], int]:
    """The last ``tail`` valid entries in order, and where the complete lines end; a scan that sees
    the file shrink starts again from its new size."""
    for _attempt in range(_RESCANS):
        try:
            return _tail_of(fd, os.fstat(fd).st_size, tail, parse)
        except _Shrank:
            continue
    return [], 0


def _tail_of(fd: int, size: int, tail: int, parse) -> tuple[list[LogEntry], int]:
    found: list[LogEntry] = []
    end = None
    if tail > 0:
        for line, line_end in _lines_backwards(fd, size):
            if end is None:
                end = line_end
            e = parse(line)
            if e is not None:
                found.append(e)
                if len(found) == tail:
                    break
    if end is None:  # no complete line yet, or tail=0: the end of the last complete line
        end = _complete_end(fd, size)
    found.reverse()
    return found, end


def _complete_end(fd: int, size: int) -> int:
    for _line, end in _lines_backwards(fd, size):
        return end
    return 0


def _read_forward(fd: int, parse) -> tuple[list[LogEntry], int]:
    """Every complete line's entry of the file, and the offset after the last complete line."""
    out: list[LogEntry] = []
    pos, carry = 0, b""
    while True:
        chunk = os.pread(fd, _READ_BLOCK, pos + len(carry))
        if not chunk:
            return out, pos
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        out += _entries(data[:cut], parse)
        pos += cut
        carry = data[cut:]


def _open_all(path: str) -> list[IO[bytes]]:
    """The log's files that exist, opened oldest first, from one consistent look: a rotation
    renames them all one by one, so the listing is taken again and every name must still be the
    file opened under it; if not, they are opened again."""
    opened: list[tuple[str, IO[bytes]]] = []
    for _attempt in range(50):
        names = files(path)
        opened = [(n, f) for n, f in ((n, _open(n)) for n in names) if f is not None]
        if not opened and names == [path]:
            return []  # no log (yet)
        if len(opened) == len(names) and files(path) == names and all(
                _inode(n) == os.fstat(f.fileno()).st_ino for n, f in opened):
            return [f for _n, f in opened]
        for _n, f in opened:
            f.close()
    return [f for f in map(_open, files(path)) if f is not None]  # a writer rotating without pause


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _read_files(opened: list[IO[bytes]], tail: int | None, parse) -> tuple[list[LogEntry], int]:
    """The entries of the opened files in order (``tail``: the last that many, from the newest
    file back), and where the complete lines of the newest end."""
    if not opened:
        return [], 0
    if tail is None:
        out: list[LogEntry] = []
        end = 0
        for f in opened:
            entries, end = _read_forward(f.fileno(), parse)  # end: of the newest, in the end
            out += entries
        return out, end
    found: list[LogEntry] = []
    entries, end = _tail(opened[-1].fileno(), tail, parse)
    found = entries
    for f in reversed(opened[:-1]):
        if len(found) >= tail:
            break
        older, _ = _tail(f.fileno(), tail - len(found), parse)
        found = older + found
    return found, end


def read(path: str, tail: int | None = None, since_ns: int | None = None,
         until_ns: int | None = None, fmt: str = "json-file") -> list[LogEntry]:
    """The log's entries, rotated files first, skipping malformed lines and a torn last line.

    ``tail`` keeps that many entries from the end (0: none, None: all); as in
    Docker, ``since_ns``/``until_ns`` (inclusive) then filter those. A missing
    file is an empty log.
    """
    if tail is not None and tail < 0:
        raise ValueError("tail must be None or >= 0")
    parse = _parser(fmt)
    opened = _open_all(path)
    try:
        entries, _end = _read_files(opened, tail, parse)
    finally:
        for f in opened:
            f.close()
    if since_ns is None and until_ns is None:
        return entries
    return [e for e in entries if _wanted(e, since_ns, until_ns)]


def _open(path: str) -> IO[bytes] | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
