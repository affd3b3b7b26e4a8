"""rootless.base.proc's background helper: a filesystem's writeback begun while the caller goes on."""

import os

from rootless.base import proc


def test_start_syncfs_runs_sync_on_the_path_and_reap_waits_for_it(tmp_path, monkeypatch):
    log = tmp_path / "log"
    fake = tmp_path / "bin" / "sync"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" > {log}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    pid = proc.start_syncfs(str(tmp_path))
    assert isinstance(pid, int)
    proc.reap(pid)
    assert log.read_text().split() == ["-f", str(tmp_path)]
    proc.reap(pid)  # reaped already: nothing to wait for, no error


def test_the_real_sync_ends_well(tmp_path):
    pid = proc.start_syncfs(str(tmp_path))
    assert pid is not None  # coreutils' sync is on every host the tool supports
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_without_sync_nothing_is_started(tmp_path, monkeypatch):
    monkeypatch.setattr(proc, "which", lambda name: None)
    assert proc.start_syncfs(str(tmp_path)) is None
    proc.reap(None)
