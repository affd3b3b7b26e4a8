"""rootless.engine.buildjobs: the stage graph's scheduler, with stand-in stages (forked
processes that only touch files): dependencies wait, independent stages overlap, at most the
limit at once, an error stops the others."""

from __future__ import annotations

import os
import time

import pytest

from rootless.base.errors import RootlessError
from rootless.engine import buildjobs


class Ex:
    outputs = None

    def __init__(self):
        self.said = []
        self.n = 0

    def say(self, text):
        self.said.append(text)


def test_at_most_the_limit_at_once_and_each_after_what_it_reads(tmp_path):
    def work(i):
        (tmp_path / f"running-{i}").touch()
        time.sleep(1.0)
        at_once = len(list(tmp_path.glob("running-*")))
        (tmp_path / f"running-{i}").unlink()
        (tmp_path / f"done-{i}").touch()
        return {"at_once": at_once, "before": sorted(p.name for p in tmp_path.glob("done-*"))}

    results = {}
    jobs = [(0, set()), (1, set()), (2, set()), (3, {0, 1})]
    buildjobs.run(Ex(), jobs, work, lambda i, r: results.__setitem__(i, r), max_jobs=2)
    assert sorted(results) == [0, 1, 2, 3]
    assert max(r["at_once"] for r in results.values()) == 2  # independent ones overlapped, never 3
    assert {"done-0", "done-1"} <= set(results[3]["before"])  # 3 read from 0 and 1: after them


def test_a_failing_stage_stops_the_others(tmp_path):
    def work(i):
        if i == 1:
            while not (tmp_path / "zero-started").exists():
                time.sleep(0.05)
            raise RootlessError("stage one failed", "its hint")
        (tmp_path / "zero-started").touch()
        time.sleep(30)
        (tmp_path / "zero-finished").touch()
        return {}

    ex = Ex()
    with pytest.raises(RootlessError, match="stage one failed") as e:
        buildjobs.run(ex, [(0, set()), (1, set()), (2, {0, 1})], work, lambda i, r: None, max_jobs=2)
    assert e.value.hint == "its hint"
    assert not (tmp_path / "zero-finished").exists()
    assert not _children()  # every stage's process was reaped


def _children() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True
