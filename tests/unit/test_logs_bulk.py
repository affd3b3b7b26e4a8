"""Reading logs in bulk (rootless/runtime/logparse.py): the writer's runs become blocks without
work per line, and every shape, split and odd byte reads as the line-at-a-time parser reads it."""

from __future__ import annotations

import io
import json
import random
import struct

import pytest

from rootless.api import containers as api_containers
from rootless.cli import logview
from rootless.runtime import logparse, logread, logs
from rootless.runtime.logs import LogBlock, LogEntry, LogWriter

S = 1_000_000_000
FMTS = ["json-file", "k8s-file"]


class Clock:
    """Stands in for logwrite's ``time``: each write arrives one second after the last."""

    def __init__(self) -> None:
        self.now = 1_700_000_000 * S

    def time_ns(self) -> int:
        self.now += S
        return self.now


@pytest.fixture
def clock(monkeypatch):
    from rootless.runtime import logwrite
    fake = Clock()
    monkeypatch.setattr(logwrite, "time", fake)
    return fake


def by_line(path: str, fmt: str) -> list[LogEntry]:
    """The reference: every line of the file through the line parser, malformed ones left out."""
    with open(path, "rb") as f:
        data = f.read()
    data = data[:data.rfind(b"\n") + 1]
    parse = logparse.parser(fmt)
    return [e for e in map(parse, data.splitlines(keepends=True)) if e is not None]


def written(tmp_path, fmt: str, writes) -> str:
    path = str(tmp_path / f"ctr-{fmt}.log")
    with LogWriter(path, fmt) as w:
        for stream, data in writes:
            w.write(stream, data)
    return path


def entries_of(blocks: list[LogBlock]) -> list[LogEntry]:
    return [e for b in blocks for e in b.entries()]


def no_line_parser(monkeypatch):
    """Fail the test if any line goes through the line-at-a-time parser."""
    def refuse(line):
        raise AssertionError(f"parsed a line at a time: {line!r}")
    monkeypatch.setitem(logparse._PARSERS, "json-file", refuse)
    monkeypatch.setitem(logparse._PARSERS, "k8s-file", refuse)


# ---- the writer's runs, in bulk ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FMTS)
def test_a_flood_of_short_lines_reads_as_a_block_per_write_and_no_line_alone(tmp_path, clock, monkeypatch, fmt):
    flood = b"y\n" * 50_000
    path = written(tmp_path, fmt, [("stdout", flood), ("stdout", flood), ("stderr", b"e\n" * 1000)])
    expected = by_line(path, fmt)
    no_line_parser(monkeypatch)
    blocks = logs.read_blocks(path, fmt=fmt)
    assert [(b.stream, len(b.data)) for b in blocks] == [("stdout", 100_000), ("stdout", 100_000), ("stderr", 2000)]
    assert b"".join(b.data for b in blocks[:2]) == flood * 2
    assert entries_of(blocks) == expected
    assert logs.read(path, fmt=fmt) == expected


@pytest.mark.parametrize("fmt", FMTS)
def test_lines_of_different_lengths_go_in_bulk_too(tmp_path, clock, monkeypatch, fmt):
    text = "".join(f"{i}\n" for i in range(20_000)).encode()  # 1 to 5 digits: no common length
    path = written(tmp_path, fmt, [("stdout", text)])
    no_line_parser(monkeypatch)
    assert [b.data for b in logs.read_blocks(path, fmt=fmt)] == [text]


@pytest.mark.parametrize("fmt", FMTS)
def test_a_terminals_crlf_lines_go_in_bulk(tmp_path, clock, monkeypatch, fmt):
    """With ``-t`` every line ends with CRLF (escaped in json-file): the runs still go in bulk."""
    writes = [("stdout", b"y\r\n" * 3000), ("stdout", b"".join(b"%d\r\n" % i for i in range(3000))),
              ("stdout", b"mixed\n" + b"y\r\n" * 100 + b"\r\n" * 10)]
    path = written(tmp_path, fmt, writes)
    expected = by_line(path, fmt)
    no_line_parser(monkeypatch)
    blocks = logs.read_blocks(path, fmt=fmt)
    assert b"".join(b.data for b in blocks) == b"".join(data for _s, data in writes)
    assert entries_of(blocks) == expected


def test_escaped_texts_go_in_bulk_as_one_json_array(tmp_path, clock, monkeypatch):
    text = "".join(f'{{"level":"info","n":{i}}}\t\\ é ☃\r\n' for i in range(5000)).encode()
    path = written(tmp_path, "json-file", [("stdout", text)])
    expected = by_line(path, "json-file")
    no_line_parser(monkeypatch)
    blocks = logs.read_blocks(path)
    assert [b.data for b in blocks] == [text]
    assert entries_of(blocks) == expected


# ---- the same entries as a line at a time, whatever the shape and the splits ---------------------
TEXTS = [b"y\n", b"y\n", b"hello world\n", b'a "quoted" \\ word\n', b"tab\there\n", b"crlf\r\n", b"\r\n",
         b"\xc3\xa9t\xc3\xa9 \xe2\x98\x83\n", b"bad \xff\xfe bytes\n", b"\n", b"no newline yet",
         b"x" * 300 + b"\n", b"\x00\x01 control\n", b"\\n not a newline\n", b"ends with a backslash \\\n"]


def random_log(tmp_path, fmt: str, seed: int) -> str:
    rng = random.Random(seed)
    writes = []
    for _ in range(rng.randrange(5, 60)):
        stream = rng.choice(["stdout", "stdout", "stderr"])
        writes.append((stream, b"".join(rng.choice(TEXTS) for _ in range(rng.randrange(1, 40)))))
    return written(tmp_path, fmt, writes)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("seed", range(12))
def test_bulk_reads_every_entry_as_the_line_parser_does(tmp_path, clock, fmt, seed):
    path = random_log(tmp_path, fmt, seed)
    expected = by_line(path, fmt)
    blocks = logs.read_blocks(path, fmt=fmt)
    assert entries_of(blocks) == [e._replace(text=e.text.encode("utf-8", "replace").decode()) for e in expected]
    assert all(b.data for b in blocks)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("seed", range(4))
def test_tail_reads_backwards_in_bulk_and_counts_entries(tmp_path, clock, monkeypatch, fmt, seed):
    """``--tail N`` parses the end of the file in bulk, a block and then twice as much at a time:
    whatever the block size (lines longer than it, a block boundary inside a record), the last N
    entries, malformed lines not counted, a torn last line left out."""
    path = random_log(tmp_path, fmt, seed)
    with open(path, "ab") as f:
        f.write(b"not an entry\n" if fmt == "json-file" else b"bad\n")
    for _i in range(3):
        with LogWriter(path, fmt) as w:
            w.write("stdout", b"y\n" * 3000 + b"last")
    with open(path, "ab") as f:
        f.write(b'{"log":"torn' if fmt == "json-file" else b"2026-12-07T01:00:00.1Z stdout F torn")
    expected = by_line(path, fmt)
    for block in (7, 100, 4096, 65536):
        monkeypatch.setattr(logread, "_BLOCK", block)
        for tail in (0, 1, 2, 3001, 3002, 5000, len(expected) - 1, len(expected), len(expected) + 5):
            want = expected[max(0, len(expected) - tail):] if tail else []
            assert logs.read(path, tail=tail, fmt=fmt) == want, (block, tail)


@pytest.mark.parametrize("fmt", FMTS)
def test_a_read_that_ends_inside_a_record_or_an_escape(tmp_path, clock, monkeypatch, fmt):
    """Every size of read puts the chunk boundary at another place: inside a record, its time,
    an escape (``\\"``, ``\\u00e9``: the writer escapes what JSON must), a CRLF."""
    path = written(tmp_path, fmt, [("stdout", b'one "two"\r\n\xc3\xa9\n\x01x\n' * 3),
                                   ("stderr", b"err\r\n" * 3), ("stdout", b"y\n" * 20)])
    expected = logs.read(path, fmt=fmt)
    assert len(expected) == 32
    size = len(open(path, "rb").read())
    for block in range(1, size + 2):
        monkeypatch.setattr(logread, "_READ_BLOCK", block)
        assert logs.read(path, fmt=fmt) == expected, block


@pytest.mark.parametrize("fmt", FMTS)
def test_a_run_window_that_ends_inside_a_record(tmp_path, clock, monkeypatch, fmt):
    """The bulk path looks for a run in a window that starts small and grows: wherever the window
    ends, inside a line, a separator or the next run, the entries are the same."""
    path = written(tmp_path, fmt, [("stdout", b"ab\n" * 40 + b"abc\n" * 7 + b'q"\n'), ("stderr", b"e\n" * 9),
                                   ("stdout", b"\xc3\xa9\r\n" * 30)])
    expected = by_line(path, fmt)
    for window in (1, 2, 5, 17, 64, 100, 333, 1000, 100_000):
        monkeypatch.setattr(logparse, "_MIN_WINDOW", window)
        assert logs.read(path, fmt=fmt) == expected, window


def test_lines_of_another_shape_inside_a_run_are_read_alone(tmp_path):
    """Foreign lines between the writer's own (a key more, a line that is not JSON, a JSON line
    that ends as the writer's do, a torn one): each is what the line parser says, in place."""
    t = '"time":"2026-12-07T01:00:00.000000001Z"'
    own = '{"log":"ab\\n","stream":"stdout",' + t + '}\n'
    lines = [own * 5, '{"log":"ab\\n","stream":"stdout",' + t + ',"x":1}\n', own * 3, "not json at all\n",
             own * 2, '{"x":"{\\"log\\":\\"ab\\n","stream":"stdout",' + t + '}\n', own, '{"log":"ab\n', own * 4,
             '{"log":"ab\\n","stream":"stderr",' + t + '}\n', own * 2, '{"log":"\\u00e9\\n","stream":"stdout",'
             + t + '}\n', own * 3]
    path = tmp_path / "ctr.log"
    path.write_text("".join(lines))
    expected = by_line(str(path), "json-file")
    assert len(expected) == 23  # the writer's 20, the one with a key more, stderr's and the escaped one
    assert logs.read(str(path)) == expected


def test_k8s_invalid_bytes_and_partial_lines(tmp_path, clock):
    path = written(tmp_path, "k8s-file", [("stdout", b"ok\n" * 10 + b"bad \xff\n" + b"ok\n" * 10 + b"part")])
    texts = [e.text for e in logs.read(path, fmt="k8s-file")]
    assert texts == ["ok\n"] * 10 + ["bad \ufffd\n"] + ["ok\n"] * 10 + ["part"]
    blocks = logs.read_blocks(path, fmt="k8s-file")
    assert b"".join(b.data for b in blocks) == ("ok\n" * 10 + "bad \ufffd\n" + "ok\n" * 10 + "part").encode()


# ---- the outputs ---------------------------------------------------------------------------------
def test_timestamps_of_a_block_stamp_each_entry_and_a_partial_one(tmp_path, clock):
    path = written(tmp_path, "json-file", [("stdout", b"a\r\nb\n\nc"), ("stdout", b"\nd\n"), ("stdout", b"e")])
    blocks = logs.read_blocks(path)
    out, per_entry = io.BytesIO(), io.BytesIO()
    logview.render(blocks, True, out, out)
    logview.render(logs.read(path), True, per_entry, per_entry)
    assert out.getvalue() == per_entry.getvalue()
    stamp = [logs.format_time(clock.now - n * S) for n in (2, 1, 0)]  # a line's time: its first byte's
    assert out.getvalue().decode() == (f"{stamp[0]} a\r\n{stamp[0]} b\n{stamp[0]} \n{stamp[0]} c\n"
                                       f"{stamp[1]} d\n{stamp[2]} e")


def test_render_blocks_to_text_and_binary_outputs():
    blocks = [LogBlock("stdout", "é\nb\n".encode(), 1), LogBlock("stderr", b"e\n", 2), LogBlock("stdout", b"x", 3)]
    out, err = io.StringIO(), io.BytesIO()
    logview.render(blocks, False, out, err)
    assert (out.getvalue(), err.getvalue()) == ("é\nb\nx", b"e\n")
    out = io.BytesIO()
    logview.render(iter([blocks[:2], blocks[2:]]), False, out, out)
    assert out.getvalue() == "é\nb\ne\nx".encode()


def test_details_put_a_space_before_each_line_of_blocks_and_entries():
    """``logs --details`` with no log attributes: Docker writes the (empty) attributes and a space."""
    blocks = [LogBlock("stdout", b"a\nb\n", 1), LogBlock("stdout", b"c", 2)]
    out = io.BytesIO()
    logview.render(blocks, False, out, out, details=b"")
    assert out.getvalue() == b" a\n b\n c"
    out = io.BytesIO()
    logview.render(iter([[LogEntry("stdout", "x\n", 1)], LogEntry("stderr", "y", 2)]), False, out, out,
                   details=b"k=v")
    assert out.getvalue() == b"k=v x\nk=v y"
    assert blocks[0].stamped(False, None) == b"a\nb\n"
    assert blocks[0].stamped(True, b"") == f"{logs.format_time(1)}  a\n{logs.format_time(1)}  b\n".encode()


def test_details_are_the_labels_and_variables_the_log_options_name():
    from rootless.runtime.logwrite import detail_attrs, log_config
    log = log_config("local", ["labels=team,tier", "env=STAGE", "env-regex=^X_", "compress=true"],
                     {"driver": "json-file", "max_size": 0, "max_file": 1})
    attrs = detail_attrs(log, {"tier": "web", "team": "a b", "other": "no"}, ["STAGE=prod", "X_1=one", "Y=no"])
    assert attrs == b"STAGE=prod,X_1=one,team=a+b,tier=web"
    assert detail_attrs({"driver": "json-file"}, {"team": "a"}, []) == b""


def unframe(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


@pytest.mark.parametrize("data", [b"y\n" * 1000, b"ab\n", b"1\n22\n333\n", b"y\n" * 10 + b"part", b"part",
                                  b"", b"\n\n\n", b"same\nsize\nlast"])
def test_api_frames_a_line_each_as_dockers_daemon(data):
    lines = data.splitlines(keepends=True) or [b""]
    assert unframe(api_containers.frames(2, data)) == [(2, line) for line in lines]


def test_blocks_entries_round_trip():
    assert LogBlock("stdout", b"a\nb\nc", 5).entries() == [LogEntry("stdout", "a\n", 5), LogEntry("stdout", "b\n", 5),
                                                          LogEntry("stdout", "c", 5)]
    assert LogBlock("stderr", b"", 1).entries() == [LogEntry("stderr", "", 1)]
    assert json.loads(json.dumps(list(LogBlock("stdout", b"x\n", 1).entries()[0])))[1] == "x\n"
