"""``run --rm`` without work a removed container does not need (issue 25): its writable layer is
mounted ``volatile`` (no syncfs of the store's filesystem when it is unmounted; the layer is
deleted right after), while a kept container's layer stays durable."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Rootless

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def _root_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.split()[1:2] == ["/"])


def _method(rl: Rootless) -> str:
    return json.loads((rl.root / "probe.json").read_text())["method"]


def test_a_removed_containers_writable_layer_is_volatile_a_kept_ones_is_not(bb):
    removed = bb("run", "--rm", "--network", "none", "busybox", "cat", "/proc/mounts").out
    if _method(bb) != "kernel":
        pytest.skip("fuse-overlayfs does not show its options in /proc/mounts")
    assert "volatile" in _root_line(removed)  # shown as fsync=volatile
    kept = bb("run", "--name", "kept", "--network", "none", "busybox", "cat", "/proc/mounts").out
    assert "volatile" not in _root_line(kept)
    bb("start", "-a", "kept")  # a kept container starts again on the same layer (volatile would refuse)
    bb("rm", "kept")
    assert bb("ps", "-aq").out == ""
    assert not bb.leftovers()


def test_a_removed_container_written_before_its_start_starts(bb, tmp_path):
    """``cp`` into a created ``--rm`` container mounts its layer (durable) before the start's
    volatile mount; the kernel refuses a second mount only after a volatile one."""
    bb("create", "--rm", "--name", "c", "--network", "none", "busybox", "cat", "/in")
    (tmp_path / "in").write_text("copied\n")
    bb("cp", str(tmp_path / "in"), "c:/in")
    assert bb("start", "-a", "c").out == "copied\n"
    assert bb("ps", "-aq").out == ""
    assert not bb.leftovers()
