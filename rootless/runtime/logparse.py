"""The entries of a log's bytes: a line at a time (:func:`parser`: any valid line, for ``--tail``'s
backward scan and whatever the bulk path declines) and a chunk at a time (:func:`blocks`: the
writer's own lines, in runs that share their stream and time, turned into output in bulk).

A flood's log is millions of lines, most of them in long runs written together: in json-file
each line of a run ends with the same ``\\n","stream":"S","time":"T"}`` and the next starts
``{"log":"``, so one ``replace`` of that separator over the run leaves the texts themselves (and
one ``replace`` of ``\\nTIME STREAM F `` does it for k8s-file). A run is taken only when the
result proves it: as many newlines as separators replaced, nothing JSON would have escaped
(else the texts are decoded as one JSON array, and must come out as whole lines), valid UTF-8.
Anything else, a line at a time: the result is the same entries either way.
"""

from __future__ import annotations

import collections
import json
import operator
import re

from rootless.runtime.logtime import format_time, parse_time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable


class LogEntry(collections.namedtuple("LogEntry", "stream text time_ns")):
    """One entry of a log: ``stream`` is "stdout" or "stderr", ``text`` keeps its newline."""

    __slots__ = ()

    @property
    def partial(self) -> bool:
        """True for an entry that does not end a line (a 16 KiB split or the end of the output)."""
        return not self.text.endswith("\n")


class LogBlock(collections.namedtuple("LogBlock", "stream data time_ns")):
    """Entries of one stream that share their time, in order, as the UTF-8 bytes of their texts:
    each entry but the last ends with its newline (the last may be partial). What the readers
    hand to the outputs: a flood's block holds thousands of lines and no object per line."""

    __slots__ = ()

    def entries(self) -> list[LogEntry]:
        """The block's entries, a line each."""
        stream, t = self.stream, self.time_ns
        *whole, last = self.data.decode().split("\n")
        out = [LogEntry(stream, text + "\n", t) for text in whole]
        if last or not whole:  # a partial entry (an empty block: one empty entry)
            out.append(LogEntry(stream, last, t))
        return out

    def stamped(self, timestamps: bool = True, details: bytes | None = None) -> bytes:
        """The texts, each entry after its time and a space (``logs -t``) and after its details and
        a space (``logs --details``: its log attributes, ``k=v,...``, maybe none), in one pass."""
        stamp = ((format_time(self.time_ns) + " ").encode() if timestamps else b"") + (
            details + b" " if details is not None else b"")
        data = self.data
        return stamp + data[:-1].replace(b"\n", b"\n" + stamp) + data[-1:] if stamp else data


_decode = json.JSONDecoder().decode


def _parse_json(line: bytes) -> LogEntry | None:
    """The entry of one json-file line, or None for a malformed line."""
    try:
        obj = _decode(line.decode())
        text, stream, stamp = obj["log"], obj["stream"], obj["time"]
        if not (isinstance(text, str) and isinstance(stream, str) and isinstance(stamp, str)):
            return None
        return LogEntry(stream, text, parse_time(stamp))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
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


_PARSERS = {"json-file": _parse_json, "k8s-file": _parse_k8s}


def parser(fmt: str) -> Callable[[bytes], LogEntry | None]:
    """The line parser of a log format (ValueError for a driver that keeps no log to read)."""
    try:
        return _PARSERS[fmt]
    except KeyError:
        raise ValueError(f"no log to read for the {fmt!r} log driver") from None


# ---- a chunk at a time -------------------------------------------------------------------------
_MIN_WINDOW = 4096  # bytes a run is first looked for in: a log of short runs pays little per line
_MAX_WINDOW = 16 * 1024 * 1024
_STREAM = {b"stdout": "stdout", b"stderr": "stderr"}
_RE: dict[str, re.Pattern[bytes]] = {}  # compiled on first use: compiling costs import time


def _re(name: str) -> re.Pattern[bytes]:
    pattern = _RE.get(name)
    if pattern is None:
        pattern = _RE[name] = re.compile({
            # a json-file line of the writer's shape; its text's escapes are whole
            "json": rb'\{"log":"([^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*)","stream":"(stdout|stderr)",'
                    rb'"time":"([^"\\\x00-\x1f]*)"\}\n',
            "k8s": rb'([^ \n]+) (stdout|stderr) F ',
        }[name])
    return pattern


def _utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


_ends_line = operator.methodcaller("endswith", "\n")
# what a JSON string cannot hold as it is, but the line ends the runs put back
_ESCAPED = {b"\n": b'"\\' + bytes(range(32)).replace(b"\n", b""),
            b"\r\n": b'"\\' + bytes(range(32)).replace(b"\n", b"").replace(b"\r", b"")}
_PIECE = 16 * 1024


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data.replace(old, new)``, by pieces of about 16 KiB: on a longer haystack CPython (3.10
    and later) looks for each occurrence of a needle of 6 to 99 bytes with an algorithm whose set-up
    costs about a microsecond, once per occurrence, which is most of the time on a log of
    two-byte lines; on a short one its plain search has no set-up."""
    if len(data) < 2 * _PIECE:
        return data.replace(old, new)
    parts = []
    start, n = 0, len(data)
    while n - start > 2 * _PIECE:
        cut = data.find(old, start + _PIECE)
        if cut < 0:
            break
        parts.append(data[start:cut].replace(old, new))
        parts.append(new)
        start = cut + len(old)
    parts.append(data[start:].replace(old, new))
    return b"".join(parts)


class _Head(collections.namedtuple("_Head", "stream stamp prefix key sep eol start body end")):
    """The first line of a run: its stream and time (bytes), what starts and ends each line of
    the run (``prefix``, ``key``), what stands between two of its texts (``sep``), how its texts
    end (``eol``: a newline, or a terminal's CRLF when the key holds it), where the line and its
    text start and where it ends."""

    __slots__ = ()


def _json_head(data: bytes, pos: int) -> _Head | None:
    m = _re("json").match(data, pos)
    if m is None:
        return None
    text = m[1]
    # a whole line: the text ends with an escaped newline (an odd run of backslashes before its n),
    # a terminal's line with an escaped CRLF
    if not _escaped(text, b"\\n"):
        return None
    eol = b"\r\n" if _escaped(text[:-2], b"\\r") else b"\n"
    key = data[m.end(1) - 2 * len(eol):m.end()]
    return _Head(m[2], m[3], b'{"log":"', key, key + b'{"log":"', eol, pos, m.start(1), m.end())


def _escaped(text: bytes, escape: bytes) -> bool:
    """Whether a JSON string's body ends with ``escape`` (a backslash and a letter) itself."""
    return text.endswith(escape) and (len(text) - 1 - len(text[:-1].rstrip(b"\\"))) % 2 == 1


def _plain(text: bytes, lines: int, eol: bytes) -> bool:
    """Whether ``text`` is ``lines`` lines that each end with ``eol`` and hold nothing JSON escapes."""
    if text.count(b"\n") != lines:
        return False
    if eol == b"\r\n" and text.count(b"\r") != lines:
        return False
    return len(text.translate(None, _ESCAPED[eol])) == len(text) and _utf8(text)  # a C pass, no regex


def _json_run(data: bytes, h: _Head, limit: int) -> tuple[bytes, int] | None:
    """The texts of the run's lines that end by ``limit``, and where they end; None if they are
    not all the writer's whole lines (a line of another shape, stream or time, a partial one)."""
    same, end = _same_size_run(data, h, limit)
    if same is not None and _plain(same, (end - h.start) // (h.end - h.start), h.eol):
        return same, end
    last = data.rfind(h.key, h.end - len(h.key), limit)  # the key of the run's last line
    end = last + len(h.key)
    texts = data[h.body:last]
    plain = _replace(texts, h.sep, h.eol)
    seps = (len(texts) - len(plain)) // (len(h.sep) - len(h.eol))
    plain += h.eol
    if _plain(plain, seps + 1, h.eol):
        return plain, end
    esc = h.key[:2 * len(h.eol)]  # the eol as JSON escapes it
    try:  # escapes: the texts as one JSON array, each a whole line
        found = _decode('["' + _replace(texts, h.sep, esc + b'","').decode() + esc.decode() + '"]')
    except (ValueError, RecursionError):
        return None
    if len(found) != seps + 1 or not all(map(_ends_line, found)):
        return None
    joined = "".join(found)
    if joined.count("\n") != len(found):  # a text with a newline inside: a line at a time
        return None
    return joined.encode("utf-8", "replace"), end


def _k8s_head(data: bytes, pos: int) -> _Head | None:
    m = _re("k8s").match(data, pos)
    if m is None:
        return None
    end = data.find(b"\n", m.end()) + 1
    prefix = m[0]
    return _Head(m[2], m[1], prefix, b"\n", b"\n" + prefix, b"\n", pos, m.end(), end)


def _k8s_run(data: bytes, h: _Head, limit: int) -> tuple[bytes, int] | None:
    same, end = _same_size_run(data, h, limit)
    if same is not None:
        return same if _utf8(same) else same.decode("utf-8", "replace").encode(), end
    last = data.rfind(h.sep, h.end - 1, limit)  # the newline before the run's last line
    end = h.end if last < 0 else data.find(b"\n", last + len(h.sep)) + 1
    if end <= 0:
        return None
    texts = data[h.body:end]
    plain = _replace(texts, h.sep, b"\n")
    if plain.count(b"\n") != (len(texts) - len(plain)) // (len(h.sep) - 1) + 1:
        return None  # a line of another stream or time in between
    if not _utf8(plain):
        plain = plain.decode("utf-8", "replace").encode()
    return plain, end


_COLUMNS = 128  # the longest text taken a column at a time


def _same_size_run(data: bytes, h: _Head, limit: int) -> tuple[bytes | None, int]:
    """The texts of the run's lines by ``limit`` that are as long as its first (see
    :func:`_columns`) and where they end: how many is found by halving, looking only at where
    the prefix and key of a line of that length would be."""
    size = h.end - h.start
    lo, hi = 1, (limit - h.start) // size

    def fits(i: int) -> bool:  # the i-th line (from 1) has the prefix and key where they would be
        at = h.start + (i - 1) * size
        return data.startswith(h.prefix, at) and data.startswith(h.key, at + size - len(h.key))

    if hi < 2 or size - len(h.prefix) - len(h.key) > _COLUMNS:
        return None, 0
    if not fits(hi):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        hi = lo
    end = h.start + hi * size
    return _columns(data, h, end), end


def _columns(data: bytes, h: _Head, end: int) -> bytes | None:
    """The texts of the lines from ``h`` to ``end`` when they are all as long as the first (the
    lines of a flood mostly are) and all have its prefix and key, else None: checked and taken
    a column at a time (a slice with a step: no work per line in Python), as their texts with
    their newlines."""
    size = h.end - h.start
    lines, odd = divmod(end - h.start, size)
    width = size - len(h.prefix) - len(h.key)
    wide = width + len(h.eol)
    if odd or width > _COLUMNS or lines < 2 or data[end - 1:end] != b"\n":
        return None
    region = bytearray(memoryview(data)[h.start:end])
    fill = bytes(lines)
    for col in range(len(h.prefix), len(h.prefix) + width):
        region[col::size] = fill
    if region != (h.prefix + bytes(width) + h.key) * lines:
        return None
    out = bytearray(wide * lines)
    for col in range(width):
        out[col::wide] = data[h.body + col:end:size]
    for col, byte in enumerate(h.eol, width):
        out[col::wide] = bytes((byte,)) * lines
    if out.count(b"\n") != lines:  # a text holding a newline
        return None
    return bytes(out)


_BULK = {"json-file": (_json_head, _json_run), "k8s-file": (_k8s_head, _k8s_run)}


def blocks(data: bytes, fmt: str, n: int | None = None) -> list[LogBlock]:
    """The entries of ``data`` (complete lines; up to ``n`` if given) as blocks, malformed lines
    left out."""
    parse = parser(fmt)
    head_of, run_of = _BULK[fmt]
    out: list[list] = []  # [stream, time, parts]
    pos, window = 0, _MIN_WINDOW
    if n is None:
        n = len(data)
    stamp, t = None, 0
    while pos < n:
        h = head_of(data, pos)
        got = None
        if h is not None:
            try:
                if h.stamp != stamp:
                    stamp, t = h.stamp, parse_time(h.stamp.decode())
                got = _longest_run(data, h, run_of, min(n, pos + window))
            except ValueError:  # a time that does not parse
                pass
        if h is None or got is None:  # a line of its own
            end = data.find(b"\n", pos, n) + 1 or n
            e = parse(data[pos:end])
            if e is not None:
                _add(out, e.stream, e.text.encode("utf-8", "replace"), e.time_ns)
            pos, window = end, _MIN_WINDOW
            continue
        text, end = got
        _add(out, _STREAM[h.stream], text, t)
        window = min(_MAX_WINDOW, max(_MIN_WINDOW, 2 * (end - pos)))
        pos = end
    return [LogBlock(stream, b"".join(parts), t) for stream, t, parts in out]


def _longest_run(data: bytes, h: _Head, run_of, limit: int) -> tuple[bytes, int] | None:
    """The run from ``h`` that ends by ``limit``, or by half as far, and so on down to its first
    line; None when not even that line goes in bulk. At most twice the window's work."""
    pos = h.body
    while True:
        got = run_of(data, h, limit)
        if got is not None or limit <= h.end:
            return got
        limit = max(h.end, pos + (limit - pos) // 2)


def _add(out: list[list], stream: str, text: bytes, t: int) -> None:
    """Append entries to the blocks: to the last one when it has their stream and time and ends
    a line, so that a block's entries are its lines."""
    if out and text:
        last = out[-1]
        if last[0] == stream and last[1] == t and last[2][-1].endswith(b"\n"):
            last[2].append(text)
            return
    out.append([stream, t, [text]])


