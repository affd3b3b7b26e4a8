"""Tests for rootless/cli/render.py: Docker-like sizes, durations and tables."""

import calendar

import pytest

from rootless.cli import render

MINUTE, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize("n, text", [
    (0, "0B"),
    (1, "1B"),
    (999, "999B"),
    (1000, "1kB"),
    (1234, "1.23kB"),
    (12_345, "12.3kB"),
    (123_456, "123kB"),
    (1_000_000, "1MB"),
    (1_980_000, "1.98MB"),
    (4_260_000_000, "4.26GB"),
    (5 * 10**12, "5TB"),
    (7 * 10**15, "7PB"),
])
def test_human_size(n, text):
    assert render.human_size(n) == text


@pytest.mark.parametrize("n, text", [
    (999_499, "999kB"),
    (999_500, "1MB"),  # rounds up to the next unit, never "1e+03kB"
    (999_999, "1MB"),
    (999_500_000, "1GB"),
])
def test_human_size_rounding_into_the_next_unit(n, text):
    assert render.human_size(n) == text


@pytest.mark.parametrize("seconds, text", [
    (-5, "Less than a second"),
    (0, "Less than a second"),
    (0.5, "Less than a second"),
    (1, "1 second"),
    (1.9, "1 second"),
    (2, "2 seconds"),
    (59, "59 seconds"),
    (59.9, "59 seconds"),
    (60, "About a minute"),
    (119, "About a minute"),
    (120, "2 minutes"),
    (3 * MINUTE, "3 minutes"),
    (59 * MINUTE + 59, "59 minutes"),
    (HOUR, "About an hour"),
    (HOUR + 29 * MINUTE, "About an hour"),
    (2 * HOUR, "2 hours"),
    (47 * HOUR, "47 hours"),
    (2 * DAY, "2 days"),
    (13 * DAY, "13 days"),
    (14 * DAY, "2 weeks"),
    (59 * DAY, "8 weeks"),
    (60 * DAY, "2 months"),
    (729 * DAY, "24 months"),
    (730 * DAY, "2 years"),
    (3 * 365 * DAY, "3 years"),
])
def test_human_duration(seconds, text):
    assert render.human_duration(seconds) == text


@pytest.mark.parametrize("hours, text", [(1.5, "2 hours"), (2.5, "3 hours"), (3.49, "3 hours")])
def test_human_duration_rounds_half_hours_up(hours, text):
    """Like Docker's int(h + 0.5), not Python's round-half-to-even."""
    assert render.human_duration(hours * HOUR) == text


T0 = calendar.timegm((2025, 1, 2, 3, 4, 5))


@pytest.mark.parametrize("iso, now, text", [
    ("2025-01-02T03:04:05Z", T0 + 0.2, "Less than a second ago"),
    ("2025-01-02T03:04:05.000000000Z", T0 + 30, "30 seconds ago"),
    ("2025-01-02T03:04:05.999999999Z", T0 + 61, "About a minute ago"),  # 60.000000001 s
    ("2025-01-02T03:04:05.5Z", T0 + 2 * HOUR, "2 hours ago"),
    ("2025-01-02T03:04:05", T0 + 3 * DAY, "3 days ago"),
    ("2024-01-02T03:04:05Z", T0, "12 months ago"),
    ("", T0, "N/A"),
    ("yesterday", T0, "N/A"),
    ("2025-13-40T00:00:00Z", T0, "N/A"),
])
def test_ago(iso, now, text):
    assert render.ago(iso, now=now) == text


@pytest.mark.parametrize("iso, t", [
    ("1970-01-01T00:00:00Z", 0.0),
    ("2025-01-02T03:04:05Z", float(T0)),
    ("2025-01-02T03:04:05.25Z", T0 + 0.25),
    ("2025-01-02T03:04:05.123456789Z", T0 + 0.123456789),
    ("", None),
    ("2025-01-02 03:04:05", None),
])
def test_parse_time(iso, t):
    if t is None:
        assert render.parse_time(iso) is None
    else:
        assert render.parse_time(iso) == pytest.approx(t)


def test_ago_honours_now_zero():
    """An explicit now of 0.0 (the epoch) is a time, not "use the wall clock"."""
    assert render.ago("1970-01-01T00:00:00Z", now=0.0) == "Less than a second ago"


def test_table_alignment():
    out = render.table(["CONTAINER ID", "IMAGE", "NAMES"],
                       [["abc", "busybox:latest", "x"], ["0123456789abcdef", "b", "longer_name"]])
    assert out.splitlines() == [
        "CONTAINER ID       IMAGE            NAMES",
        "abc                busybox:latest   x",
        "0123456789abcdef   b                longer_name",
    ]


@pytest.mark.parametrize("headers, rows", [
    (["A", "B", "C"], [["x", "", ""], ["", "y", ""], ["long value", "", "z"]]),
    (["REPOSITORY", "TAG"], []),
    (["ONE"], [["1"], ["22"]]),
])
def test_table_columns_and_no_trailing_spaces(headers, rows):
    lines = render.table(headers, rows).splitlines()
    assert len(lines) == 1 + len(rows)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    total = sum(widths) + 3 * (len(widths) - 1)
    for line, row in zip(lines, [headers, *rows], strict=True):
        assert line == line.rstrip()
        padded = line.ljust(total)
        col = 0
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            assert padded[col:col + width] == cell.ljust(width)
            if i < len(widths) - 1:
                assert padded[col + width:col + width + 3] == "   "  # a 3-space gap
            col += width + 3


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError):
        render.table(["A", "B"], [["only one"]])


@pytest.mark.parametrize("given, wanted, hit", [
    ("busybox", "busybox", True), ("busybox", "busybox:latest", True),
    ("busybox:latest", "busybox", True), ("busybox", "docker.io/library/busybox:latest", True),
    ("127.0.0.1:5000/rt/app:1", "127.0.0.1:5000/rt/app:1", True), ("busybox", "busybox:1", False),
    ("alpine", "busybox", False), ("busybox", "sha256:" + "ab" * 32, False), ("busybox", "ab12", True),
    ("busybox", "Not A Ref", False),
])
def test_ps_ancestor_filter_takes_the_image_as_written_any_way(given, wanted, hit):
    """A container keeps its image as it was given (Docker's Config.Image): `ancestor=` matches
    any spelling of that reference, or the image id's prefix."""
    from rootless.engine.dockerview import matches
    rec = {"name": "c", "id": "c" * 64, "state": {"status": "running"},
           "spec": {"image_name": given, "image_id": "sha256:ab12" + "0" * 60, "labels": {}}}
    assert matches(rec, [f"ancestor={wanted}"]) is hit
