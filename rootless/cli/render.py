"""Human output like Docker's: tables, sizes, durations."""

from __future__ import annotations

import time

from rootless.engine.dockerview import human_duration, parse_time  # noqa: F401 - the CLI's too


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
    """``--format``: a Go template per row, or ``table TEMPLATE`` with a header and aligned columns;
    ``json``: each row as a JSON line (Docker's ``{{json .}}``)."""
    from rootless.cli import gotemplate
    return gotemplate.render_rows("{{json .}}" if fmt == "json" else gotemplate.unescape(fmt), rows, headers)


def human_size(n: float) -> str:
    """Decimal units with 3 significant digits, as ``docker images`` prints them."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while i < len(units) - 1 and float(f"{n:.3g}") >= 1000:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def ago(iso: str, now: float | None = None) -> str:
    t = parse_time(iso)
    if t is None:
        return "N/A"
    return human_duration((time.time() if now is None else now) - t) + " ago"
