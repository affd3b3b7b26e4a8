"""Human output like Docker's: tables, sizes, durations."""

from __future__ import annotations

import calendar
import time


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = []
    for r in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def formatted(fmt: str, rows: list[dict], headers: dict[str, str]) -> str:
    """``--format``: a Go template per row, or ``table TEMPLATE`` with a header and aligned columns."""
    from rootless.cli import gotemplate
    return gotemplate.render_rows(gotemplate.unescape(fmt), rows, headers)


def human_size(n: float) -> str:
    """Decimal units with 3 significant digits, as ``docker images`` prints them."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while i < len(units) - 1 and float(f"{n:.3g}") >= 1000:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def parse_time(s: str) -> float | None:
    if not s:
        return None
    s = s.rstrip("Z")
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        frac = float("0." + (f[:9] or "0"))
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%S")) + frac
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = int(s / 3600 + 0.5)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def ago(iso: str, now: float | None = None) -> str:
    t = parse_time(iso)
    if t is None:
        return "N/A"
    return human_duration((time.time() if now is None else now) - t) + " ago"
