"""Container logs in Docker's json-file format.

Each line of a log file is one JSON object::

    {"log":"text\\n","stream":"stdout","time":"2026-11-27T23:54:31.123456789Z"}

Docker's rules, followed here: output is split into lines at ``\\n`` (the ``log``
value keeps its newline); a partial line is buffered per stream until its
newline arrives or the buffer holds 16 KiB, then written as an entry without a
newline (a "partial" entry); at the end the remaining partial buffers are
flushed the same way. An entry's time is when its first byte arrived.

The writer appends whole JSON lines with one ``os.write`` on an ``O_APPEND``
file, so a concurrent reader sees complete lines, at most with a torn last line
while a write is in progress; readers skip an incomplete last line (and any
malformed line) instead of failing.
"""

from __future__ import annotations

import collections
import json
import os
import re
import time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO

PARTIAL_LIMIT = 16 * 1024  # Docker's buffer: a line longer than this is split into partial entries
STREAMS = ("stdout", "stderr")
_BLOCK = 64 * 1024  # read size when scanning a file backwards for --tail
_CHUNK = 1024 * 1024  # read size when following
_BATCH = 64 * 1024  # the writer issues one os.write per batch of whole lines up to about this size
_NS = 1_000_000_000


class LogEntry(collections.namedtuple("LogEntry", "stream text time_ns")):
    """One entry of a log: ``stream`` is "stdout" or "stderr", ``text`` keeps its newline."""

    __slots__ = ()

    @property
    def partial(self) -> bool:
        """True for an entry that does not end a line (a 16 KiB split or the end of the output)."""
        return not self.text.endswith("\n")


# ---- time ------------------------------------------------------------------------------------
def format_time(ns: int) -> str:
    """RFC 3339 in UTC with exactly nine fractional digits, as ``docker logs -t`` prints it."""
    sec, frac = divmod(ns, _NS)
    t = time.gmtime(sec)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:09d}Z")


# Patterns are compiled on first use (re caches them): compiling costs import time.
_TIMESTAMP = (r"(\d{4})-(\d{2})-(\d{2})"
              r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
              r"([Zz]|[+-]\d{2}:\d{2})?")


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _month_days(y: int, m: int) -> int:
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _parse_timestamp(text: str, strict: bool) -> int:
    """Nanoseconds since the epoch; ``strict`` asks for a full RFC 3339 date-time with a zone,
    otherwise the time of day (or its seconds) and the zone may be left out (local time)."""
    m = re.fullmatch(_TIMESTAMP, text, re.ASCII)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, mon, day, hour, minute, sec, frac, zone = m.groups()
    if strict and (sec is None or zone is None):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d = int(year), int(mon), int(day)
    h, mi, s = int(hour or 0), int(minute or 0), int(sec or 0)
    if not (1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and h < 24 and mi < 60 and s < 60):
        raise ValueError(f"timestamp out of range: {text!r}")
    sub = int(frac.ljust(9, "0")) if frac else 0
    if zone is None:  # local time, as Docker reads --since 2026-11-27T10:00
        try:
            return int(time.mktime((y, mo, d, h, mi, s, 0, 0, -1))) * _NS + sub
        except (OverflowError, ValueError) as e:
            raise ValueError(f"timestamp out of range: {text!r}") from e
    offset = 0
    if zone not in ("Z", "z"):
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise ValueError(f"bad UTC offset in timestamp: {text!r}")
        offset = (oh * 3600 + om * 60) * (-1 if zone[0] == "-" else 1)
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    return seconds * _NS + sub


_SECONDS: dict[str, int] = {}  # "2026-11-27T23:54:31" → ns: entries share their second


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp (up to nine fractional digits, ``Z`` or ``±HH:MM``) → ns since epoch."""
    if len(text) == 30 and text[19] == "." and text[29] == "Z":  # the writer's own form
        frac = text[20:29]
        if frac.isascii() and frac.isdigit():
            base = _SECONDS.get(text[:19])
            if base is None:
                base = _parse_timestamp(text, strict=True) - int(frac)
                if len(_SECONDS) >= 4096:
                    _SECONDS.clear()
                _SECONDS[text[:19]] = base
            return base + int(frac)
    return _parse_timestamp(text, strict=True)


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": _NS, "m": 60 * _NS, "h": 3600 * _NS}
_DURATION = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+"
_DURATION_PART = r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)"
_UNIX = r"(\d+)(?:\.(\d{1,9}))?"


def parse_duration(text: str) -> int:
    """A Go-style duration (``45s``, ``10m``, ``1h30m``, ``1.5h``, ``300ms``) → nanoseconds."""
    if not re.fullmatch(_DURATION, text, re.ASCII):
        raise ValueError(f"not a duration: {text!r}")
    total = 0
    for whole, frac, unit in re.findall(_DURATION_PART, text.lstrip("+-"), re.ASCII):
        scale = _UNITS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
    return -total if text.startswith("-") else total


def parse_since(value: str, now_ns: int | None = None) -> int:
    """Docker's ``--since``/``--until`` forms → ns since epoch.

    A relative duration (``10m``, ``1h30m``, ``45s``: now minus that), a Unix
    timestamp (``1700000000`` or ``1700000000.123``), or an RFC 3339 timestamp;
    like Docker, a date or date-time without a zone is local time.
    """
    value = value.strip()
    if re.fullmatch(_DURATION, value, re.ASCII):  # "0" has no unit: Unix time 0, as in Docker
        return (time.time_ns() if now_ns is None else now_ns) - parse_duration(value)
    m = re.fullmatch(_UNIX, value, re.ASCII)
    if m:
        return int(m[1]) * _NS + (int(m[2].ljust(9, "0")) if m[2] else 0)
    try:
        return _parse_timestamp(value, strict=False)
    except ValueError:
        raise ValueError(
            f"invalid time {value!r}: use a timestamp (2026-11-27T23:54:31Z, 1700000000) "
            "or a relative time (10m, 1h30m)") from None


# ---- writing ---------------------------------------------------------------------------------
def _utf8_cut(buf: bytearray, limit: int) -> int:
    """Where to split ``buf`` at most ``limit`` bytes in without cutting a UTF-8 sequence."""
    for i in range(limit - 1, max(limit - 4, 0) - 1, -1):
        b = buf[i]
        if b < 0x80:
            return limit
        if b >= 0xC0:  # a lead byte: does its sequence end before the limit?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return limit if i + need <= limit else (i or limit)
    return limit


class LogWriter:
    """Append a container's output to a json-file log, line by line per stream."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._buf = {s: bytearray() for s in STREAMS}
        self._started = dict.fromkeys(STREAMS, 0)  # arrival time of each buffer's first byte

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def write(self, stream: str, data: bytes) -> None:
        """Log what ``stream`` produced: every complete line, and 16 KiB pieces of a longer one."""
        if stream not in self._buf:
            raise ValueError(f"unknown stream {stream!r}: expected stdout or stderr")
        if self._fd < 0:
            raise ValueError("write to a closed LogWriter")
        if not data:
            return
        now = time.time_ns()
        buf = self._buf[stream]
        started = self._started[stream] if buf else now
        buf += data
        out: list[bytes] = []
        size = 0
        p = 0
        while True:
            q = buf.find(b"\n", p, p + PARTIAL_LIMIT)
            if q >= 0:
                end = q + 1
            elif len(buf) - p >= PARTIAL_LIMIT:
                end = p + _utf8_cut(buf[p:p + PARTIAL_LIMIT], PARTIAL_LIMIT)
            else:
                break
            line = _entry(stream, bytes(buf[p:end]), started)
            out.append(line)
            size += len(line)
            p = end
            started = now  # the rest arrived with this data
            if size >= _BATCH:
                self._emit(out)
                out, size = [], 0
        del buf[:p]
        self._started[stream] = started
        self._emit(out)

    def flush_partial(self, stream: str) -> None:
        """Write the buffered incomplete line of ``stream`` (if any) as a partial entry."""
        buf = self._buf.get(stream)
        if buf is None:
            raise ValueError(f"unknown stream {stream!r}: expected stdout or stderr")
        if buf and self._fd >= 0:
            self._emit([_entry(stream, bytes(buf), self._started[stream])])
            buf.clear()

    def close(self) -> None:
        """Flush the partial lines and close the file; closing again does nothing."""
        if self._fd < 0:
            return
        try:
            for stream in STREAMS:
                self.flush_partial(stream)
        finally:
            os.close(self._fd)
            self._fd = -1

    def _emit(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"".join(lines)
        n = os.write(self._fd, data)  # whole lines in one append: readers never see a torn entry
        while n < len(data):  # a short write (disk full, signal): write the rest rather than lose it
            data = data[n:]
            n = os.write(self._fd, data)


def _entry(stream: str, raw: bytes, t: int) -> bytes:
    text = json.dumps(raw.decode("utf-8", "replace"), ensure_ascii=False)
    return f'{{"log":{text},"stream":"{stream}","time":"{format_time(t)}"}}\n'.encode()


# ---- reading ---------------------------------------------------------------------------------
_decode = json.JSONDecoder().decode


def _parse(line: bytes) -> LogEntry | None:
    """The entry of one JSON line, or None for a malformed line."""
    try:
        obj = _decode(line.decode())
        text, stream, stamp = obj["log"], obj["stream"], obj["time"]
        if not (isinstance(text, str) and isinstance(stream, str) and isinstance(stamp, str)):
            return None
        return LogEntry(stream, text, parse_time(stamp))
    except (ValueError, TypeError, KeyError, RecursionError):  # JSON and UTF-8 errors are ValueErrors
        return None


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
        if len(data) < pos - start + len(carry):  # the file shrank under us
            return
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


def _tail(fd: int, tail: int) -> tuple[list[LogEntry], int]:
    """The last ``tail`` valid entries in order, and where the complete lines end."""
    size = os.fstat(fd).st_size
    found: list[LogEntry] = []
    end = None
    if tail > 0:
        for line, line_end in _lines_backwards(fd, size):
            if end is None:
                end = line_end
            e = _parse(line)
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


def _forward(f: IO[bytes]) -> Iterator[tuple[LogEntry | None, int]]:
    """Every complete line's entry (None if malformed) with the offset after it."""
    pos = 0
    for line in f:
        if not line.endswith(b"\n"):  # a torn last line
            return
        pos += len(line)
        yield _parse(line), pos


def read(path: str, tail: int | None = None, since_ns: int | None = None,
         until_ns: int | None = None) -> list[LogEntry]:
    """The log's entries, in order, skipping malformed lines and a torn last line.

    ``tail`` keeps that many entries from the end (0: none, None: all); as in
    Docker, ``since_ns``/``until_ns`` (inclusive) then filter those. A missing
    file is an empty log.
    """
    if tail is not None and tail < 0:
        raise ValueError("tail must be None or >= 0")
    f = _open(path)
    if f is None:
        return []
    with f:
        if tail is not None:
            entries, _end = _tail(f.fileno(), tail)
            return [e for e in entries if _wanted(e, since_ns, until_ns)]
        return [e for e, _end in _forward(f) if e is not None and _wanted(e, since_ns, until_ns)]


def _open(path: str) -> IO[bytes] | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def follow(path: str, is_running: Callable[[], bool], since_ns: int | None = None,
           tail: int | None = None, poll: float = 0.05,
           until_ns: int | None = None) -> Iterator[LogEntry]:
    """Yield the log's entries (respecting ``tail``/``since_ns``), then new ones as they are
    appended, until ``is_running()`` is False and no complete line is left to read.

    ``is_running`` is checked before the last read, so what was written just
    before the stop is still yielded. With ``until_ns`` the entries after it are
    left out and following ends once that time has passed.
    """
    if tail is not None and tail < 0:
        raise ValueError("tail must be None or >= 0")
    f = _open(path)
    while f is None:  # not created yet
        alive = is_running()
        f = _open(path)
        if f is None:
            if not alive:
                return
            time.sleep(poll)
    with f:
        fd = f.fileno()
        if tail is not None:
            entries, pos = _tail(fd, tail)
            for e in entries:
                if _wanted(e, since_ns, until_ns):
                    yield e
        else:
            pos = 0
            for e, end in _forward(f):
                pos = end
                if e is not None and _wanted(e, since_ns, until_ns):
                    yield e
        pending = b""
        while True:
            alive = is_running() and (until_ns is None or time.time_ns() <= until_ns)
            got = False
            while True:
                chunk = os.pread(fd, _CHUNK, pos)
                if not chunk:
                    break
                got = True
                pos += len(chunk)
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                for line in data[:cut].split(b"\n")[:-1]:
                    e = _parse(line)
                    if e is not None and _wanted(e, since_ns, until_ns):
                        yield e
            if not alive:
                return
            if not got:
                if os.fstat(fd).st_size < pos:  # truncated: start over
                    pos, pending = 0, b""
                    continue
                time.sleep(poll)
