"""The log drivers' writers: a container's output appended to its log as Docker's json-file
writes it, or podman's k8s-file (:class:`LogWriter`, rotated by size), or kept nowhere
(``none``: :class:`NullWriter`); :func:`log_config` checks ``--log-driver``/``--log-opt``.

Docker's rules, followed here: output is split into lines at ``\\n`` (an entry keeps its
newline); a partial line is buffered per stream until its newline arrives or the buffer holds
16 KiB, then written as an entry without a newline (a "partial" entry); at the end the
remaining partial buffers are flushed the same way. An entry's time is when its first byte
arrived. Whole entries are appended with one ``os.write`` on an ``O_APPEND`` file, so a
concurrent reader sees complete lines, at most with a torn last line.
"""

from __future__ import annotations

import os
import re
import time

from rootless.runtime.logtime import format_time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

PARTIAL_LIMIT = 16 * 1024  # Docker's buffer: a line longer than this is split into partial entries
STREAMS = ("stdout", "stderr")
_BATCH = 64 * 1024  # the writer issues one os.write per batch of whole lines up to about this size


_OPTS = ("max-size", "max-file")
# Docker's options of its file drivers that set what ``logs --details`` shows of each line (the
# container's labels and environment variables they name: :func:`detail_attrs`), and compress
# (rotated files kept compressed: taken, the files stay plain here)
_ATTR_OPTS = ("labels", "labels-regex", "env", "env-regex", "compress")
# Docker's own drivers: one of these that rootless lacks is "unsupported"; any other name is
# unknown to Docker too, and said in its words (clients match them: docker-py's tests do)
_DOCKER_DRIVERS = ("local", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs",
                   "gcplogs", "logentries")


def log_config(driver: str | None, opts, default: dict) -> dict:
    """A container's log settings from ``--log-driver`` and ``--log-opt KEY=VALUE`` over the
    configured ``default`` (:func:`rootless.base.config.log_defaults`): ``{"driver": ...,
    "max_size": bytes (0: no limit), "max_file": n}``. UsageError in Docker's words otherwise."""
    from rootless.base.config import LOG_DRIVERS, parse_size
    from rootless.base.errors import UsageError
    cfg = dict(default)
    if driver is not None:
        if driver not in LOG_DRIVERS:
            raise UsageError(f"unsupported log driver {driver!r}" if driver in _DOCKER_DRIVERS
                             else f"logger: no log driver named '{driver}' is registered",
                             f"use one of: {', '.join(LOG_DRIVERS)}")
        cfg["driver"] = driver
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid log opt {opt!r}", "use KEY=VALUE, for example max-size=10m or max-file=3")
        if key not in _OPTS + _ATTR_OPTS or cfg["driver"] == "none":
            raise UsageError(f"unknown log opt {key!r} for {cfg['driver']} log driver",
                             "the file drivers take max-size, max-file, compress, labels, labels-regex, env and "
                             "env-regex")
        if key in _ATTR_OPTS:
            _check_attr_opt(key, value)
            cfg.setdefault("attrs", {})[key] = value
        elif key == "max-size":
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


def _check_attr_opt(key: str, value: str) -> None:
    from rootless.base.errors import UsageError
    if key == "compress" and value not in ("true", "false"):
        raise UsageError(f"invalid value for compress {value!r}", "use true or false")
    if key.endswith("-regex"):
        try:
            re.compile(value)
        except re.error as e:
            raise UsageError(f"invalid {key} {value!r}: {e}") from None


def storage_format(driver: str) -> str:
    """How a driver's log is kept: Docker's ``local`` in json-file's lines (its own format is
    internal to Docker; ``logs`` reads both the same)."""
    return "json-file" if driver == "local" else driver


def detail_attrs(log: dict | None, labels: dict, env: list[str]) -> bytes:
    """What ``logs --details`` puts before each line: the container's labels and environment
    variables that the log options name (``labels``, ``env``: comma-separated keys; the
    ``-regex`` ones: patterns), ``key=value`` pairs sorted by key, joined by commas, escaped as a
    URL query is (Docker's daemon writes them so); empty without such options."""
    from urllib.parse import quote_plus
    opts = (log or {}).get("attrs") or {}
    values = dict(e.partition("=")[::2] for e in env)
    out: dict[str, str] = {}
    for source, names, pattern in ((labels, opts.get("labels"), opts.get("labels-regex")),
                                   (values, opts.get("env"), opts.get("env-regex"))):
        wanted = {k for k in (names or "").split(",") if k}
        for key, value in source.items():
            if key in wanted or (pattern and re.search(pattern, key)):
                out[key] = value
    return ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(out.items())).encode()


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
                 on_error: Callable[[str], None] | None = None, owner: tuple[int, int] | None = None) -> None:
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
        self.owner = owner  # who must be able to read it, when the writer is another id (keep-id)
        self._fd, self._size = -1, 0
        self._open()
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

    def partial(self) -> dict[str, tuple[bytes, int]]:
        """The partial lines waiting for their end, each with its first byte's arrival time: what a
        resting keeper (``runtime.hibernate``) carries over to its next writer (:meth:`take_partial`)."""
        return {s: (bytes(buf), self._started[s]) for s, buf in self._buf.items() if buf}

    def take_partial(self, partial: dict[str, tuple[bytes, int]]) -> None:
        """Go on with the partial lines of the writer before a rest."""
        for stream, (data, started) in partial.items():
            self._buf[stream] += data
            self._started[stream] = started

    def fds(self) -> list[int]:
        """The descriptor of the open file, if any."""
        return [self._fd] if self._fd >= 0 else []

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
        if self.owner is not None:
            os.fchown(self._fd, *self.owner)
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
        """The full file becomes ``PATH.1`` (:func:`~rootless.runtime.logrotate.rotate`); a new one
        starts."""
        from rootless.runtime.logrotate import rotate
        os.close(self._fd)
        self._fd = -1
        rotate(self.path, self.max_file)
        self._open()


class NullWriter:
    """``--log-driver none``: the output goes to an attached CLI and is kept nowhere."""

    closed = False

    def write(self, stream: str, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def open_writer(path: str, config: dict | None, on_error: Callable[[str], None] | None = None,
                owner: tuple[int, int] | None = None):
    """The writer a container's keeper logs to (``config`` from :func:`log_config`; None, for a
    record made before logs had settings, is json-file without a limit); ``on_error`` hears,
    once, that the log could not be written (see :class:`LogWriter`); ``owner``: the ids its files
    are given (the user's, when the keeper is another id: keep-id)."""
    config = config or {"driver": "json-file", "max_size": 0, "max_file": 1}
    if config["driver"] == "none":
        return NullWriter()
    return LogWriter(path, storage_format(config["driver"]), config.get("max_size", 0), config.get("max_file", 1),
                     on_error, owner)
