"""Time as Docker's Go code writes and reads it: ``now_iso`` (RFC 3339 in UTC) and
``parse_duration`` (Go's ``time.ParseDuration`` grammar), one copy for every layer."""

from __future__ import annotations

import time

_NS = 1_000_000_000
# Go's unit names; microseconds also as µ (U+00B5, micro sign) and μ (U+03BC, Greek mu)
_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": _NS, "m": 60 * _NS, "h": 3600 * _NS}
_DIGITS = "0123456789"
_MAX = (1 << 63) - 1  # a Go Duration is an int64 of nanoseconds


def now_iso(nanoseconds: bool = True) -> str:
    """Now in UTC as RFC 3339: ``2026-11-27T23:54:31.123456789Z``, or without the fraction
    (``nanoseconds=False``, as Docker writes a volume's CreatedAt)."""
    t = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return stamp + f".{int(t % 1 * 1e9):09d}Z" if nanoseconds else stamp + "Z"


def _number(text: str, i: int) -> int:
    """The end of the run of ASCII digits starting at ``i``."""
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    return i


def parse_duration(text: str) -> int:
    """A Go duration → nanoseconds, by the grammar of Go's ``time.ParseDuration``: an optional
    sign, then one or more terms of a decimal number (``5``, ``1.5``, ``.5``, ``1.``) and a unit
    (ns, us, µs, μs, ms, s, m, h), as ``300ms``, ``-1.5h`` or ``1h2m3.5s``; ``0`` alone needs no
    unit. ValueError for anything else, or beyond Go's range (about 292 years)."""
    s = text[1:] if text[:1] in ("-", "+") else text
    negative = text[:1] == "-"
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total, i = 0, 0
    while i < len(s):
        start = i
        i = _number(s, i)
        whole = s[start:i]
        frac = ""
        if i < len(s) and s[i] == ".":
            end = _number(s, i + 1)
            frac, i = s[i + 1:end], end
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        end = i
        while end < len(s) and s[end] != "." and s[end] not in _DIGITS:
            end += 1
        unit = _UNITS.get(s[i:end])
        if unit is None:
            what = "missing unit" if end == i else f"unknown unit {s[i:end]!r}"
            raise ValueError(f"invalid duration {text!r}: {what}")
        i = end
        total += int(whole or 0) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        if total > _MAX + negative:
            raise ValueError(f"invalid duration {text!r}: out of range")
    return -total if negative else total
