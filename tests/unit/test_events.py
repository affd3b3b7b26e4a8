"""The event log (rootless/runtime/events.py), its reading for ``events`` and the API
(rootless/engine/events.py) and what ``events`` prints (rootless/cli/eventview.py): Docker's
format, Docker's filters, rotation under a follower, and appenders in several processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from types import SimpleNamespace

import pytest

from rootless.base.errors import UsageError
from rootless.base.paths import Paths
from rootless.cli import eventview
from rootless.engine import events as event_ops
from rootless.runtime import events
from rootless.runtime.spec import ContainerSpec
from tests.conftest import wait_for

CID = "a" * 64


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    os.makedirs(p.runroot, 0o700)
    return p


def lines(paths: Paths) -> list[str]:
    with open(paths.events_log) as f:
        return f.read().splitlines()


# ---- the format ------------------------------------------------------------------------------------
def test_a_container_event_is_dockers_json_with_the_older_fields():
    ev = events.make("container", "die", CID, {"exitCode": 3, "image": "busybox:latest", "name": "x"},
                     time_ns=1_700_000_000_123_456_789)
    assert ev == {"status": "die", "id": CID, "from": "busybox:latest", "Type": "container", "Action": "die",
                  "Actor": {"ID": CID, "Attributes": {"exitCode": "3", "image": "busybox:latest", "name": "x"}},
                  "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789}
    assert list(ev) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]


def test_image_events_keep_status_and_id_and_volume_events_neither():
    image = events.make("image", "pull", "busybox:latest", {"name": "busybox"})
    assert (image["status"], image["id"], "from" in image) == ("pull", "busybox:latest", False)
    volume = events.make("volume", "create", "v1", {"driver": "local"})
    assert not {"status", "id", "from"} & set(volume)


def test_container_attributes_are_labels_then_image_and_name():
    spec = ContainerSpec(id=CID, name="web", image_id="sha256:" + "b" * 64, image_name="busybox:latest",
                         layers=(), argv=("true",), env=(), user="", workdir="/", hostname="h",
                         labels={"name": "label-loses", "com.example": "1"})
    want = {"name": "web", "com.example": "1", "image": "busybox:latest", "exitCode": 0}
    assert events.container_attributes(spec, exitCode=0) == want
    assert events.container_attributes(spec.to_json(), exitCode=0) == want


def test_append_writes_one_line_per_event_and_skips_build_steps(paths):
    spec = {"id": CID, "name": "x", "image_name": "busybox:latest", "labels": {"k": "v"}}
    events.container(paths, "create", spec)
    events.container(paths, "start", dict(spec, id="b" * 64, labels={events.BUILD_LABEL: "step"}))
    events.append(paths, "volume", "create", "v1", {"driver": "local"})
    got = [json.loads(line) for line in lines(paths)]
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in got] == [("container", "create", CID),
                                                                         ("volume", "create", "v1")]
    assert got[0]["Actor"]["Attributes"] == {"k": "v", "image": "busybox:latest", "name": "x"}
    assert os.stat(paths.events_log).st_mode & 0o777 == 0o600


def test_append_never_fails_the_operation(tmp_path):
    missing = Paths(str(tmp_path / "store"), str(tmp_path / "no" / "such" / "dir"))
    events.append(missing, "container", "start", CID, {"name": "x"})  # no runtime directory: lost, silently
    events.container(missing, "start", {"broken": True})
    events.container(missing, "start", None)
    assert list(events.read(missing)) == []


# ---- filters (Docker's daemon/events/filter.go) ----------------------------------------------------
def ev(type_="container", action="start", actor=CID, **attrs):
    base = {"container": {"image": "busybox:latest", "name": "web"}, "image": {"name": "busybox:latest"},
            "volume": {"driver": "local"}}[type_]
    return events.make(type_, action, actor, {**base, **attrs}, time_ns=1)


FILTER_TABLE = [
    ({}, ev(), True),
    ({"type": ["container"]}, ev(), True),
    ({"type": ["image"]}, ev(), False),
    ({"type": ["image", "container"]}, ev(), True),  # one key: alternatives
    ({"event": ["die"]}, ev(action="die"), True),
    ({"event": ["die"]}, ev(action="start"), False),
    ({"event": ["start", "die"]}, ev(action="die"), True),
    ({"event": ["health_status"]}, ev(action="health_status: healthy"), True),  # matched by prefix
    ({"container": ["web"]}, ev(), True),
    ({"container": [CID]}, ev(), True),
    ({"container": ["aaaa"]}, ev(), True),  # an id prefix
    ({"container": ["we"]}, ev(), True),  # Docker's fuzzy match: a name prefix too
    ({"container": ["db"]}, ev(), False),
    ({"container": ["db", "web"]}, ev(), True),
    ({"container": ["web"]}, ev("volume", "create", "v1"), False),  # restricts every type, as in Docker
    ({"container": ["web"], "event": ["die"]}, ev(), False),  # keys: all must match
    ({"container": ["web"], "event": ["start"]}, ev(), True),
    ({"image": ["busybox"]}, ev(), True),  # the tag stripped
    ({"image": ["busybox:latest"]}, ev(), True),
    ({"image": ["alpine"]}, ev(), False),
    ({"image": ["busybox"]}, ev("image", "untag", "sha256:" + "c" * 64), True),  # an image event's name
    ({"image": ["sha256:" + "c" * 64]}, ev("image", "delete", "sha256:" + "c" * 64, name="x"), True),
    ({"label": ["com.example"]}, ev(**{"com.example": "1"}), True),
    ({"label": ["com.example=1"]}, ev(**{"com.example": "1"}), True),
    ({"label": ["com.example=2"]}, ev(**{"com.example": "1"}), False),
    ({"label": ["com.example"]}, ev(), False),
    ({"label": ["a=1", "b=2"]}, ev(a="1", b="2"), True),  # labels: every one must match (Docker's MatchKVList)
    ({"label": ["a=1", "b=3"]}, ev(a="1", b="2"), False),
    ({"volume": ["v1"]}, ev("volume", "destroy", "v1"), True),
    ({"volume": ["v2"]}, ev("volume", "destroy", "v1"), False),
    ({"scope": ["local"]}, ev(), True),
    ({"scope": ["swarm"]}, ev(), False),
]


@pytest.mark.parametrize(("filters", "event", "want"), FILTER_TABLE,
                         ids=[f"{f}-{e['Type']}-{e['Action']}" for f, e, _ in FILTER_TABLE])
def test_filters(filters, event, want):
    assert events.matches(event, filters) is want


def test_filters_from_flags_and_from_the_api():
    assert event_ops.parse_filters(["type=container", "event=die", "event=start", "label=a=b"]) == {
        "type": ["container"], "event": ["die", "start"], "label": ["a=b"]}
    assert event_ops.parse_filters({"type": ["container"], "label": ["a=b"]}) == {"type": ["container"],
                                                                               "label": ["a=b"]}
    assert event_ops.parse_filters({"event": {"die": True, "start": False}}) == {"event": ["die"]}
    assert event_ops.parse_filters(None) == {}
    with pytest.raises(UsageError, match="invalid filter 'colour'"):
        event_ops.parse_filters(["colour=red"])
    with pytest.raises(UsageError, match="expected name=value"):
        event_ops.parse_filters(["type"])


# ---- reading and following -------------------------------------------------------------------------
def write(paths: Paths, n: int, start: int = 0, **attrs) -> None:
    for i in range(start, start + n):
        events.append(paths, "container", "start", CID, {"name": "x", "seq": f"{i:04d}", **attrs})


def seqs(evs) -> list[int]:
    return [int(e["Actor"]["Attributes"]["seq"]) for e in evs]


def test_read_bounds_by_time_and_filters(paths):
    write(paths, 3)
    t = time.time_ns()
    write(paths, 2, start=3)
    events.append(paths, "volume", "create", "v1", {})
    assert seqs(events.read(paths, until_ns=t)) == [0, 1, 2]
    assert seqs(events.read(paths, since_ns=t, filters={"type": ["container"]})) == [3, 4]
    assert len(list(events.read(paths))) == 6


def test_read_skips_malformed_and_torn_lines(paths):
    write(paths, 1)
    with open(paths.events_log, "ab") as f:
        f.write(b'not json\n["a list"]\n{"Type":"container","Action":"st')  # a line still being written
    assert seqs(events.read(paths)) == [0]


def feed_until_seen(paths: Paths, got: list, seq: int) -> None:
    """Append event ``seq`` at each poll until the follower (in a thread) has seen one: when it
    starts following from now is not observable from outside."""
    def step() -> bool:
        write(paths, 1, start=seq)
        return bool(got)
    wait_for(step, what="the follower to see a new event")


def test_follow_from_now_sees_only_new_events_and_stops_when_asked(paths):
    write(paths, 2)
    stop = threading.Event()
    got: list[dict] = []
    t = threading.Thread(target=lambda: got.extend(events.follow(paths, stop=stop.is_set, poll=0.005)))
    t.start()
    try:
        feed_until_seen(paths, got, 7)
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    assert got and set(seqs(got)) == {7}  # none of the past ones


def test_follow_with_since_gives_the_past_then_ends_at_until(paths):
    since = time.time_ns()
    write(paths, 2)
    until = time.time_ns() + 300_000_000
    started = time.monotonic()
    got = list(events.follow(paths, since_ns=since, until_ns=until, poll=0.01))
    assert seqs(got) == [0, 1]
    assert time.monotonic() - started < 5


def test_follow_across_rotations_in_one_process(paths, monkeypatch):
    """Lazily driven (the generator reads only when asked), so each case is exact: one rotation
    while the follower is in the middle of a file, then two between two looks (the middle file is
    read from events.log.1, the first from the follower's open descriptor)."""
    write(paths, 1)
    size = os.path.getsize(paths.events_log)  # every line has this size (seq has 4 digits)
    os.unlink(paths.events_log)
    monkeypatch.setattr(events, "MAX_SIZE", 3 * size + size // 2)  # a file holds 4 lines
    g = events.follow(paths, since_ns=0, poll=0.001)
    write(paths, 2)
    assert seqs([next(g), next(g)]) == [0, 1]
    a = os.stat(paths.events_log).st_ino
    write(paths, 4, start=2)  # 2, 3 end the file being read, which is rotated; 4, 5 start a new one
    assert os.stat(paths.events_log + ".1").st_ino == a
    assert seqs([next(g) for _ in range(4)]) == [2, 3, 4, 5]
    b = os.stat(paths.events_log).st_ino
    write(paths, 8, start=6)  # two rotations: 6, 7 end b; 8-11 fill c (now events.log.1); 12, 13
    assert os.stat(paths.events_log + ".1").st_ino != b  # b, still open here, is gone from the directory
    assert seqs([next(g) for _ in range(8)]) == list(range(6, 14))
    g.close()
    assert [len(lines(paths)), os.path.getsize(paths.events_log + ".1")] == [2, 4 * size]


def _appender(root: str, runroot: str, writer: int, n: int, max_size: int, pad: int, pause: float,
              seen=None, writers: int = 1, window: int = 0) -> None:
    events.MAX_SIZE = max_size
    p = Paths(root, runroot)
    for i in range(n):
        while seen is not None and seen.value + window < i * writers:  # a follower at most `window` behind
            time.sleep(0.001)
        events.append(p, "container", "start", CID, {"writer": writer, "seq": i, "pad": "x" * ((i * 997) % pad)})
        if pause:
            time.sleep(pause)


def _run_appenders(paths: Paths, writers: int, n: int, max_size: int, pad: int, pause: float, seen=None,
                   window: int = 0) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_appender, args=(paths.root, paths.runroot, w, n, max_size, pad, pause, seen,
                                                 writers, window))
             for w in range(writers)]
    for p in procs:
        p.start()
    return procs


def _join(procs) -> None:
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def _check_complete(evs: list[dict], writers: int, n: int) -> None:
    by_writer: dict[int, list[int]] = {}
    for e in evs:
        a = e["Actor"]["Attributes"]
        assert a["pad"] == "x" * len(a["pad"])
        by_writer.setdefault(int(a["writer"]), []).append(int(a["seq"]))
    assert by_writer == {w: list(range(n)) for w in range(writers)}


def test_concurrent_appenders_never_tear_a_line(paths):
    # lines up to 3 pages: an O_APPEND write of a whole line is never interleaved with another
    _join(_run_appenders(paths, writers=4, n=300, max_size=1 << 30, pad=12000, pause=0))
    raw = lines(paths)
    assert len(raw) == 1200
    _check_complete([json.loads(line) for line in raw], 4, 300)  # every line parses: none torn


def test_a_follower_sees_every_event_of_concurrent_appenders_across_rotations(paths):
    """Four processes append ~2.4 MB, rotating the log at 256 KiB several times, while a follower
    reads: it sees every event once, in each writer's order. The writers stay at most 32 events (about a
    quarter of a file) ahead of the follower: one that lags two whole rotations behind (a thread starved
    of CPU on a loaded machine) has lost the file between, by design (one old generation is kept)."""
    since = time.time_ns()
    seen = multiprocessing.get_context("fork").Value("i", 0, lock=False)
    procs = _run_appenders(paths, writers=4, n=300, max_size=256 * 1024, pad=4000, pause=0.001, seen=seen,
                           window=32)
    stop = threading.Event()
    got: list[dict] = []

    def follower() -> None:
        for ev in events.follow(paths, since_ns=since, stop=stop.is_set, poll=0.002):
            got.append(ev)
            seen.value = len(got)

    t = threading.Thread(target=follower)
    t.start()
    try:
        _join(procs)
        wait_for(lambda: len(got) >= 1200, timeout=30, what="the follower to see every event")
    finally:
        stop.set()
        t.join(10)
    assert os.path.exists(paths.events_log + ".1")
    assert len(got) == 1200
    _check_complete(got, 4, 300)


# ---- the engine's stream ---------------------------------------------------------------------------
def test_stream_with_a_past_until_reads_and_returns(paths):
    ctx = SimpleNamespace(paths=paths)
    write(paths, 2)
    events.append(paths, "image", "pull", "busybox:latest", {"name": "busybox"})
    got = list(event_ops.stream(ctx, since="0", until=str(time.time() + 0.0), filters=["type=container"]))
    assert seqs(got) == [0, 1]
    with pytest.raises(UsageError, match="invalid time"):
        list(event_ops.stream(ctx, since="yesterday"))


def test_stream_without_since_or_until_follows_from_now(paths):
    ctx = SimpleNamespace(paths=paths)
    write(paths, 2)
    stop = threading.Event()
    got: list[dict] = []
    t = threading.Thread(target=lambda: got.extend(event_ops.stream(ctx, filters=["type=container"],
                                                                    stop=stop.is_set)))
    t.start()
    try:
        feed_until_seen(paths, got, 9)
    finally:
        stop.set()
        t.join(10)
    assert set(seqs(got)) == {9}


# ---- what the CLI prints ---------------------------------------------------------------------------
@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_default_line_is_dockers(utc):
    e = events.make("container", "start", CID, {"name": "x", "image": "busybox", "b": "2"},
                    time_ns=1_796_457_600_123_456_789)
    assert eventview.line(e) == (f"2026-12-05T08:00:00.123456789Z container start {CID} "
                                 "(b=2, image=busybox, name=x)\n")
    v = events.make("volume", "create", "v1", {}, time_ns=1_796_457_600_000_000_000)
    assert eventview.line(v) == "2026-12-05T08:00:00.000000000Z volume create v1\n"


def test_local_time_has_its_offset(monkeypatch):
    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    try:
        assert eventview.format_time(1_796_457_600_000_000_001) == "2026-12-05T09:00:00.000000001+01:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_format_json_and_templates():
    e = events.make("container", "die", CID, {"name": "x", "image": "busybox", "exitCode": 1}, time_ns=5)
    want = json.dumps(e, separators=(",", ":")) + "\n"
    assert eventview.printer("json")(e) == want
    assert eventview.printer("{{json .}}")(e) == want
    out = eventview.printer("{{.Type}} {{.Status}} {{.ID}} {{.Actor.ID}} {{.Actor.Attributes.exitCode}} "
                            "{{.From}} {{.Scope}} {{.TimeNano}}")(e)
    assert out == f"container die {CID} {CID} 1 busybox local 5\n"
    assert eventview.printer("{{.Actor.Attributes.nothing}}")(e) == "<no value>\n"  # a map, as in Go
    with pytest.raises(UsageError):
        eventview.printer("{{.Nope}}")(e)  # a struct: an unknown field is an error
    with pytest.raises(UsageError):
        eventview.printer("{{.Type")  # refused before any event is read
