"""Tests for rootless/runtime/logs.py: Docker's json-file logs written, read, followed and printed."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rootless.cli import logview
from rootless.runtime import logread, logs, logwrite
from rootless.runtime.logs import LogEntry, LogWriter

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000
LIMIT = logs.PARTIAL_LIMIT
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


class FakeTime:
    """Stands in for the ``time`` module inside rootless.runtime.logwrite: time_ns() counts 1, 2, 3, ..."""

    gmtime = staticmethod(time.gmtime)
    mktime = staticmethod(time.mktime)
    sleep = staticmethod(time.sleep)

    def __init__(self) -> None:
        self.now = 0

    def time_ns(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(logwrite, "time", fake)
    return fake


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "ctr-json.log")


def raw_lines(path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def texts(entries) -> list[str]:
    return [e.text for e in entries]


def write_entries(path, items) -> None:
    """Append entries with given times: items are (stream, text, time_ns)."""
    with open(path, "ab") as f:
        for stream, text, t in items:
            f.write(json.dumps({"log": text, "stream": stream,
                                "time": logs.format_time(t)}).encode() + b"\n")


# ---- writing ---------------------------------------------------------------------------------
def test_lines_are_split_at_newlines_and_keep_them(path, clock):
    with LogWriter(path) as w:
        w.write("stdout", b"one\ntwo\n\nthree")
        assert texts(logs.read(path)) == ["one\n", "two\n", "\n"]
        w.write("stdout", b" and more\nfour\n")
    assert logs.read(path) == [
        LogEntry("stdout", "one\n", 1), LogEntry("stdout", "two\n", 1),
        LogEntry("stdout", "\n", 1),
        LogEntry("stdout", "three and more\n", 1),  # the time its first byte arrived
        LogEntry("stdout", "four\n", 2),
    ]


def test_partial_line_is_buffered_per_stream(path, clock):
    w = LogWriter(path)
    w.write("stdout", b"out-")
    w.write("stderr", b"err-")
    w.write("stdout", b"line\n")
    w.write("stderr", b"line\n")
    w.close()
    assert logs.read(path) == [LogEntry("stdout", "out-line\n", 1),
                               LogEntry("stderr", "err-line\n", 2)]


def test_close_flushes_partial_lines_without_newline(path, clock):
    w = LogWriter(path)
    w.write("stdout", b"no newline")
    w.write("stderr", b"err too")
    w.write("stdout", b"!")
    assert logs.read(path) == []
    w.close()
    w.close()  # closing twice is harmless
    entries = logs.read(path)
    assert entries == [LogEntry("stdout", "no newline!", 1), LogEntry("stderr", "err too", 2)]
    assert all(e.partial for e in entries)
    assert w.closed
    with pytest.raises(ValueError):
        w.write("stdout", b"late\n")


def test_flush_partial(path, clock):
    w = LogWriter(path)
    w.write("stdout", b"prompt> ")
    w.flush_partial("stdout")
    w.flush_partial("stdout")  # nothing left: no empty entry
    w.write("stdout", b"answer\n")
    w.close()
    assert texts(logs.read(path)) == ["prompt> ", "answer\n"]
    assert [e.partial for e in logs.read(path)] == [True, False]


def test_long_line_is_split_into_16k_partial_entries(path, clock):
    w = LogWriter(path)
    w.write("stdout", b"x" * 40_000)
    assert texts(logs.read(path)) == ["x" * LIMIT] * 2
    w.write("stdout", b"y\n")
    w.close()
    assert texts(logs.read(path)) == ["x" * LIMIT, "x" * LIMIT, "x" * (40_000 - 2 * LIMIT) + "y\n"]


def test_long_line_in_one_write_and_boundaries(path, clock):
    with LogWriter(path) as w:
        w.write("stdout", b"a" * (LIMIT - 1) + b"\n")  # fits: one entry
        w.write("stdout", b"b" * LIMIT + b"\n")  # a full buffer without newline: split
        w.write("stdout", b"c" * (3 * LIMIT) + b"\nend\n")
    assert texts(logs.read(path)) == [
        "a" * (LIMIT - 1) + "\n",
        "b" * LIMIT, "\n",
        "c" * LIMIT, "c" * LIMIT, "c" * LIMIT, "\n",
        "end\n",
    ]


def test_split_does_not_cut_a_utf8_character(path):
    text = "a" + "é" * LIMIT  # 2-byte characters: byte 16384 is in the middle of one
    with LogWriter(path) as w:
        w.write("stdout", text.encode())
    entries = logs.read(path)
    assert len(entries) == 3
    assert "\ufffd" not in "".join(texts(entries))
    assert "".join(texts(entries)) == text
    assert len(entries[0].text.encode()) == LIMIT - 1


def test_unicode_and_invalid_utf8(path):
    with LogWriter(path) as w:
        w.write("stdout", "héllo ☃ 😀 日本\n".encode())
        w.write("stderr", b"bad \xff\xfe bytes\n")
        w.write("stdout", "split ☃".encode()[:-1])  # a character cut between writes
        w.write("stdout", "split ☃\n".encode()[-2:])
    assert texts(logs.read(path)) == ["héllo ☃ 😀 日本\n", "bad \ufffd\ufffd bytes\n", "split ☃\n"]
    assert "héllo ☃ 😀 日本".encode() in raw_lines(path)[0]  # UTF-8 as is, like Docker


def test_exact_json_shape(path, clock):
    with LogWriter(path) as w:
        w.write("stderr", b'tab\there "quoted" \\ \r\x00\x1b[0m\n')
        w.write("stdout", b"partial")
    lines = raw_lines(path)
    assert len(lines) == 2
    assert lines[0] == (b'{"log":"tab\\there \\"quoted\\" \\\\ \\r\\u0000\\u001b[0m\\n",'
                        b'"stream":"stderr","time":"1970-01-01T00:00:00.000000001Z"}\n')
    obj = json.loads(lines[1])
    assert list(obj) == ["log", "stream", "time"]
    assert obj == {"log": "partial", "stream": "stdout", "time": "1970-01-01T00:00:00.000000002Z"}


def test_real_times_are_rfc3339_nano(path):
    before = time.time_ns()
    with LogWriter(path) as w:
        w.write("stdout", b"now\n")
    after = time.time_ns()
    obj = json.loads(raw_lines(path)[0])
    assert TIME_RE.fullmatch(obj["time"])
    assert before <= logs.parse_time(obj["time"]) <= after


def test_file_is_private_and_appended(path):
    with LogWriter(path) as w:
        w.write("stdout", b"first run\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with LogWriter(path) as w:
        w.write("stdout", b"second run\n")
    assert texts(logs.read(path)) == ["first run\n", "second run\n"]


def test_unknown_stream_and_empty_write(path):
    with LogWriter(path) as w:
        with pytest.raises(ValueError, match="stream"):
            w.write("stdin", b"x\n")
        with pytest.raises(ValueError, match="stream"):
            w.flush_partial("stdin")
        w.write("stdout", b"")
    assert logs.read(path) == []


def test_many_lines_in_one_write_are_all_logged(path):
    data = b"".join(b"line %d\n" % i for i in range(20_000))  # several write batches
    with LogWriter(path) as w:
        w.write("stdout", data)
    assert texts(logs.read(path)) == [f"line {i}\n" for i in range(20_000)]


# ---- time ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ns, text", [
    (0, "1970-01-01T00:00:00.000000000Z"),
    (1, "1970-01-01T00:00:00.000000001Z"),
    (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
    (1_795_910_071_123_456_789, "2026-11-28T23:54:31.123456789Z"),
    (951_782_400 * S, "2000-02-29T00:00:00.000000000Z"),
    (-1, "1969-12-31T23:59:59.999999999Z"),
])
def test_format_time(ns, text):
    assert logs.format_time(ns) == text
    assert logs.parse_time(text) == ns


@pytest.mark.parametrize("ns", [0, 999_999_999, 1_234_567_890_987_654_321, 4_102_444_799 * S + 5,
                                 86_399_999_999_999, 1_582_934_400 * S])
def test_time_round_trip(ns):
    assert logs.parse_time(logs.format_time(ns)) == ns


@pytest.mark.parametrize("text, ns", [
    ("2023-11-14T22:13:20Z", 1_700_000_000 * S),
    ("2023-11-14T22:13:20.5Z", 1_700_000_000 * S + 500_000_000),
    ("2023-11-14t22:13:20.000001z", 1_700_000_000 * S + 1_000),
    ("2023-11-15T00:13:20.123+02:00", 1_700_000_000 * S + 123_000_000),
    ("2023-11-14T16:43:20-05:30", 1_700_000_000 * S),
    ("2023-11-14T22:13:20-00:00", 1_700_000_000 * S),
    ("2023-11-15T22:12:20+23:59", 1_700_000_000 * S),
    ("2023-11-14 22:13:20Z", 1_700_000_000 * S),
])
def test_parse_time_offsets(text, ns):
    assert logs.parse_time(text) == ns
    expected = datetime.datetime.fromisoformat(re.sub(r"\.\d+", "", text.upper()).replace("Z", "+00:00"))
    assert logs.parse_time(text) // S == int(expected.timestamp())


@pytest.mark.parametrize("text", [
    "", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13Z", "2023-11-14T22:13:20.Z",
    "2023-11-14T22:13:20.1234567890Z", "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
    "2023-04-31T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T23:60:00Z",
    "2023-11-14T23:59:60Z", "2023-11-14T22:13:20+2:00", "2023-11-14T22:13:20+24:00",
    "2023-11-14T22:13:20+0200", " 2023-11-14T22:13:20Z", "٢٠٢٣-11-14T22:13:20Z", "garbage",
    "2023-02-30T00:00:00.000000000Z", "2023-11-14T22:13:20.12345678xZ",
    "2023-11-14T22:13:20.+2345678Z", "2023-11-14T22:13:20.١٢٣٤٥٦٧٨٩Z",
])
def test_parse_time_rejects(text):
    with pytest.raises(ValueError):
        logs.parse_time(text)


def test_parse_time_same_second_many_times():
    base = logs.parse_time("2023-11-14T22:13:20.000000000Z")
    for frac in ("000000001", "999999999", "123456789", "000000000"):
        assert logs.parse_time(f"2023-11-14T22:13:20.{frac}Z") == base + int(frac)
    with pytest.raises(ValueError):  # the second is known, the fraction is not digits
        logs.parse_time("2023-11-14T22:13:20.12345678xZ")


def test_parse_time_leap_years():
    assert logs.parse_time("2024-02-29T00:00:00Z") == 1_709_164_800 * S
    assert logs.parse_time("2000-02-29T00:00:00Z") == 951_782_400 * S
    with pytest.raises(ValueError):
        logs.parse_time("1900-02-29T00:00:00Z")


NOW = 1_800_000_000 * S + 123


@pytest.mark.parametrize("value, ns", [
    ("10m", NOW - 600 * S),
    ("1h30m", NOW - 5400 * S),
    ("45s", NOW - 45 * S),
    ("2h", NOW - 7200 * S),
    ("1.5h", NOW - 5400 * S),
    ("2h45m10s", NOW - (2 * 3600 + 45 * 60 + 10) * S),
    ("300ms", NOW - 300_000_000),
    ("0s", NOW),
    ("1700000000", 1_700_000_000 * S),
    ("1700000000.123", 1_700_000_000 * S + 123_000_000),
    ("1700000000.000000001", 1_700_000_000 * S + 1),
    ("0", 0),
    ("2023-11-14T22:13:20Z", 1_700_000_000 * S),
    ("2023-11-14T23:13:20.25+01:00", 1_700_000_000 * S + 250_000_000),
])
def test_parse_since(value, ns):
    assert logs.parse_since(value, NOW) == ns


def test_parse_since_local_time_and_default_now():
    local = int(time.mktime((2023, 11, 14, 22, 13, 20, 0, 0, -1)))
    assert logs.parse_since("2023-11-14T22:13:20", NOW) == local * S
    assert logs.parse_since("2023-11-14T22:13", NOW) == (local - 20) * S
    midnight = int(time.mktime((2023, 11, 14, 0, 0, 0, 0, 0, -1)))
    assert logs.parse_since("2023-11-14", NOW) == midnight * S
    before = time.time_ns()
    got = logs.parse_since("1m")
    assert before - 60 * S <= got <= time.time_ns() - 60 * S


@pytest.mark.parametrize("value", ["", "abc", "10x", "10", "1h-", "-", "m", "1.2.3s", "h1",
                                   "1700000000.1234567890", "2023-13-01", "yesterday"])
def test_parse_since_rejects(value):
    if value == "10":  # a bare number is a Unix timestamp, not a duration
        assert logs.parse_since(value, NOW) == 10 * S
        return
    with pytest.raises(ValueError):
        logs.parse_since(value, NOW)


# ---- reading ---------------------------------------------------------------------------------
@pytest.fixture
def numbered(path):
    """A log of 100 entries: "line i" at time (i + 1) seconds, stderr for every 7th."""
    write_entries(path, [("stderr" if i % 7 == 0 else "stdout", f"line {i}\n", (i + 1) * S)
                         for i in range(100)])
    return path


def test_read_all(numbered):
    entries = logs.read(numbered)
    assert texts(entries) == [f"line {i}\n" for i in range(100)]
    assert entries[7] == LogEntry("stderr", "line 7\n", 8 * S)


@pytest.mark.parametrize("tail, first", [(None, 0), (0, 100), (1, 99), (10, 90), (100, 0),
                                         (101, 0), (10_000, 0)])
def test_read_tail(numbered, tail, first):
    assert texts(logs.read(numbered, tail=tail)) == [f"line {i}\n" for i in range(first, 100)]


@pytest.mark.parametrize("block", [1, 7, 64, 100, 4096])
def test_read_tail_in_small_blocks(numbered, monkeypatch, block):
    monkeypatch.setattr(logread, "_BLOCK", block)
    for tail in (0, 1, 2, 33, 99, 100, 500):
        assert texts(logs.read(numbered, tail=tail)) == [f"line {i}\n" for i in range(100)][
            100 - min(tail, 100):]


def test_read_tail_when_the_file_shrinks_under_the_scan(numbered, monkeypatch):
    """A writer on a full disk appends into the last page, meets ENOSPC and cuts the torn entries
    off again: a reader whose read came back shorter than the size it saw must scan again, not give
    up with nothing."""
    real_pread = os.pread
    cut = []

    def pread_after_a_cut(fd, size, offset):
        data = real_pread(fd, size, offset)
        if not cut:  # the first read: the bytes the size promised were cut off meanwhile
            cut.append(True)
            return data[:-300]
        return data

    monkeypatch.setattr(logread.os, "pread", pread_after_a_cut)
    assert texts(logs.read(numbered, tail=1)) == ["line 99\n"]
    assert cut


def test_read_tail_of_a_file_bigger_than_the_block(path, monkeypatch):
    n = 30_000  # about 2.5 MB, many 64 KiB blocks
    with LogWriter(path) as w:
        w.write("stdout", b"".join(b"entry %06d\n" % i for i in range(n)))
        w.write("stderr", b"z" * (3 * LIMIT))  # long entries at the end, longer than a small block
    assert os.path.getsize(path) > 10 * logread._BLOCK
    read_bytes = []
    real_pread = os.pread

    def counting_pread(fd, size, offset):
        read_bytes.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(logread.os, "pread", counting_pread)
    got = logs.read(path, tail=10)
    assert texts(got) == [f"entry {i:06d}\n" for i in range(n - 7, n)] + ["z" * LIMIT] * 3
    assert sum(read_bytes) <= 2 * logread._BLOCK  # only the end of the file was read
    read_bytes.clear()
    assert len(logs.read(path, tail=n + 100)) == n + 3
    monkeypatch.setattr(logread, "_BLOCK", 1000)  # entries longer than a block
    assert texts(logs.read(path, tail=4)) == [f"entry {n - 1:06d}\n"] + ["z" * LIMIT] * 3


def test_read_since_and_until(numbered):
    assert texts(logs.read(numbered, since_ns=96 * S)) == [f"line {i}\n" for i in range(95, 100)]
    assert texts(logs.read(numbered, since_ns=96 * S + 1)) == [f"line {i}\n" for i in range(96, 100)]
    assert texts(logs.read(numbered, until_ns=3 * S)) == ["line 0\n", "line 1\n", "line 2\n"]
    assert texts(logs.read(numbered, since_ns=10 * S, until_ns=11 * S)) == ["line 9\n", "line 10\n"]
    assert logs.read(numbered, since_ns=1000 * S) == []


def test_read_tail_then_since_as_docker(numbered):
    # Docker takes the last N lines, then filters them by time.
    assert texts(logs.read(numbered, tail=5, since_ns=98 * S)) == [
        "line 97\n", "line 98\n", "line 99\n"]
    assert logs.read(numbered, tail=5, since_ns=1000 * S) == []
    assert texts(logs.read(numbered, tail=3, until_ns=98 * S)) == ["line 97\n"]


def test_torn_last_line_is_skipped(numbered):
    with open(numbered, "ab") as f:
        f.write(b'{"log":"half a li')
    assert len(logs.read(numbered)) == 100
    assert texts(logs.read(numbered, tail=2)) == ["line 98\n", "line 99\n"]
    assert logs.read(numbered, tail=0) == []


def test_only_a_torn_line(path, monkeypatch):
    with open(path, "wb") as f:
        f.write(b'{"log":"x' + b"y" * 500)
    monkeypatch.setattr(logread, "_BLOCK", 64)
    assert logs.read(path) == []
    assert logs.read(path, tail=5) == []


def test_malformed_lines_are_skipped_and_not_counted(path):
    write_entries(path, [("stdout", "a\n", S)])
    with open(path, "ab") as f:
        f.write(b"not json\n\n[1, 2]\n{\"log\": 1, \"stream\": \"stdout\", \"time\": \"x\"}\n"
                b'{"log":"t\\n","stream":"stdout","time":"yesterday"}\n'
                b'{"log":"k\\n","stream":"stdout"}\n\xff\xfe\n' + b"[" * 100_000 + b"\n")
    write_entries(path, [("stderr", "b\n", 2 * S)])
    assert texts(logs.read(path)) == ["a\n", "b\n"]
    assert texts(logs.read(path, tail=2)) == ["a\n", "b\n"]


def test_read_missing_and_empty(tmp_path, path):
    assert logs.read(str(tmp_path / "nothing.log")) == []
    assert logs.read(str(tmp_path / "nothing.log"), tail=3) == []
    open(path, "wb").close()
    assert logs.read(path) == []
    assert logs.read(path, tail=3) == []
    with pytest.raises(ValueError):
        logs.read(path, tail=-1)


# ---- following -------------------------------------------------------------------------------
WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from rootless.runtime.logs import LogWriter

log, flag, ack, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
w = LogWriter(log)
w.write("stdout", b"line 0\n")
deadline = time.monotonic() + 30
while not os.path.exists(ack) and time.monotonic() < deadline:  # the follower saw line 0
    time.sleep(0.002)
for i in range(1, n):
    data = f"line {i}\n".encode()
    stream = "stderr" if i % 3 == 0 else "stdout"
    w.write(stream, data[:3])  # a line in two writes
    w.write(stream, data[3:])
    if i % 10 == 0:
        time.sleep(0.005)  # output over time
w.write("stdout", b"last words without newline")
w.close()
os.unlink(flag)  # the container stopped
"""


def test_follow_a_writer_process(tmp_path):
    log, flag, ack = tmp_path / "ctr.log", tmp_path / "running", tmp_path / "ack"
    n = 200
    flag.touch()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(log), str(flag),
                             str(ack), str(n)])
    try:
        deadline = time.monotonic() + 60

        def running() -> bool:
            assert time.monotonic() < deadline, "follow did not end"
            return flag.exists()

        got = []
        for e in logs.follow(str(log), running, poll=0.01):
            got.append(e)
            if len(got) == 1:
                ack.touch()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert texts(got) == [f"line {i}\n" for i in range(n)] + ["last words without newline"]
    assert [e.stream for e in got[1:n]] == [
        "stderr" if i % 3 == 0 else "stdout" for i in range(1, n)]
    assert got == logs.read(str(log))


def test_follow_reads_once_more_after_the_stop(path):
    w = LogWriter(path)
    w.write("stdout", b"first\n")
    stopping = []

    def running() -> bool:
        if stopping:  # the container writes its last words and exits between two polls
            if not w.closed:
                w.write("stderr", b"last words\n")
                w.close()
            return False
        return True

    got = []
    for e in logs.follow(path, running, poll=0.001):
        got.append(e)
        stopping.append(True)
    assert texts(got) == ["first\n", "last words\n"]
    assert [e.stream for e in got] == ["stdout", "stderr"]


def test_follow_waits_for_a_torn_line_to_complete(path):
    write_entries(path, [("stdout", "a\n", S)])
    line = json.dumps({"log": "b\n", "stream": "stdout", "time": logs.format_time(2 * S)}).encode()
    with open(path, "ab") as f:
        f.write(line[:10])
    polls = []

    def running() -> bool:
        polls.append(1)
        if len(polls) == 3:
            with open(path, "ab") as f:
                f.write(line[10:] + b"\n" + line[:5])  # the rest, and a new torn line
        return len(polls) < 5

    assert texts(logs.follow(path, running, poll=0.001)) == ["a\n", "b\n"]


def test_follow_with_tail_and_since(numbered):
    extra = iter([[("stdout", "new 1\n", 200 * S)], [("stdout", "old\n", 50 * S)],
                  [("stderr", "new 2\n", 201 * S)]])

    def running() -> bool:
        more = next(extra, None)
        if more:
            write_entries(numbered, more)
        return more is not None

    got = logs.follow(numbered, running, tail=3, since_ns=99 * S, poll=0.001)
    assert texts(got) == ["line 98\n", "line 99\n", "new 1\n", "new 2\n"]


def test_follow_tail_zero_only_new(numbered):
    added = []

    def running() -> bool:
        if not added:
            write_entries(numbered, [("stdout", "fresh\n", 500 * S)])
            added.append(1)
            return True
        return False

    assert texts(logs.follow(numbered, running, tail=0, poll=0.001)) == ["fresh\n"]


def test_follow_waits_for_the_file(path):
    calls = []

    def running() -> bool:
        calls.append(1)
        if len(calls) == 3:
            write_entries(path, [("stdout", "born\n", S)])
        return len(calls) < 5

    assert texts(logs.follow(path, running, poll=0.001)) == ["born\n"]
    assert list(logs.follow(path + ".none", lambda: False, poll=0.001)) == []


def test_follow_stops_after_until(numbered):
    got = logs.follow(numbered, lambda: True, until_ns=3 * S, poll=0.001)
    assert texts(got) == ["line 0\n", "line 1\n", "line 2\n"]


def test_follow_of_a_stopped_container_is_read(numbered):
    assert list(logs.follow(numbered, lambda: False, tail=4)) == logs.read(numbered, tail=4)
    assert list(logs.follow(numbered, lambda: False)) == logs.read(numbered)


# ---- output ----------------------------------------------------------------------------------
ENTRIES = [
    LogEntry("stdout", "hello\n", 1_700_000_000 * S + 5),
    LogEntry("stderr", "oops ☃\n", 1_700_000_001 * S),
    LogEntry("stdout", "partial", 1_700_000_002 * S + 123_456_789),
    LogEntry("stdout", " end\n", 1_700_000_003 * S),
]


def test_render_text_streams():
    out, err = io.StringIO(), io.StringIO()
    logview.render(ENTRIES, False, out, err)
    assert out.getvalue() == "hello\npartial end\n"
    assert err.getvalue() == "oops ☃\n"


def test_render_with_timestamps():
    out, err = io.StringIO(), io.StringIO()
    logview.render(ENTRIES, True, out, err)
    assert out.getvalue() == ("2023-11-14T22:13:20.000000005Z hello\n"
                              "2023-11-14T22:13:22.123456789Z partial"
                              "2023-11-14T22:13:23.000000000Z  end\n")
    assert err.getvalue() == "2023-11-14T22:13:21.000000000Z oops ☃\n"


def test_render_binary_streams():
    out, err = io.BytesIO(), io.BytesIO()
    logview.render(ENTRIES, False, out, err)
    assert out.getvalue() == b"hello\npartial end\n"
    assert err.getvalue() == "oops ☃\n".encode()
    buffered = io.BufferedWriter(io.BytesIO())
    logview.render(ENTRIES[:1], True, buffered, buffered)  # like sys.stdout.buffer
    assert buffered.raw.getvalue() == b"2023-11-14T22:13:20.000000005Z hello\n"
    wrapper = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    logview.render(ENTRIES, False, wrapper, wrapper)
    assert wrapper.buffer.getvalue() == "hello\noops ☃\npartial end\n".encode()


def test_render_unknown_file_like_objects():
    class BytesSink:
        def __init__(self):
            self.chunks = []

        def write(self, data):
            if not isinstance(data, bytes):
                raise TypeError("bytes expected")
            self.chunks.append(data)

    class TextSink:
        def __init__(self):
            self.chunks = []

        def write(self, data):
            self.chunks.append(data)

    out, err = BytesSink(), TextSink()
    logview.render(ENTRIES, False, out, err)  # a list: one write per run of one stream
    assert out.chunks == [b"hello\n", b"partial end\n"]
    assert err.chunks == ["oops ☃\n"]
    out, err = BytesSink(), TextSink()
    logview.render(iter(ENTRIES), False, out, err)  # an iterator: a write per entry
    assert out.chunks == [b"hello\n", b"partial", b" end\n"]


def test_render_flushes_each_entry_of_an_iterator():
    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.flushed = []

        def flush(self):
            self.flushed.append(self.getvalue())

    out, err = Recorder(), Recorder()
    logview.render(iter(ENTRIES), False, out, err)
    assert out.flushed == ["hello\n", "hello\npartial", "hello\npartial end\n"]
    assert err.flushed == ["oops ☃\n"]
    out, err = Recorder(), Recorder()
    logview.render(ENTRIES, False, out, err)  # a list: flushed once at the end
    assert out.flushed == ["hello\npartial end\n"]
    assert err.flushed == ["oops ☃\n"]


def test_write_read_render_round_trip(path):
    with LogWriter(path) as w:
        w.write("stdout", b"out 1\nout ")
        w.write("stderr", b"err 1\n")
        w.write("stdout", b"2\n")
    out, err = io.BytesIO(), io.BytesIO()
    logview.render(logs.read(path), False, out, err)
    assert out.getvalue() == b"out 1\nout 2\n"
    assert err.getvalue() == b"err 1\n"


def test_import_is_cheap():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import rootless.runtime.logs; "
            "print(sorted(m for m in ('typing', 'dataclasses', 'datetime', 'calendar') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(REPO)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
