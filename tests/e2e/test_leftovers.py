"""What killed commands leave in the store (issue 22, item 10): ``system check`` names it,
``system df`` counts it, ``image prune``/``builder prune``/``system prune`` remove it, and nothing
a live command is still writing is touched."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import rootless_argv, wait_for

pytestmark = pytest.mark.userns


def _kill_when(rl, argv: list[str], ready, what: str) -> None:
    """Start ``rootless ARGV``, SIGKILL it once ``ready()`` holds."""
    p = subprocess.Popen(rootless_argv() + argv, env=rl.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready() or p.poll() is not None, timeout=120, what=what)
        assert p.poll() is None, f"rootless {' '.join(argv)} ended before it could be killed"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def _problems(rl) -> list[str]:
    r = rl("system", "check", expect=None)
    return r.out.splitlines() if r.code == 1 else []


def _leftovers_row(rl) -> list[str]:
    rows = [ln.split() for ln in rl("system", "df").out.splitlines() if ln.startswith("Leftovers")]
    return rows[0] if rows else []


def test_killed_commit_is_named_counted_and_pruned(busybox):
    rl = busybox
    rl("run", "--name", "big", "--network", "none", "busybox", "sh", "-c",
       "head -c 60000000 /dev/urandom > /big")
    tmp = rl.root / "tmp"

    def writing() -> list[Path]:
        return [p for p in tmp.glob("commit-*.tar") if p.stat().st_size > 1 << 20]

    _kill_when(rl, ["commit", "big", "big:1"], writing, "the commit to write its layer")
    time.sleep(0.5)  # its helper may write on for a moment
    [tar] = tmp.glob("commit-*.tar")
    problems = _problems(rl)
    assert any(str(tar) in line and "left by a command that is gone" in line for line in problems), problems
    row = _leftovers_row(rl)
    assert row and row[1] == "1" and row[3] != "0B", row
    out = rl("system", "prune", "-f").out
    assert "Deleted Containers:" in out and str(tar) in out
    assert re.search(r"^Total reclaimed space: \d+(\.\d+)?MB$", out, re.M), out
    assert not tar.exists() and list(tmp.iterdir()) == []
    assert _leftovers_row(rl) == []
    assert rl("system", "check").out.startswith("the store ")


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _holder(path: Path) -> subprocess.Popen:
    """A process that holds ``path``'s flock, as a pull downloading into it does."""
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"held\n"
    return p


def test_only_leftovers_of_gone_processes_are_swept(busybox):
    """A live owner's temporary files stay (a pid that is alive and older than the file); a dead
    owner's go (a pid taken since by a newer process: tests/unit/test_atomic_enospc.py)."""
    rl = busybox
    tmp, layers = rl.root / "tmp", rl.root / "layers"
    tmp.mkdir(exist_ok=True)
    live = subprocess.Popen(["sleep", "600"])
    holder = None
    try:
        time.sleep(0.01)
        dead = _dead_pid()
        live_files = [tmp / f"blob-{live.pid}-1", tmp / f"commit-0123456789ab-{live.pid}.tar",
                      tmp / f"build-{live.pid}-abcd1234", layers / f".tmp-0123456789ab-{live.pid}-5"]
        dead_files = [tmp / f"blob-{dead}-1", tmp / f"commit-0123456789ab-{dead}.tar",
                      tmp / f"build-{dead}-abcd1234", layers / f".tmp-0123456789ab-{dead}-5",
                      rl.root / f".tmp-images.json-{dead}", rl.root / "containers" / (".new-" + "c" * 64),
                      rl.root / "volumes" / ".new-vol1", rl.root / "volumes" / f".del-vol2-{dead}"]
        for p in live_files + dead_files:
            if p.name.startswith(("build-", ".tmp-0123", ".new-", ".del-")):
                p.mkdir(parents=True)
                (p / "f").write_bytes(b"x" * 1000)
            else:
                p.write_bytes(b"x" * 1000)
        held, loose = tmp / ("partial-" + "a" * 64), tmp / ("partial-" + "b" * 64)
        held.write_bytes(b"y" * 5000)
        loose.write_bytes(b"y" * 5000)
        holder = _holder(held)

        problems = "\n".join(_problems(rl))
        for p in dead_files + [loose]:
            assert str(p) in problems, (p, problems)
        for p in live_files + [held]:
            assert str(p) not in problems, (p, problems)
        assert _leftovers_row(rl)[1] == str(len(dead_files) + 1)

        out = rl("image", "prune", "-f").out
        assert "Total reclaimed space:" in out
        for p in dead_files + [loose]:
            assert not os.path.lexists(p), p
        for p in live_files + [held]:
            assert p.exists(), p
    finally:
        live.kill()
        live.wait()
        if holder is not None:
            holder.kill()
            holder.wait()
    # now their owners are gone: swept
    rl("system", "prune", "-f")
    assert list(tmp.iterdir()) == [] and not any(p.name.startswith(".") for p in layers.iterdir())


def test_killed_build_leaves_nothing_after_builder_prune(busybox, tmp_path):
    rl = busybox
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo started > /started && sleep 600\n")

    def step_running() -> bool:
        return any(json_has_step(p) for p in (rl.root / "containers").glob("*/container.json"))

    _kill_when(rl, ["build", "--network", "none", "-t", "never", str(ctx)], step_running, "the RUN step")
    # the step's keeper sees its build gone and removes the step: only the build's files are left
    wait_for(lambda: not step_running(), what="the step of the killed build to go")
    assert list((rl.root / "tmp").glob("build-*"))
    problems = "\n".join(_problems(rl))
    assert "/tmp/build-" in problems and "the files of a build" in problems, problems
    out = rl("builder", "prune", "-f").out
    assert "Total reclaimed space:" in out
    assert rl("ps", "-aq").out == ""
    assert list((rl.root / "tmp").glob("build-*")) == []
    assert rl("system", "check").out.startswith("the store ")


def json_has_step(path: Path) -> bool:
    try:
        text = path.read_text()
    except OSError:
        return False
    return '"io.rootless.build": "step"' in text and '"status": "running"' in text


def test_system_prune_asks_as_docker_does(busybox):
    rl = busybox
    rl("create", "--name", "stopped", "busybox", "true")
    r = rl("system", "prune", input="n\n")
    assert r.out.startswith("WARNING! This will remove:\n  - all stopped containers\n")
    assert "  - all dangling images\n" in r.out and "Are you sure you want to continue? [y/N] " in r.out
    assert "volumes" not in r.out
    assert rl("ps", "-aq").out != ""  # nothing removed
    r = rl("system", "prune", "-a", "--volumes", input="y\n")
    assert "  - all anonymous volumes not used by at least one container\n" in r.out
    assert "  - all images without at least one container associated to them\n" in r.out
    assert "Deleted Containers:\n" in r.out and "Deleted Images:\n" in r.out
    assert r.out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert rl("ps", "-aq").out == "" and rl("images", "-q").out == ""


def test_system_prune_is_a_known_command(rl):
    r = rl("system", "prune", "--help")
    assert "--volumes" in r.out and "--all" in r.out and "--force" in r.out
