"""What ``logs`` prints: each entry of a container's log on the stream it came from, with
Docker's ``-t`` timestamps, flushed as ``-f`` needs it."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO

from rootless.runtime.logs import LogEntry, format_time


def _is_text(out: object) -> bool | None:
    """Whether ``out`` takes str (True) or bytes (False); None if a first write must tell."""
    if isinstance(out, io.TextIOBase):
        return True
    if isinstance(out, (io.BufferedIOBase, io.RawIOBase)):
        return False
    mode = getattr(out, "mode", None)
    return ("b" not in mode) if isinstance(mode, str) else None


def render(entries: Iterable[LogEntry], timestamps: bool, out_stdout: IO, out_stderr: IO) -> None:
    """Write each entry's text to the output of its stream, with ``timestamps`` prefixed by its
    RFC 3339 nano time and a space, as ``docker logs -t`` does.

    The outputs may be text or binary files (``sys.stdout.buffer``: text is
    encoded as UTF-8). A list is flushed at the end; an iterator (such as
    ``follow``) after each entry, as it may wait for the next one.
    """
    live = iter(entries) is entries
    kinds = {id(out_stdout): _is_text(out_stdout), id(out_stderr): _is_text(out_stderr)}
    for e in entries:
        out = out_stderr if e.stream == "stderr" else out_stdout
        text = f"{format_time(e.time_ns)} {e.text}" if timestamps else e.text
        kind = kinds[id(out)]
        if kind:
            out.write(text)
        elif kind is False:
            out.write(text.encode("utf-8", "replace"))
        else:  # an unknown file-like object: try text, fall back to bytes
            try:
                out.write(text)
                kinds[id(out)] = True
            except TypeError:
                out.write(text.encode("utf-8", "replace"))
                kinds[id(out)] = False
        if live:
            _flush(out)
    if not live:
        _flush(out_stdout)
        if out_stderr is not out_stdout:
            _flush(out_stderr)


def _flush(out: object) -> None:
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()
