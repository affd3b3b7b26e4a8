"""Tests for the log drivers of rootless/runtime/logs.py: json-file written in bulk exactly as
entry by entry, podman's k8s-file, rotation by max-size/max-file and reading across rotated
files, the --log-driver/--log-opt settings and the [logs] config table."""

from __future__ import annotations

import io
import json
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootless.base import config
from rootless.base.errors import RootlessError, UsageError
from rootless.cli import logview
from rootless.runtime import logs, logwrite
from rootless.runtime.logs import LogEntry, LogWriter
from tests.unit.test_logs import FakeTime

LIMIT = logs.PARTIAL_LIMIT


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(logwrite, "time", fake)
    return fake


def reference_json(writes: list[tuple[str, bytes]]) -> bytes:
    """What Docker's json-file rules give, entry by entry (the writer's behaviour before its bulk
    path): lines split at newlines and at 16 KiB without cutting UTF-8; each entry's time is when
    its first byte arrived; the time counts 1, 2, 3 per write, as FakeTime does."""
    out = []
    bufs = {"stdout": bytearray(), "stderr": bytearray()}
    started = {"stdout": 0, "stderr": 0}
    now = 0
    for stream, data in writes:
        if not data:
            continue
        now += 1
        buf = bufs[stream]
        t = started[stream] if buf else now
        buf += data
        p = 0
        while True:
            q = buf.find(b"\n", p, p + LIMIT)
            if q >= 0:
                end = q + 1
            elif len(buf) - p >= LIMIT:
                end = p + logwrite._utf8_cut(buf[p:p + LIMIT], LIMIT)
            else:
                break
            out.append(_json(stream, bytes(buf[p:end]), t))
            p, t = end, now
        del buf[:p]
        started[stream] = t
    for stream in ("stdout", "stderr"):
        if bufs[stream]:
            out.append(_json(stream, bytes(bufs[stream]), started[stream]))
    return b"".join(out)


def _json(stream: str, raw: bytes, t: int) -> bytes:
    text = json.dumps(raw.decode("utf-8", "replace"), ensure_ascii=False)
    return f'{{"log":{text},"stream":"{stream}","time":"{logs.format_time(t)}"}}\n'.encode()


CHUNKS = st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]),
                            st.one_of(st.binary(max_size=300),
                                      st.text(max_size=200).map(lambda s: s.encode()),
                                      st.sampled_from([b"y\n" * 5000, b"\n" * 10, b"a" * (LIMIT + 5) + b"\nb\n",
                                                       b"\xe2\x98\x83" * 6000 + b"\n", b'q"\\\t\x01\n' * 50]))),
                  max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=CHUNKS)
def test_bulk_json_is_byte_for_byte_the_entry_by_entry_log(tmp_path, monkeypatch, writes):
    monkeypatch.setattr(logwrite, "time", FakeTime())
    path = str(tmp_path / "bulk.log")
    if os.path.exists(path):
        os.unlink(path)
    with LogWriter(path) as w:
        for stream, data in writes:
            w.write(stream, data)
    with open(path, "rb") as f:
        assert f.read() == reference_json(writes)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=CHUNKS)
def test_k8s_file_reads_back_what_json_file_reads_back(tmp_path, monkeypatch, writes):
    """The same output through both formats gives the same entries (k8s-file keeps raw bytes,
    which read back decoded with replacement, as json-file stores them)."""
    monkeypatch.setattr(logwrite, "time", FakeTime())
    a, b = str(tmp_path / "a.log"), str(tmp_path / "b.log")
    for p in (a, b):
        if os.path.exists(p):
            os.unlink(p)
    for path, fmt in ((a, "json-file"), (b, "k8s-file")):
        logwrite.time.now = 0
        with LogWriter(path, fmt) as w:
            for stream, data in writes:
                w.write(stream, data)
    assert logs.read(b, fmt="k8s-file") == logs.read(a)


def test_k8s_file_lines_are_podmans(tmp_path, clock):
    path = str(tmp_path / "k8s.log")
    with LogWriter(path, "k8s-file") as w:
        w.write("stdout", b"one\ntwo\npart")
        w.write("stderr", b"oops \"quoted\"\n")
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    assert [ln.split(b" ", 1)[1] for ln in lines] == [
        b"stdout F one", b"stdout F two", b"stderr F oops \"quoted\"", b"stdout P part"]
    assert lines[0].startswith(b"1970-01-01T00:00:00.000000001Z ")
    assert [e.text for e in logs.read(path, fmt="k8s-file")] == ["one\n", "two\n", 'oops "quoted"\n', "part"]


def test_k8s_file_reads_podmans_own_stamps_and_skips_junk(tmp_path):
    path = tmp_path / "podman.log"
    path.write_bytes(b"2026-12-04T15:20:43.319884982+01:00 stdout F hello\n"
                     b"garbage\n"
                     b"2026-12-04T14:20:44.000000000Z stderr P par\n"
                     b"2026-12-04T14:20:44.000000001Z stderr F tial\n"
                     b"2026-12-04T14:20:45Z stdout X nope\n")
    got = logs.read(str(path), fmt="k8s-file")
    assert [(e.stream, e.text) for e in got] == [("stdout", "hello\n"), ("stderr", "par"), ("stderr", "tial\n")]
    assert got[0].time_ns == logs.parse_time("2026-12-04T14:20:43.319884982Z")


def rotated(path: str) -> list[str]:
    return [os.path.basename(p) for p in logs.files(path)]


def test_rotation_keeps_max_file_files_of_at_most_max_size(tmp_path, clock):
    path = str(tmp_path / "ctr.log")
    with LogWriter(path, max_size=1000, max_file=3) as w:
        for i in range(200):
            w.write("stdout", f"line {i:03d}\n".encode())
    assert rotated(path) == ["ctr.log.2", "ctr.log.1", "ctr.log"]
    assert all(os.path.getsize(p) <= 1000 for p in logs.files(path))
    got = [e.text for e in logs.read(path)]
    assert got == [f"line {i:03d}\n" for i in range(200 - len(got), 200)]  # the newest, in order
    assert len(got) > 2 * 1000 // 80  # two full files and the current one
    assert [e.text for e in logs.read(path, tail=30)] == got[-30:]  # across the files
    assert logs.size_on_disk(path) == sum(os.path.getsize(p) for p in logs.files(path))


def test_rotation_of_one_big_write_splits_at_entries(tmp_path, clock):
    path = str(tmp_path / "ctr.log")
    with LogWriter(path, max_size=4096, max_file=4) as w:
        w.write("stdout", b"".join(b"%05d\n" % i for i in range(100000)))  # one bulk block
    sizes = [os.path.getsize(p) for p in logs.files(path)]
    assert len(sizes) == 4 and all(s <= 4096 for s in sizes)
    for p in logs.files(path):
        with open(p, "rb") as f:
            data = f.read()
        assert data.endswith(b"\n") and all(json.loads(line) for line in data.splitlines())
    got = [e.text for e in logs.read(path)]
    assert got[-1] == "99999\n" and got == [f"{i:05d}\n" for i in range(100000 - len(got), 100000)]


def test_max_file_one_starts_the_log_afresh(tmp_path, clock):
    path = str(tmp_path / "ctr.log")
    with LogWriter(path, max_size=200, max_file=1) as w:
        for i in range(50):
            w.write("stdout", f"{i}\n".encode())
    assert rotated(path) == ["ctr.log"] and os.path.getsize(path) <= 200
    assert logs.read(path)[-1].text == "49\n"


def test_an_entry_bigger_than_max_size_goes_alone(tmp_path, clock):
    path = str(tmp_path / "ctr.log")
    with LogWriter(path, max_size=100, max_file=2) as w:
        w.write("stdout", b"x" * 500 + b"\n")
        w.write("stdout", b"after\n")
    assert [e.text for e in logs.read(path)] == ["x" * 500 + "\n", "after\n"]


def test_a_restarted_writer_appends_and_rotates_by_the_file_it_finds(tmp_path, clock):
    path = str(tmp_path / "ctr.log")
    with LogWriter(path, max_size=300, max_file=2) as w:
        w.write("stdout", b"a\n" * 3)
    with LogWriter(path, max_size=300, max_file=2) as w:  # start again: same file, its size counts
        for _ in range(10):
            w.write("stdout", b"b\n")
    assert all(os.path.getsize(p) <= 300 for p in logs.files(path))
    assert [e.text for e in logs.read(path)][-1] == "b\n"


@pytest.mark.parametrize("max_file", [500, 3])
def test_follow_goes_on_across_rotations(tmp_path, max_file):
    """With enough files, every line in order; with few, lines the writer dropped before they
    were read are lost (as in Docker), but never repeated or out of order."""
    path = str(tmp_path / "ctr.log")
    total = 3000
    done = threading.Event()
    w = LogWriter(path, max_size=2000, max_file=max_file)

    def produce():
        for i in range(total):
            w.write("stdout", f"{i}\n".encode())
        w.close()
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    got = [e.text for e in logs.follow(path, lambda: not done.is_set(), poll=0.001)]
    t.join()
    numbers = [int(x) for x in got]
    assert numbers == sorted(set(numbers)) and numbers[-1] == total - 1
    if max_file == 500:
        assert numbers == list(range(total))
        assert len(logs.files(path)) > 10


def test_follow_batches_gives_lists_and_render_flushes_each(tmp_path, clock):
    path = str(tmp_path / "ctr.log")
    with LogWriter(path) as w:
        w.write("stdout", b"a\nb\n")
        w.write("stderr", b"c\n")
    batches = list(logs.follow_batches(path, lambda: False))
    assert [[e.text for e in b] for b in batches] == [["a\n", "b\n", "c\n"]]

    class Out(io.StringIO):
        flushes = 0

        def flush(self):
            Out.flushes += 1

    out, err = Out(), Out()
    logview.render(iter(batches), False, out, err)
    assert (out.getvalue(), err.getvalue()) == ("a\nb\n", "c\n")
    assert Out.flushes == 2  # once per output written in the batch, not once per entry


def test_render_a_list_in_runs_keeps_the_order_per_stream():
    entries = [LogEntry("stdout", "1\n", 1), LogEntry("stdout", "2\n", 2), LogEntry("stderr", "e\n", 3),
               LogEntry("stdout", "3\n", 4)]
    out = io.StringIO()
    logview.render(entries, True, out, out)
    assert out.getvalue().splitlines() == [f"{logs.format_time(n)} {t}" for n, t in
                                           ((1, "1"), (2, "2"), (3, "e"), (4, "3"))]


def test_open_writer_by_driver(tmp_path):
    path = str(tmp_path / "ctr.log")
    w = logs.open_writer(path, {"driver": "none", "max_size": 0, "max_file": 1})
    w.write("stdout", b"gone\n")
    w.close()
    assert not os.path.exists(path)
    w = logs.open_writer(path, {"driver": "k8s-file", "max_size": 100, "max_file": 2})
    assert isinstance(w, LogWriter) and w.max_size == 100 and w.max_file == 2
    w.close()
    w = logs.open_writer(path, None)  # a record from before log settings: json-file, no limit
    assert w.max_size == 0
    w.close()


def test_reading_the_none_driver_is_an_error():
    with pytest.raises(ValueError, match="none"):
        logs.read("/nonexistent", fmt="none")


DEFAULT = dict(config.LOG_DEFAULTS)


@pytest.mark.parametrize("driver, opts, want", [
    (None, [], DEFAULT),
    ("k8s-file", [], dict(DEFAULT, driver="k8s-file")),
    (None, ["max-size=10m", "max-file=3"], dict(DEFAULT, max_size=10 * 1024 * 1024, max_file=3)),
    (None, ["max-size=100k"], dict(DEFAULT, max_size=102400)),
    (None, ["max-size=1.5g"], dict(DEFAULT, max_size=int(1.5 * 1024 ** 3))),
    (None, ["max-size=2048"], dict(DEFAULT, max_size=2048)),
    (None, ["max-size=10MiB"], dict(DEFAULT, max_size=10 * 1024 * 1024)),
    ("none", [], dict(DEFAULT, driver="none")),
])
def test_log_config(driver, opts, want):
    assert logs.log_config(driver, opts, DEFAULT) == want


@pytest.mark.parametrize("driver, opts, message", [
    ("syslog", [], "unsupported log driver 'syslog'"),
    ("journald", [], "unsupported log driver"),
    ("asdf", [], "^logger: no log driver named 'asdf' is registered$"),  # Docker's words for a name it lacks too
    (None, ["max-size"], "invalid log opt 'max-size'"),
    (None, ["=3"], "invalid log opt"),
    (None, ["tag=x"], "unknown log opt 'tag' for json-file log driver"),
    (None, ["compress=yes"], "invalid value for compress 'yes'"),
    ("local", ["labels-regex=("], r"invalid labels-regex '\('"),
    ("none", ["max-size=1m"], "unknown log opt 'max-size' for none log driver"),
    (None, ["max-size=0"], "max-size must be a positive number"),
    (None, ["max-size=-1"], "invalid max-size '-1'"),
    (None, ["max-size=ten"], "invalid max-size 'ten'"),
    (None, ["max-file=0"], "max-file cannot be less than 1"),
    (None, ["max-file=x"], "invalid max-file 'x'"),
    (None, ["max-file=٣"], "invalid max-file"),  # a digit, but not an ASCII one
])
def test_log_config_refuses(driver, opts, message):
    with pytest.raises(UsageError, match=message):
        logs.log_config(driver, opts, DEFAULT)


def write_config(tmp_path, text: str) -> str:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return str(p)


def test_config_logs_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ROOTLESS_SYSTEM_CONFIG", str(tmp_path / "none.toml"))
    cfg = config.load(write_config(tmp_path, '[logs]\ndriver = "k8s-file"\nmax_size = "1m"\nmax_file = 2\n'))
    assert config.log_defaults(cfg) == {"driver": "k8s-file", "max_size": 1024 * 1024, "max_file": 2}
    cfg = config.load(write_config(tmp_path, "[logs]\nmax_size = 0\n"))
    assert config.log_defaults(cfg) == dict(DEFAULT, max_size=0)
    assert config.log_defaults(config.load(write_config(tmp_path, ""))) == DEFAULT


def test_config_logs_merge_system_then_user(tmp_path, monkeypatch):
    system = tmp_path / "system.toml"
    system.write_text('[logs]\ndriver = "none"\nmax_file = 9\n')
    monkeypatch.setenv("ROOTLESS_SYSTEM_CONFIG", str(system))
    cfg = config.load(write_config(tmp_path, '[logs]\ndriver = "json-file"\n'))
    assert config.log_defaults(cfg) == dict(DEFAULT, driver="json-file", max_file=9)


@pytest.mark.parametrize("text, where", [
    ('[logs]\ndriver = "syslog"\n', ":2"),
    ('[logs]\nmax_size = "lots"\n', ":2"),
    ("[logs]\nmax_size = -5\n", ":2"),
    ("[logs]\nmax_size = true\n", ":2"),
    ("[logs]\n\nmax_file = 0\n", ":3"),
    ('[logs]\nmax_file = "3"\n', ":2"),
    ("[logs]\nrotate = 1\n", ":2"),
    ('logs = "x"\n', ""),
])
def test_config_logs_refuses_with_file_and_line(tmp_path, monkeypatch, text, where):
    monkeypatch.setenv("ROOTLESS_SYSTEM_CONFIG", str(tmp_path / "none.toml"))
    path = write_config(tmp_path, text)
    with pytest.raises(RootlessError, match=f"bad config {path}{where}"):
        config.load(path)


@pytest.mark.parametrize("n, text", [(20 * 1024 * 1024, "20m"), (512 * 1024, "512k"), (3 * 1024 ** 3, "3g"),
                                     (1000, "1000"), (0, "0")])
def test_format_size_reads_back(n, text):
    assert config.format_size(n) == text
    assert config.parse_size(text) == n


def test_max_size_zero_refused_as_docker_with_the_config_way_out(tmp_path):
    """Docker's json-file refuses max-size=0 ("max-size must be a positive number"); the README's
    "0" (never rotated) is the config's [logs] max_size, which the hint names."""
    with pytest.raises(UsageError, match="max-size must be a positive number") as e:
        logs.log_config(None, ["max-size=0"], DEFAULT)
    assert 'max_size = "0"' in e.value.hint
    cfg = config.load(write_config(tmp_path, '[logs]\nmax_size = "0"\n'))
    assert config.log_defaults(cfg)["max_size"] == 0
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        assert "--log-opt max-size=0 is refused" in f.read()
