"""Progress of pulls and pushes on stderr: a line per layer redrawn in place on a terminal,
plain lines otherwise (and nothing with ``-q``).

The registry code reports two things: status lines ``"<12 hex>: Pull complete"`` (``say``)
and bytes (``progress(digest, done, total)``), from several download threads at once.
"""

from __future__ import annotations

import sys
import threading
import time

BAR = 30


def reporter(quiet: bool, stream=None):
    """``say`` (with a ``progress`` attribute) for a pull or push, or None when quiet."""
    if quiet:
        return None
    stream = stream or sys.stderr
    if stream.isatty():
        return Terminal(stream)
    return Plain(stream)


class Plain:
    def __init__(self, stream):
        self.stream = stream

    def __call__(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def progress(self, digest: str, done: int, total: int) -> None:
        pass


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000.0
    return f"{n}"


class Terminal:
    """One line per layer, redrawn in place (ANSI cursor moves); other lines printed above."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.status: dict[str, str] = {}
        self.drawn = 0
        self.last = 0.0

    def __call__(self, line: str) -> None:
        ident, sep, status = line.partition(": ")
        with self.lock:
            if sep and len(ident) == 12 and all(c in "0123456789abcdef" for c in ident):
                if ident not in self.status:
                    self.order.append(ident)
                self.status[ident] = status
                self._draw()
            else:
                self._draw(above=line)

    def progress(self, digest: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        filled = int(BAR * done / total) if total else BAR
        bar = "=" * max(filled - 1, 0) + (">" if filled < BAR else "=") + " " * (BAR - filled)
        self(f"{digest[7:19]}: Downloading [{bar}] {_size(done)}/{_size(total)}")

    def _draw(self, above: str | None = None) -> None:
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}A")
        if above is not None:
            out.append(f"\x1b[2K{above}\n")
        for ident in self.order:
            out.append(f"\x1b[2K{ident}: {self.status[ident]}\n")
        self.drawn = len(self.order)
        self.stream.write("".join(out))
        self.stream.flush()
