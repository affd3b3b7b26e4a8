"""What ``info`` prints of the host checks (:mod:`rootless.engine.preflight`): aligned lines with
a ``fix:`` line, or JSON."""

from __future__ import annotations

import dataclasses
import textwrap

from rootless.engine.preflight import Check

NAME_WIDTH = 16
WIDTH = 100


def to_json(checks: list[Check]) -> list[dict]:
    return [dataclasses.asdict(c) for c in checks]


def render_text(checks: list[Check]) -> str:
    """Aligned lines, wrapped at 100 columns, with a ``fix:`` line for warn/fail."""
    indent = " " * (6 + NAME_WIDTH + 1)
    lines = []
    for c in checks:
        text = f"{c.detail} -> {c.action}" if c.action else c.detail
        lines.append(_wrap(f"{c.status:<5} {c.name:<{NAME_WIDTH}} {text}", indent))
        if c.fix and c.status in ("warn", "fail"):
            lines.append(_wrap(f"{indent}fix: {c.fix}", indent + "     "))
    return "\n".join(lines) + "\n"


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)
