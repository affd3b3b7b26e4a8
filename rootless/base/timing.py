"""Phase timestamps for the benchmark's breakdown, only when ``ROOTLESS_TIMING=FILE`` is set.

``mark(name)`` records CLOCK_MONOTONIC (comparable across processes); the
in-namespace side sends its marks over the channel; ``dump()`` appends one
JSON line to the file.
"""

from __future__ import annotations

import json
import os
import time

FILE = os.environ.get("ROOTLESS_TIMING")
marks: list[tuple[str, float]] = []


def mark(name: str, t: float | None = None) -> None:
    if FILE:
        marks.append((name, time.monotonic() if t is None else t))


def dump() -> None:
    if FILE and marks:
        with open(FILE, "a") as f:
            f.write(json.dumps(dict(marks)) + "\n")
