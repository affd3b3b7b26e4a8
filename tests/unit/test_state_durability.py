"""Which container records are made durable (fsync'd) and which only atomic: a ``--rm`` container's
record is removed when it ends, so its writes skip the fsyncs that a kept container's need."""

import os

import pytest

from rootless.base import atomic
from rootless.base.paths import Paths
from rootless.runtime import state
from rootless.runtime.spec import ContainerSpec


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(root=str(tmp_path / "store"), runroot=str(tmp_path / "run"))
    p.ensure()
    return p


@pytest.fixture
def fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd):
        calls.append(fd)
        return real(fd)
    monkeypatch.setattr(os, "fsync", counting)
    return calls


def make_spec(n: int, remove: bool) -> ContainerSpec:
    cid = (f"{n:04x}" + "0" * 64)[:64]
    return ContainerSpec(id=cid, name=f"c{n}", image_id="sha256:" + "1" * 64, image_name="busybox:latest",
                         layers=("sha256:" + "a" * 64,), argv=("sh",), env=("PATH=/bin",), user="",
                         workdir="/", hostname=cid[:12], remove=remove)


def test_a_kept_containers_record_is_fsynced_at_create_and_at_each_state_change(paths, fsyncs):
    spec = make_spec(1, remove=False)
    state.create(paths, spec, "native", False)
    assert len(fsyncs) >= 2  # the file and its directory
    del fsyncs[:]
    state.update_state(paths, spec.id, status="running", pid=42)
    assert len(fsyncs) >= 2
    assert state.read(paths, spec.id)["state"]["status"] == "running"


def test_a_rm_containers_record_is_written_atomically_without_fsync(paths, fsyncs):
    spec = make_spec(2, remove=True)
    rec = state.create(paths, spec, "native", False)
    state.update_state(paths, spec.id, status="running", pid=42)
    assert fsyncs == []
    got = state.read(paths, spec.id)
    assert got["state"]["status"] == "running" and got["spec"] == rec["spec"]
    # no temporary file left beside it
    assert [n for n in os.listdir(paths.container(spec.id)) if n.startswith(".tmp")] == []


def test_write_bytes_without_sync_is_still_atomic(tmp_path, fsyncs):
    path = str(tmp_path / "f.json")
    atomic.write_json(path, {"a": 1})
    assert len(fsyncs) == 2
    atomic.write_json(path, {"a": 2}, sync=False)
    assert len(fsyncs) == 2
    assert atomic.read_json(path) == {"a": 2}
    assert os.listdir(tmp_path) == ["f.json"]
