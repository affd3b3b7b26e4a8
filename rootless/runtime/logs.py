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

from rootless.base.clock import parse_duration

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO

PARTIAL_LIMIT = 16 * 1024  # Docker's buffer: a line longer than this is split into partial entries
STREAMS = ("stdout", "stderr")
_BLOCK = 64 * 1024  # read size when scanning a file backwards for --tail
_CHUNK = 1024 * 1024  # read size when following
_READ_BLOCK = 8 * 1024 * 1024  # read size when reading a whole file
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


_UNIX = r"(\d+)(?:\.(\d{1,9}))?"


def parse_since(value: str, now_ns: int | None = None) -> int:
    """Docker's ``--since``/``--until`` forms → ns since epoch.

    A relative duration (``10m``, ``1h30m``, ``45s``: now minus that), a Unix
    timestamp (``1700000000`` or ``1700000000.123``), or an RFC 3339 timestamp;
    like Docker, a date or date-time without a zone is local time.
    """
    value = value.strip()
    if value != "0":  # "0" is Unix time 0, as in Docker
        try:
            ago = parse_duration(value)
        except ValueError:
            pass
        else:
            return (time.time_ns() if now_ns is None else now_ns) - ago
    m = re.fullmatch(_UNIX, value, re.ASCII)
    if m:
        return int(m[1]) * _NS + (int(m[2].ljust(9, "0")) if m[2] else 0)
    try:
        return _parse_timestamp(value, strict=False)
    except ValueError:
        raise ValueError(
            f"invalid time {value!r}: use a timestamp (2026-11-27T23:54:31Z, 1700000000) "
            "or a relative time (10m, 1h30m)") from None


# ---- settings -------------------------------------------------------------------------------
_OPTS = ("max-size", "max-file")


def log_config(driver: str | None, opts, default: dict) -> dict:
    """A container's log settings from ``--log-driver`` and ``--log-opt KEY=VALUE`` over the
    configured ``default`` (:func:`rootless.base.config.log_defaults`): ``{"driver": ...,
    "max_size": bytes (0: no limit), "max_file": n}``. UsageError in Docker's words otherwise."""
    from rootless.base.config import LOG_DRIVERS, parse_size
    from rootless.base.errors import UsageError
    cfg = dict(default)
    if driver is not None:
        if driver not in LOG_DRIVERS:
            raise UsageError(f"unsupported log driver {driver!r}", f"use one of: {', '.join(LOG_DRIVERS)}")
        cfg["driver"] = driver
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid log opt {opt!r}", "use KEY=VALUE, for example max-size=10m or max-file=3")
        if key not in _OPTS or cfg["driver"] == "none":
            raise UsageError(f"unknown log opt {key!r} for {cfg['driver']} log driver",
                             "the json-file and k8s-file drivers take max-size and max-file")
        if key == "max-size":
            try:
                size = parse_size(value)
            except ValueError:
                raise UsageError(f"invalid max-size {value!r}", "use a size like 10m, 100k or 1g") from None
            if size <= 0:  # as Docker's json-file: its "no limit" is leaving max-size out
                raise UsageError(f"invalid max-size {value!r}: max-size must be a positive number",
                                 'for a log that is never rotated, set max_size = "0" in [logs] of the config')
            cfg["max_size"] = size
        elif not value.isascii() or not value.isdigit() or int(value) < 1:
            raise UsageError(f"invalid max-file {value!r}: max-file cannot be less than 1")
        else:
            cfg["max_file"] = int(value)
    return cfg


def files(path: str) -> list[str]:
    """A log's files, oldest first: the rotated ``PATH.N`` ... ``PATH.1``, then ``PATH``."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return [path]
    prefix = base + "."
    numbers = sorted((int(n[len(prefix):]) for n in names
                      if n.startswith(prefix) and n[len(prefix):].isascii() and n[len(prefix):].isdigit()),
                     reverse=True)
    return [f"{path}.{n}" for n in numbers] + [path]


def size_on_disk(path: str) -> int:
    """The bytes a container's log takes, rotated files included."""
    total = 0
    for f in files(path):
        try:
            total += os.lstat(f).st_size
        except OSError:
            pass
    return total


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


def _has_long_line(buf: bytearray, start: int, end: int) -> bool:
    """Whether a line of ``buf[start:end]`` (which ends with a newline) holds PARTIAL_LIMIT bytes
    or more before its newline. Each window's last newline starts the next window, so this takes
    a few steps per chunk whatever the lines' length."""
    i = start
    while end - i > PARTIAL_LIMIT:
        nl = buf.rfind(b"\n", i, i + PARTIAL_LIMIT)
        if nl < 0:
            return True
        i = nl + 1
    return False


_NEEDS_ESCAPE = None  # the bytes a JSON string cannot hold as they are (compiled on first use)


def _json_block(stream: str, block: bytes, t: int) -> bytes:
    """The json-file entries of ``block``: complete lines, all of time ``t``. Lines that need no
    escaping (the common case) become entries by one ``replace`` over the whole block."""
    global _NEEDS_ESCAPE
    if _NEEDS_ESCAPE is None:
        _NEEDS_ESCAPE = re.compile(rb'["\\\x00-\x09\x0b-\x1f]')
    tail = f',"stream":"{stream}","time":"{format_time(t)}"}}\n'
    if not _NEEDS_ESCAPE.search(block) and (block.isascii() or _valid_utf8(block)):
        suffix = b'\\n"' + tail.encode()
        return b'{"log":"' + block[:-1].replace(b"\n", suffix + b'{"log":"') + suffix
    enc = _encode_string()
    return "".join(['{"log":' + enc(line + "\n") + tail
                    for line in block.decode("utf-8", "replace").split("\n")[:-1]]).encode()


def _json_entry(stream: str, raw: bytes, t: int) -> bytes:
    text = _encode_string()(raw.decode("utf-8", "replace"))
    return f'{{"log":{text},"stream":"{stream}","time":"{format_time(t)}"}}\n'.encode()


def _k8s_block(stream: str, block: bytes, t: int) -> bytes:
    """Podman's k8s-file (the CRI log format): ``TIME STREAM F TEXT`` a line, nothing escaped."""
    prefix = f"{format_time(t)} {stream} F ".encode()
    return prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def _k8s_entry(stream: str, raw: bytes, t: int) -> bytes:
    """One k8s-file entry: ``F`` ends a line; ``P`` is a piece of one (its text has no newline)."""
    if raw.endswith(b"\n"):
        return f"{format_time(t)} {stream} F ".encode() + raw
    return f"{format_time(t)} {stream} P ".encode() + raw + b"\n"


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _encode_string():
    from json.encoder import encode_basestring  # C; what json.dumps(ensure_ascii=False) uses
    return encode_basestring


_FORMATS = {"json-file": (_json_block, _json_entry), "k8s-file": (_k8s_block, _k8s_entry)}


class LogWriter:
    """Append a container's output to its log, line by line per stream, in Docker's json-file
    format (or podman's ``k8s-file``); with ``max_size`` the file is rotated as Docker's
    json-file does (``PATH`` -> ``PATH.1`` -> ... -> ``PATH.{max_file - 1}``, the oldest
    dropped; with ``max_file`` 1 the log starts afresh).

    A write the filesystem refuses (a full disk, a quota) never stops the container, as in
    Docker: what cannot be written is dropped (an entry is written whole or not at all), the
    first failure is reported once through ``on_error(message)``, and writing resumes as soon
    as there is room again."""

    def __init__(self, path: str, fmt: str = "json-file", max_size: int = 0, max_file: int = 1,
                 on_error: Callable[[str], None] | None = None) -> None:
        if fmt not in _FORMATS:
            raise ValueError(f"unknown log format {fmt!r}")
        self.path = path
        self._block, self._entry = _FORMATS[fmt]
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.on_error = on_error
        self.error = ""  # the first failure to write, if any
        self.dropped = 0  # bytes of entries that could not be written
        self._closed = False
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._buf = {s: bytearray() for s in STREAMS}
        self._started = dict.fromkeys(STREAMS, 0)  # arrival time of each buffer's first byte

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, stream: str, data: bytes) -> None:
        """Log what ``stream`` produced: every complete line, and 16 KiB pieces of a longer one."""
        if stream not in self._buf:
            raise ValueError(f"unknown stream {stream!r}: expected stdout or stderr")
        if self._closed:
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
            if started == now:  # every entry from here on arrived now: its whole lines in one go
                last = buf.rfind(b"\n", p)
                if last >= p and not _has_long_line(buf, p, last + 1):
                    block = self._block(stream, bytes(buf[p:last + 1]), now)
                    out.append(block)
                    size += len(block)
                    p = last + 1
            q = buf.find(b"\n", p, p + PARTIAL_LIMIT)
            if q >= 0:
                end = q + 1
            elif len(buf) - p >= PARTIAL_LIMIT:
                end = p + _utf8_cut(buf[p:p + PARTIAL_LIMIT], PARTIAL_LIMIT)
            else:
                break
            line = self._entry(stream, bytes(buf[p:end]), started)
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
        if buf and not self._closed:
            self._emit([self._entry(stream, bytes(buf), self._started[stream])])
            buf.clear()

    def close(self) -> None:
        """Flush the partial lines and close the file; closing again does nothing."""
        if self._closed:
            return
        try:
            for stream in STREAMS:
                self.flush_partial(stream)
        finally:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _emit(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"".join(lines)
        try:
            if self._fd < 0:  # a rotation could not open the new file: try again
                self._open()
            self._emit_data(data)
        except OSError as e:
            self._failed(e, data)

    def _failed(self, e: OSError, data: bytes) -> None:
        """Drop what could not be written (and any torn piece of it), and say so once."""
        self.dropped += len(data)
        if self._fd >= 0:
            try:  # an append that stopped half-way: cut it off, so the next entry starts a line
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
        if self.error:
            return
        self.error = (f"cannot write the container's log {self.path}: {e.strerror or e}: "
                      "its output is dropped until there is room again")
        if self.on_error is not None:
            try:
                self.on_error(self.error)
            except Exception:  # noqa: BLE001 - reporting must not stop the logging
                pass

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _emit_data(self, data: bytes) -> None:
        while self.max_size and self._size + len(data) > self.max_size:
            room = self.max_size - self._size
            cut = data.rfind(b"\n", 0, room) + 1 if room > 0 else 0
            if not cut:  # not one more whole entry fits
                if self._size:
                    self._rotate()
                    continue
                cut = data.find(b"\n") + 1 or len(data)  # an entry larger than max-size goes alone
            self._append(data[:cut])
            data = data[cut:]
            self._rotate()
        if data:
            self._append(data)

    def _append(self, data: bytes) -> None:
        total = len(data)
        n = os.write(self._fd, data)  # whole lines in one append: readers never see a torn entry
        while n < len(data):  # a short write (disk full, signal): write the rest rather than lose it
            data = data[n:]
            n = os.write(self._fd, data)
        self._size += total

    def _rotate(self) -> None:
        """The full file becomes ``PATH.1`` (older ones move up, the oldest goes); a new one starts."""
        os.close(self._fd)
        self._fd = -1
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}", f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self._open()


class NullWriter:
    """``--log-driver none``: the output goes to an attached CLI and is kept nowhere."""

    closed = False

    def write(self, stream: str, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def open_writer(path: str, config: dict | None, on_error: Callable[[str], None] | None = None):
    """The writer a container's keeper logs to (``config`` from :func:`log_config`; None, for a
    record made before logs had settings, is json-file without a limit); ``on_error`` hears,
    once, that the log could not be written (see :class:`LogWriter`)."""
    config = config or {"driver": "json-file", "max_size": 0, "max_file": 1}
    if config["driver"] == "none":
        return NullWriter()
    return LogWriter(path, config["driver"], config.get("max_size", 0), config.get("max_file", 1), on_error)


# ---- reading ---------------------------------------------------------------------------------
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
    out = []
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


def _tail(fd: int, tail: int, parse=_parse) -> tuple[list[LogEntry], int]:
    """The last ``tail`` valid entries in order, and where the complete lines end."""
    size = os.fstat(fd).st_size
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


def _rotated(path: str, fd: int) -> bool:
    """Whether ``path`` is no longer the file open on ``fd`` (the writer rotated the log)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    own = os.fstat(fd)
    return (st.st_ino, st.st_dev) != (own.st_ino, own.st_dev)


def _after_rotation(path: str, f: IO[bytes], pos: int, pending: bytes,
                    parse) -> tuple[list[LogEntry], IO[bytes] | None]:
    """When the file a follower reads (``f``, read up to ``pos``) was rotated away: the entries it
    has not read (the rest of ``f``, which the writer may have added to before renaming it, then
    every rotated file newer than it: several rotations may come between two looks) and the
    current file, opened, to read next (None if there is none yet). From one consistent listing."""
    rest = pending + os.pread(f.fileno(), max(0, os.fstat(f.fileno()).st_size - pos), pos)
    out = _entries(rest[:rest.rfind(b"\n") + 1], parse)
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
                out += _read_forward(g.fileno(), parse)[0]
    return out, current


def follow(path: str, is_running: Callable[[], bool], since_ns: int | None = None,
           tail: int | None = None, poll: float = 0.05,
           until_ns: int | None = None, fmt: str = "json-file") -> Iterator[LogEntry]:
    """:func:`follow_batches`, an entry at a time."""
    for batch in follow_batches(path, is_running, since_ns, tail, poll, until_ns, fmt):
        yield from batch


def follow_batches(path: str, is_running: Callable[[], bool], since_ns: int | None = None,
                   tail: int | None = None, poll: float = 0.05,
                   until_ns: int | None = None, fmt: str = "json-file") -> Iterator[list[LogEntry]]:
    """Yield the log's entries (respecting ``tail``/``since_ns``), then new ones as they are
    appended (a list of what one read found, never empty), until ``is_running()`` is False and no complete line is left to read; a rotation
    is followed into the new file.

    ``is_running`` is checked before the last read, so what was written just
    before the stop is still yielded. With ``until_ns`` the entries after it are
    left out and following ends once that time has passed.
    """
    if tail is not None and tail < 0:
        raise ValueError("tail must be None or >= 0")
    parse = _parser(fmt)
    opened = _open_all(path)
    while not opened:  # not created yet (or between a rotation's rename and the new file)
        alive = is_running()
        opened = _open_all(path)
        if not opened:
            if not alive:
                return
            time.sleep(poll)
    try:
        entries, pos = _read_files(opened, tail, parse)
    except BaseException:
        opened[-1].close()
        raise
    finally:
        for older in opened[:-1]:
            older.close()
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
                batch = [e for e in _entries(data[:cut], parse) if _wanted(e, since_ns, until_ns)]
                if batch:
                    yield batch
            if _rotated(path, fd):  # go on with what came after this file, then the new one
                missed, new = _after_rotation(path, f, pos, pending, parse)
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
