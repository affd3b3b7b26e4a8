"""Inside a Slurm job (issue 26, point 3): where the runtime directory goes without a usable
``XDG_RUNTIME_DIR``, and the mounts of ``--ipc host`` (the host's /dev/shm, for MPI)."""

from __future__ import annotations

import os
import stat

from rootless.base import paths
from rootless.runtime import mountplan


def _env(monkeypatch, **values):
    for key in ("XDG_RUNTIME_DIR", "SLURM_JOB_ID", "TMPDIR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_a_job_without_xdg_runtime_dir_gets_its_own_dir_under_the_jobs_tmpdir(monkeypatch, tmp_path):
    _env(monkeypatch, SLURM_JOB_ID="4242", TMPDIR=str(tmp_path), XDG_RUNTIME_DIR="/run/user/no-such-dir")
    runroot = paths.default_runroot("/var/tmp/alice/rootless")
    top = tmp_path / f"rootless-run-{os.getuid()}-job4242"
    assert os.path.dirname(runroot) == str(top)
    paths.Paths(str(tmp_path / "store"), runroot).ensure()
    assert stat.S_IMODE(top.stat().st_mode) == 0o700 and top.stat().st_uid == os.getuid()


def test_a_job_without_a_usable_tmpdir_uses_tmp(monkeypatch):
    _env(monkeypatch, SLURM_JOB_ID="7", TMPDIR="relative/dir")
    assert paths.default_runroot("/r").startswith(f"/tmp/rootless-run-{os.getuid()}-job7/")


def test_outside_a_job_the_runtime_dir_stays_where_it_was(monkeypatch, tmp_path):
    _env(monkeypatch, TMPDIR=str(tmp_path))  # a TMPDIR alone moves nothing: running containers stay found
    assert paths.default_runroot("/r").startswith(f"/tmp/rootless-run-{os.getuid()}/")
    _env(monkeypatch, SLURM_JOB_ID="not-a-number", TMPDIR=str(tmp_path))
    assert paths.default_runroot("/r").startswith(f"/tmp/rootless-run-{os.getuid()}/")


def test_a_usable_xdg_runtime_dir_still_wins_in_a_job(monkeypatch, tmp_path):
    _env(monkeypatch, SLURM_JOB_ID="9", TMPDIR="/tmp", XDG_RUNTIME_DIR=str(tmp_path))
    assert paths.default_runroot("/r").startswith(f"{tmp_path}/rootless/")


def test_a_foreign_job_dir_is_refused(monkeypatch, tmp_path):
    top = tmp_path / f"rootless-run-{os.getuid()}-job5"
    top.symlink_to(tmp_path)  # not a directory of its own: refused, not followed
    import pytest

    from rootless.base.errors import RootlessError
    with pytest.raises(RootlessError, match="not a directory owned by you"):
        paths.ensure_private_dir(str(top / "abc"))


def _ops(**kw):
    return [(op.kind, op.target, getattr(op, "fstype", None)) for op in mountplan.plan({}, True, None, **kw)]


def test_ipc_host_binds_the_hosts_dev_shm_and_makes_no_ipc_mounts_of_its_own():
    private = _ops()
    assert ("mount", "/dev/shm", "tmpfs") in private and ("mount", "/dev/mqueue", "mqueue") in private
    shared = _ops(ipc_host=True)
    assert ("bind", "/dev/shm", None) in [(k, t, None) for k, t, _ in shared]
    assert not any(t in ("/dev/shm", "/dev/mqueue") and k == "mount" for k, t, _ in shared)
