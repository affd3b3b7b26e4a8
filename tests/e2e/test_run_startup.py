"""``run --rm`` without work a removed container does not need (issue 25): its writable layer is
mounted ``volatile`` (no syncfs of the store's filesystem when it is unmounted; the layer is
deleted right after), while a kept container's layer stays durable; and a run loads no module
its start does not use, in none of its processes (the CLI, the keeper, PID 1 before its exec)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import Rootless, rootless_argv

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


# Never needed by `run --rm --network none busybox true`: typer (the fast parser reads the line),
# python-prctl (the start's prctl calls are base.syscalls'), the health modules (no healthcheck).
UNUSED = ("typer", "click", "prctl", "_prctl", "rootless.runtime.health", "rootless.runtime.healthmonitor")


def _loaded(rl: Rootless, *args: str) -> tuple[set[str], str]:
    """The modules each process of the command imported (-X importtime's lines on stderr), and its output."""
    # the command in its own CLI (ROOTLESS_FORKER=0): a warm one's modules are the forker's, loaded once
    env = dict(rl.env, PYTHONPROFILEIMPORTTIME="1", ROOTLESS_FORKER="0")
    cp = subprocess.run(rootless_argv() + list(args), env=env,
                        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    return ({line.rpartition("|")[2].strip() for line in cp.stderr.splitlines() if line.startswith("import time:")},
            cp.stdout)


def test_a_run_loads_no_module_its_start_does_not_use(bb):
    loaded, _ = _loaded(bb, "run", "--rm", "--network", "none", "busybox", "true")
    assert "rootless.runtime.child" in loaded and "rootless.runtime.logwrite" in loaded  # CLI and keeper seen
    assert sorted(loaded.intersection(UNUSED)) == []


def test_a_healthcheck_and_init_still_load_what_they_use(bb):
    loaded, out = _loaded(bb, "run", "--rm", "--network", "none", "--init", "--health-cmd", "true",
                          "--health-interval", "1s", "busybox", "sh", "-c", "sleep 2; cat /proc/1/comm")
    assert {"rootless.runtime.healthmonitor", "prctl"} <= loaded
    assert out == "rootless-init\n"  # its title set by python-prctl, imported before pivot_root


def _preloaded(rl: Rootless) -> set[str]:
    """What the warm forker has loaded before it forks a command or a keeper: the interpreter's own
    start-up, both lists and what they import."""
    code = ("import importlib, sys\nfrom rootless.cli import warm\nfrom rootless.runtime import forker\n"
            "for m in forker.PRELOAD + warm.PRELOAD:\n    importlib.import_module(m)\nprint(' '.join(sys.modules))")
    cp = subprocess.run([sys.executable, "-c", code], env=dict(rl.env, PYTHONPROFILEIMPORTTIME="1"),
                        capture_output=True, text=True, timeout=60, check=True)
    # import_module's own imports are not in -X importtime's lines (sys.modules has them); a module
    # that leaves sys.modules is only in the lines (apport's hook, of Debian's sitecustomize)
    return set(cp.stdout.split()) | {line.rpartition("|")[2].strip() for line in cp.stderr.splitlines()
                                     if line.startswith("import time:")}


def test_a_warm_command_imports_nothing_the_forker_has_not_loaded(bb):
    """Each module a frequent command imports after its fork costs every run its import (issue 25:
    five of them were 2 ms of a ``run``'s 40; with a config file, tomllib was 6 more)."""
    preloaded = _preloaded(bb)
    bb("run", "--rm", "busybox", "true")  # a new store's one-time work (its overlay and slirp4netns probes)
    commands = [("run", "--rm", "--network", "none", "busybox", "true"),
                ("run", "--rm", "-p", "127.0.0.1::80", "busybox", "true"),
                ("run", "-d", "--name", "warm", "busybox", "sleep", "60"),
                ("exec", "warm", "true"), ("ps", "-a"), ("inspect", "warm"), ("stop", "-t", "0", "warm"),
                ("rm", "warm")]
    for args in commands:
        loaded, _ = _loaded(bb, *args)
        assert sorted(loaded - preloaded) == [], (args, " ".join(sorted(loaded - preloaded)))
