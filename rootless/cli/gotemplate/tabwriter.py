"""Go's tabwriter as Docker sets it up for its tables."""

from __future__ import annotations


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's tabwriter as Docker sets it up.

    A column is as wide as its widest cell plus ``padding`` (at least
    ``minwidth``) over each run of lines that have that column; the text after
    a line's last tab is not padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def emit(lo: int, hi: int, widths: list[int]) -> None:
        for cells in lines[lo:hi]:
            out.append("".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + cells[-1])

    def columns(lo: int, hi: int, widths: list[int]) -> None:
        col, this = len(widths), lo
        while this < hi:
            if len(lines[this]) - 1 <= col:
                this += 1
                continue
            emit(lo, this, widths)
            lo, width = this, minwidth
            while this < hi and len(lines[this]) - 1 > col:
                width = max(width, len(lines[this][col]) + padding)
                this += 1
            columns(lo, this, [*widths, width])
            lo = this
        emit(lo, hi, widths)

    columns(0, len(lines), [])
    return "\n".join(out)
