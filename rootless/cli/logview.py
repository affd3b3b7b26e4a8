"""What ``logs`` prints: each entry of a container's log on the stream it came from, with
Docker's ``-t`` timestamps, flushed as ``-f`` needs it."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO

from rootless.runtime.logs import LogBlock, LogEntry, format_time


def _is_text(out: object) -> bool | None:
    """Whether ``out`` takes str (True) or bytes (False); None if a first write must tell."""
    if isinstance(out, io.TextIOBase):
        return True
    if isinstance(out, (io.BufferedIOBase, io.RawIOBase)):
        return False
    mode = getattr(out, "mode", None)
    return ("b" not in mode) if isinstance(mode, str) else None


def render(entries: Iterable[LogEntry | list[LogEntry]] | Iterable[LogBlock | list[LogBlock]], timestamps: bool,
           out_stdout: IO, out_stderr: IO, details: bytes | None = None) -> None:
    """Write each entry's text to the output of its stream, with ``timestamps`` prefixed by its
    RFC 3339 nano time and a space, as ``docker logs -t`` does (``details``: then those
    attributes and a space, as ``--details``).

    The outputs may be text or binary files (``sys.stdout.buffer``: text is
    encoded as UTF-8). A list is written in runs of one stream and flushed at the
    end; an iterator (such as ``follow``) is flushed after each item, as it may
    wait for the next one: an entry, or a list of the entries that came at once. Blocks
    (:class:`~rootless.runtime.logparse.LogBlock`, what ``logs`` reads) go the same way, as bytes.
    """
    kinds = {id(out_stdout): _is_text(out_stdout), id(out_stderr): _is_text(out_stderr)}
    if details is not None:
        entries = _with_details(entries, details.decode() + " ")  # blocks get theirs as they are written
    if isinstance(entries, list):
        _write_runs(entries, timestamps, out_stdout, out_stderr, kinds, details)
        _flush(out_stdout)
        if out_stderr is not out_stdout:
            _flush(out_stderr)
        return
    for item in entries:
        for out in _write_runs(item if isinstance(item, list) else [item], timestamps, out_stdout, out_stderr,
                               kinds, details):
            _flush(out)


def _with_details(entries, prefix: str):
    """Entries (not blocks) as ``--details`` shows them: ``prefix`` before each text."""
    def one(e):
        return e if isinstance(e, LogBlock) else e._replace(text=prefix + e.text)
    if isinstance(entries, list):
        return [one(e) for e in entries]
    return ([one(e) for e in item] if isinstance(item, list) else one(item) for item in entries)


def _write_runs(entries: list[LogEntry], timestamps: bool, out_stdout: IO, out_stderr: IO,
                kinds: dict, details: bytes | None = None) -> list:
    """Write ``entries``, one write per run of entries of one stream; the outputs written to."""
    used = []
    i, n = 0, len(entries)
    while i < n:
        stream = entries[i].stream
        j = i + 1
        while j < n and entries[j].stream == stream:
            j += 1
        run = entries[i:j]
        if isinstance(run[0], LogBlock):
            text = b"".join([b.stamped(timestamps, details) for b in run] if timestamps or details is not None
                            else [b.data for b in run])
        else:
            text = _stamped(run) if timestamps else "".join([e.text for e in run])
        out = out_stderr if stream == "stderr" else out_stdout
        _write(out, text, kinds)
        if out not in used:
            used.append(out)
        i = j
    return used


def _stamped(run: list[LogEntry]) -> str:
    """The entries' texts, each after its time (entries written together share it: formatted once)."""
    parts = []
    last, stamp = None, ""
    for e in run:
        if e.time_ns != last:
            last, stamp = e.time_ns, format_time(e.time_ns) + " "
        parts.append(stamp)
        parts.append(e.text)
    return "".join(parts)


def _write(out: IO, text: str | bytes, kinds: dict) -> None:
    kind = kinds[id(out)]
    if kind:
        out.write(text if isinstance(text, str) else text.decode())
    elif kind is False:
        out.write(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    else:  # an unknown file-like object: try text, fall back to bytes
        try:
            out.write(text if isinstance(text, str) else text.decode())
            kinds[id(out)] = True
        except TypeError:
            out.write(text.encode("utf-8", "replace") if isinstance(text, str) else text)
            kinds[id(out)] = False


def _flush(out: object) -> None:
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()
