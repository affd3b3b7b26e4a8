"""Issue 22, red team: attacks on the merged fixes, end to end as the unprivileged user.

Each test aims at a stand-in for the user's home (a directory of the test's), which must be
unchanged afterwards, or at a hole in the checks of the first fixes."""

from __future__ import annotations

import os

import pytest

from tests.conftest import one_error

pytestmark = pytest.mark.userns

RACE_TRIES = 25


def _snapshot(home) -> dict:
    out = {}
    for top, dirs, files in os.walk(home):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            out[os.path.relpath(p, home)] = (st.st_mode, st.st_size)
    return out


# ---- cp to and from a stopped container whose volume another container changes ------------------
def _racer(busybox, home) -> None:
    """A running container on the volume ``shared`` that turns ``/data/sub`` into a link to the
    user's home and back, again and again (the stopped container has the same volume at /data)."""
    swap = (f"mkdir -p /data/sub/inner; while :; do mv /data/sub /data/real; ln -s {home} /data/sub; "
            f"rm /data/sub; mv /data/real /data/sub; done")
    busybox("run", "-d", "--name", "racer", "-v", "shared:/data", "busybox", "sh", "-c", swap)


def test_cp_into_a_stopped_container_raced_through_a_shared_volume_writes_nothing_outside(busybox, tmp_path):
    home = tmp_path / "home"
    (home / "inner").mkdir(parents=True)
    before = _snapshot(home)
    src = tmp_path / "planted"
    src.write_text("from the cp\n")
    busybox("create", "--name", "stopped", "-v", "shared:/data", "busybox", "true")
    _racer(busybox, home)
    for i in range(RACE_TRIES):
        r = busybox("cp", str(src), "stopped:/data/sub/inner/", expect=None)
        assert "internal error" not in r.err and "Traceback" not in r.err, r.err
        assert _snapshot(home) == before, f"try {i}: cp wrote through the racing container's link"


def test_cp_from_a_stopped_container_raced_through_a_shared_volume_reads_nothing_outside(busybox, tmp_path):
    home = tmp_path / "home"
    (home / "inner").mkdir(parents=True)
    (home / "inner" / "secret").write_text("the user's secret\n")
    busybox("create", "--name", "stopped", "-v", "shared:/data", "busybox", "true")
    _racer(busybox, home)
    for i in range(RACE_TRIES):
        out = tmp_path / f"out{i}"
        r = busybox("cp", "stopped:/data/sub/inner", str(out), expect=None)
        assert "internal error" not in r.err and "Traceback" not in r.err, r.err
        assert not (out / "secret").exists(), f"try {i}: cp read the user's file through the racer's link"


# ---- a tmpfs that reaches /proc through the image's own link ------------------------------------
@pytest.mark.parametrize("target", ["/x", "/x/sys"])
def test_a_tmpfs_that_reaches_proc_through_a_link_in_the_container_is_refused_at_start(busybox, target):
    # the container's own layer holds x -> /proc (committed): --tmpfs /x covered the whole of /proc
    # (the masks of /proc/kcore and the others then found nothing to mask)
    busybox("run", "--name", "mk", "busybox", "ln", "-s", "/proc", "/x")
    busybox("commit", "mk", "linkproc")
    r = busybox("run", "--rm", "--tmpfs", target, "linkproc", "cat", "/proc/self/stat", expect=125)
    one_error(r, "inside /proc" if target != "/x" else "/proc")
