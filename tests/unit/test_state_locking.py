"""Tests for rootless/base/locking.py, rootless/base/atomic.py and rootless/runtime/state.py, with real processes.

Processes synchronise through marker files polled with a deadline (never a bare sleep)
or through multiprocessing primitives; children are forked.
"""

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from rootless.base import atomic, locking
from rootless.base.errors import Conflict, ContainerNotFound, RootlessError, UsageError
from rootless.base.paths import Paths
from rootless.runtime import state
from rootless.runtime.spec import ContainerSpec

CTX = multiprocessing.get_context("fork")
DEADLINE = 30.0


def wait_for(predicate, timeout: float = DEADLINE) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def touch(p: Path) -> None:
    p.write_text("")


def start(target, *args) -> multiprocessing.Process:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def finish(*procs: multiprocessing.Process) -> None:
    for proc in procs:
        proc.join(DEADLINE)
        if proc.is_alive():
            proc.kill()
            proc.join()
            pytest.fail(f"child {proc.pid} did not finish")


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(root=str(tmp_path / "store"), runroot=str(tmp_path / "run"))
    p.ensure()
    return p


def make_spec(cid: str, name: str) -> ContainerSpec:
    return ContainerSpec(id=cid, name=name, image_id="sha256:" + "1" * 64, image_name="busybox:latest",
                         layers=("sha256:" + "a" * 64,), argv=("sh",), env=("PATH=/bin",), user="",
                         workdir="/", hostname=cid[:12])


def cid(n: int, prefix: str = "") -> str:
    return (prefix + f"{n:04x}" + "0" * 64)[:64]


# ---- atomic ---------------------------------------------------------------------------
def _writer(path: str, stop: Path) -> None:
    i = 0
    while not stop.exists() and i < 100_000:
        i += 1
        atomic.write_json(path, {"n": i, "data": [i] * (20_000 + 5_000 * (i % 3))})


def test_write_json_is_never_torn(tmp_path):
    path = str(tmp_path / "big.json")
    stop = tmp_path / "stop"
    atomic.write_json(path, {"n": 0, "data": [0]})
    writer = start(_writer, path, stop)
    reads, seen = 0, set()
    end = time.monotonic() + DEADLINE
    try:
        while (reads < 300 or len(seen) < 5) and time.monotonic() < end and writer.is_alive():
            doc = atomic.read_json(path)  # must always parse
            assert set(doc["data"]) == {doc["n"]}
            seen.add(doc["n"])
            reads += 1
    finally:
        touch(stop)
        finish(writer)
    assert writer.exitcode == 0
    assert len(seen) >= 5, (reads, seen)
    assert sorted(os.listdir(tmp_path)) == ["big.json", "stop"]  # no temporary file left behind


def test_write_bytes_mode_and_replace(tmp_path):
    p = tmp_path / "f"
    atomic.write_bytes(str(p), b"one", mode=0o600)
    atomic.write_bytes(str(p), b"two", mode=0o600)
    assert p.read_bytes() == b"two"
    assert p.stat().st_mode & 0o777 == 0o600 & ~_umask()
    assert os.listdir(tmp_path) == ["f"]


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_write_json_round_trip(tmp_path):
    obj = {"b": [1, 2], "a": {"x": "ü"}, "c": None}
    atomic.write_json(str(tmp_path / "o.json"), obj)
    assert atomic.read_json(str(tmp_path / "o.json")) == obj
    assert json.loads((tmp_path / "o.json").read_text()) == obj


# ---- locking --------------------------------------------------------------------------
def _hold(lock: str, d: Path, shared: bool = False) -> None:
    with locking.locked(lock, shared=shared):
        touch(d / "held")
        if not wait_for((d / "release").exists):
            os._exit(3)
        touch(d / "releasing")


def _take(lock: str, d: Path) -> None:
    touch(d / "trying")
    with locking.locked(lock, timeout=DEADLINE):
        (d / "taken").write_text("after release" if (d / "releasing").exists() else "too early")


def test_second_process_blocks_until_the_first_releases(tmp_path):
    lock = str(tmp_path / "lock")
    holder = start(_hold, lock, tmp_path)
    assert wait_for((tmp_path / "held").exists)
    taker = start(_take, lock, tmp_path)
    assert wait_for((tmp_path / "trying").exists)
    # bounded check: while the holder holds on, the taker must not get in
    assert not wait_for((tmp_path / "taken").exists, timeout=0.3)
    touch(tmp_path / "release")
    finish(holder, taker)
    assert (holder.exitcode, taker.exitcode) == (0, 0)
    assert (tmp_path / "taken").read_text() == "after release"


def test_lock_timeout_names_the_holder(tmp_path):
    lock = str(tmp_path / "lock")
    holder = start(_hold, lock, tmp_path)
    try:
        assert wait_for((tmp_path / "held").exists)
        t0 = time.monotonic()
        with pytest.raises(RootlessError, match=f"timed out waiting for lock .* held by pid {holder.pid}$") as e:
            with locking.locked(lock, timeout=0.2):
                pass
        assert time.monotonic() - t0 >= 0.2
        assert e.value.hint
    finally:
        touch(tmp_path / "release")
        finish(holder)
    with locking.locked(lock, timeout=1):  # free again
        assert Path(lock).read_text() == str(os.getpid())


def test_lock_of_a_killed_holder_is_released(tmp_path):
    lock = str(tmp_path / "lock")
    holder = start(_hold, lock, tmp_path)
    assert wait_for((tmp_path / "held").exists)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(DEADLINE)
    with locking.locked(lock, timeout=DEADLINE):
        pass


def test_shared_locks_coexist_and_exclude_writers(tmp_path):
    lock = str(tmp_path / "lock")
    holder = start(_hold, lock, tmp_path, True)
    try:
        assert wait_for((tmp_path / "held").exists)
        with locking.locked(lock, timeout=2, shared=True):
            pass
        with pytest.raises(RootlessError, match="timed out"):
            with locking.locked(lock, timeout=0.1):
                pass
    finally:
        touch(tmp_path / "release")
        finish(holder)


def test_lock_is_reentrant_across_sequential_blocks(tmp_path):
    lock = str(tmp_path / "sub" / "lock")
    os.mkdir(tmp_path / "sub")
    for _ in range(3):
        with locking.locked(lock, timeout=1):
            pass


# ---- state.create under concurrency ------------------------------------------------------
def _create(paths: Paths, spec: ContainerSpec, barrier, out: Path) -> None:
    barrier.wait(DEADLINE)
    try:
        state.create(paths, spec, "copy", generated_name=False)
        result = "ok"
    except Conflict as e:
        result = "conflict: " + str(e)
    except BaseException as e:  # reported to the parent
        result = "error: " + repr(e)
    (out / spec.id).write_text(result)


def run_creators(paths: Paths, specs: list[ContainerSpec], out: Path) -> dict[str, str]:
    barrier = CTX.Barrier(len(specs))
    procs = [start(_create, paths, s, barrier, out) for s in specs]
    finish(*procs)
    return {s.id: (out / s.id).read_text() for s in specs}


def test_concurrent_create_same_name_exactly_one_wins(paths, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    specs = [make_spec(cid(i), "same") for i in range(20)]
    results = run_creators(paths, specs, out)
    winners = [c for c, r in results.items() if r == "ok"]
    assert len(winners) == 1, results
    for c, r in results.items():
        if c != winners[0]:
            assert r.startswith('conflict: the container name "/same" is already in use') and winners[0] in r
    recs = state.all_records(paths)
    assert [r["id"] for r in recs] == winners
    assert not [c for c in specs if c.id != winners[0] and os.path.exists(paths.container(c.id))]


def test_concurrent_create_distinct_names_all_succeed(paths, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    specs = [make_spec(cid(i), f"c{i}") for i in range(20)]
    results = run_creators(paths, specs, out)
    assert set(results.values()) == {"ok"}, results
    recs = state.all_records(paths)
    assert len(recs) == 20
    assert {r["name"] for r in recs} == {f"c{i}" for i in range(20)}
    for r in recs:
        assert r["state"]["status"] == "created"
        assert ContainerSpec.from_json(r["spec"]) == make_spec(r["id"], r["name"])
        assert os.path.isdir(paths.upper(r["id"])) and os.path.isdir(paths.work(r["id"]))


def test_create_generated_name_clash(paths):
    state.create(paths, make_spec(cid(1), "taken"), "copy", generated_name=True)
    with pytest.raises(Conflict, match="generated name clash"):
        state.create(paths, make_spec(cid(2), "taken"), "copy", generated_name=True)


@pytest.mark.parametrize("name", ["", "-x", ".x", "_x", "a b", "a/b", "é"])
def test_create_rejects_invalid_names(paths, name):
    with pytest.raises(UsageError, match="invalid container name"):
        state.create(paths, make_spec(cid(1), name), "copy", generated_name=False)
    assert state.all_records(paths) == []


def test_record_contents_and_update_state(paths):
    rec = state.create(paths, make_spec(cid(7), "web"), "kernel", generated_name=False)
    assert rec["rootfs_method"] == "kernel" and rec["version"] == state.RECORD_VERSION
    assert rec["created"].endswith("Z")
    assert atomic.read_json(paths.container_record(cid(7))) == rec
    new = state.update_state(paths, cid(7), status="running", pid=42)
    assert new["state"]["status"] == "running" and new["state"]["pid"] == 42
    assert state.lookup(paths, "web")["state"]["pid"] == 42
    assert state.update_state(paths, cid(8), status="running") is None


# ---- lookup -----------------------------------------------------------------------------
@pytest.fixture
def three(paths):
    ids = {"web": cid(1, "abc1"), "db": cid(2, "abc2"), "cache": cid(3, "def")}
    for name, c in ids.items():
        state.create(paths, make_spec(c, name), "copy", generated_name=False)
    return ids


@pytest.mark.parametrize("ref, name", [
    ("web", "web"),
    ("db", "db"),
    ("abc1", "web"),
    ("abc2", "db"),
    ("d", "cache"),
    ("def0", "cache"),
])
def test_lookup(paths, three, ref, name):
    assert state.lookup(paths, ref)["name"] == name


def test_lookup_full_id(paths, three):
    for name, c in three.items():
        assert state.lookup(paths, c)["name"] == name


@pytest.mark.parametrize("ref", ["a", "abc"])
def test_lookup_ambiguous_prefix(paths, three, ref):
    with pytest.raises(RootlessError, match="ambiguous"):
        state.lookup(paths, ref)


@pytest.mark.parametrize("ref", ["nope", "abc3", "WEB", ""])
def test_lookup_missing(paths, three, ref):
    with pytest.raises(ContainerNotFound, match="No such container"):
        state.lookup(paths, ref)


def test_corrupt_record_is_listed(paths, three):
    bad = cid(9, "bad")
    os.mkdir(paths.container(bad))
    Path(paths.container_record(bad)).write_text("{truncated")
    recs = {r["id"]: r for r in state.all_records(paths)}
    assert recs[bad] == state.damaged(bad)
    assert recs[bad]["corrupt"] is True and recs[bad]["state"]["status"] == "dead"
    assert state.lookup(paths, "bad")["corrupt"] is True
    assert state.update_state(paths, bad, status="running") is None


def test_empty_reference_does_not_match_a_corrupt_record(paths, three):
    bad = cid(9, "bad")
    os.mkdir(paths.container(bad))
    Path(paths.container_record(bad)).write_text("{truncated")
    with pytest.raises(ContainerNotFound):
        state.lookup(paths, "")


# ---- pid_start_time ----------------------------------------------------------------------
def _renamed_sleeper(d: Path) -> None:
    with open("/proc/self/comm", "w") as f:
        f.write("a) b (c d")
    touch(d / "renamed")
    wait_for((d / "release").exists)


def test_pid_start_time():
    mine = state.pid_start_time(os.getpid())
    assert mine.isdigit()
    assert state.pid_start_time(os.getpid()) == mine


def test_pid_start_time_with_parentheses_in_the_command_name(tmp_path):
    child = start(_renamed_sleeper, tmp_path)
    try:
        assert wait_for((tmp_path / "renamed").exists)
        value = state.pid_start_time(child.pid)
        assert value.isdigit()
        assert int(value) >= int(state.pid_start_time(os.getpid()))
    finally:
        touch(tmp_path / "release")
        finish(child)


def test_pid_start_time_of_a_missing_process():
    assert state.pid_start_time(2**22 + 1) == ""  # above pid_max's largest possible value


def test_a_keeper_removes_its_runtime_files_before_it_records_the_exit(tmp_path, monkeypatch):
    """``stop`` returns once the exit is recorded and a ``start`` may make the runtime directory
    anew at once (restart): by then the old keeper must be done removing it."""
    from types import SimpleNamespace

    from rootless.runtime import child
    run_dir = tmp_path / "run" / "c1"
    (run_dir / "sub").mkdir(parents=True)
    seen = []
    monkeypatch.setattr(child.state, "update_state", lambda *a, **kw: seen.append((run_dir.exists(), kw["status"])))
    plan = SimpleNamespace(spec=SimpleNamespace(id="c1", remove=False), paths=None, run_dir=str(run_dir),
                           remove_dirs=())
    child._finish(plan, 3, "")
    assert seen == [(False, "exited")]
