"""A full disk (issue 22, item 8), without one: the atomic writer leaves no temporary file and
the old content when a write or its fsync fails; the log writer drops what it cannot write, says
so once and goes on; a full disk is one line naming the store."""

from __future__ import annotations

import errno
import os

import pytest

from rootless.base import atomic
from rootless.base.errors import RootlessError, is_no_space, no_space
from rootless.runtime import logs, logwrite


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch, call):
    path = tmp_path / "rec.json"
    atomic.write_json(str(path), {"old": 1})
    monkeypatch.setattr(atomic.os, call, _enospc)
    with pytest.raises(OSError) as e:
        atomic.write_json(str(path), {"new": 2})
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.json"]
    assert atomic.read_json(str(path)) == {"old": 1}


def test_atomic_write_short_writes_then_enospc(tmp_path, monkeypatch):
    """Some bytes go in, then the disk is full: the torn temporary file goes too."""
    path = tmp_path / "big"
    real = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", write)
    with pytest.raises(OSError):
        atomic.write_bytes(str(path), b"x" * 100)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


class _FullDisk:
    """os.write that fails with ENOSPC while ``full`` (after writing ``torn`` bytes first)."""

    def __init__(self, torn: int = 0):
        self.full = False
        self.torn = torn
        self.real = os.write

    def __call__(self, fd, data):
        if self.full:
            if self.torn:
                n, self.torn = self.torn, 0
                return self.real(fd, bytes(data[:n]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


@pytest.mark.parametrize("torn", [0, 7])
def test_log_writer_drops_reports_once_and_resumes(tmp_path, monkeypatch, torn):
    path = tmp_path / "ctr.log"
    heard = []
    disk = _FullDisk(torn)
    monkeypatch.setattr(logwrite.os, "write", disk)
    w = logs.LogWriter(str(path), on_error=heard.append)
    w.write("stdout", b"before\n")
    disk.full = True
    for i in range(100):
        w.write("stdout", f"lost {i}\n".encode())  # no exception: the container goes on
        w.write("stderr", b"lost too\n")
    disk.full = False
    w.write("stdout", b"after\n")
    w.close()
    assert len(heard) == 1 and "No space left on device" in heard[0] and str(path) in heard[0], heard
    assert w.error == heard[0] and w.dropped > 0
    entries = list(logs.read(str(path)))
    assert [e.text for e in entries] == ["before\n", "after\n"]  # no torn entry in between


def test_log_writer_rotation_that_cannot_open_its_new_file(tmp_path, monkeypatch):
    """A rotation whose new file cannot be made (no inode left) drops, then starts again."""
    path = tmp_path / "ctr.log"
    heard = []
    real_open = os.open
    state = {"fail": False}

    def open_(p, flags, mode=0o777):
        if state["fail"] and str(p) == str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(p, flags, mode)

    w = logs.LogWriter(str(path), max_size=200, max_file=2, on_error=heard.append)
    monkeypatch.setattr(logwrite.os, "open", open_)
    w.write("stdout", b"a" * 100 + b"\n")
    state["fail"] = True
    w.write("stdout", b"b" * 100 + b"\n")  # rotates: the new file cannot be opened
    w.write("stdout", b"c" * 100 + b"\n")
    state["fail"] = False
    w.write("stdout", b"d" * 10 + b"\n")
    w.close()
    assert len(heard) == 1
    texts = [e.text for e in logs.read(str(path))]
    assert texts[-1] == "d" * 10 + "\n"


def test_no_space_names_the_store():
    e = no_space("/data/store", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(e, RootlessError) and e.exit_code == 125
    assert e.message.startswith("no space left on the device of the store /data/store: ")
    assert "rootless system prune" in e.message and "ROOTLESS_ROOT" in e.message
    assert "\n" not in e.message
    inside = no_space("/data/store", OSError(errno.ENOSPC, "No space", "/data/store/tmp/x"))
    assert "of the store /data/store" in inside.message
    outside = no_space("/data/store", OSError(errno.ENOSPC, "No space", "/home/u/out.tar"))
    assert outside.message.startswith("no space left on the device of /home/u/out.tar")
    quota = no_space("/s", OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert quota.message.startswith("disk quota exceeded on the device of the store /s")
    assert is_no_space(OSError(errno.ENOSPC, "x")) and is_no_space(OSError(errno.EDQUOT, "x"))
    assert not is_no_space(OSError(errno.EACCES, "x")) and not is_no_space(ValueError())


# ---- leftovers of killed commands (issue 22, item 10): who owns a temporary file -------------
def _store(tmp_path):
    from rootless.base.paths import Paths
    p = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    for d in (p.tmp, p.layers, p.containers, p.volumes):
        os.makedirs(d)
    return p


def _gone_pid() -> int:
    import subprocess
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_leftovers_tell_live_owners_from_gone_ones(tmp_path, monkeypatch):
    import time

    from layers import leftovers
    p = _store(tmp_path)
    me, gone, parent = os.getpid(), _gone_pid(), os.getppid()
    mine = os.path.join(p.tmp, f"commit-0123456789ab-{me}.tar")
    theirs = os.path.join(p.tmp, f"commit-0123456789ab-{gone}.tar")
    unpacking = os.path.join(p.layers, f".tmp-0123456789ab-{parent}-5")  # alive, older than the dir
    reused = os.path.join(p.tmp, f"blob-{parent}-7")
    for f in (mine, theirs, reused):
        with open(f, "wb") as out:
            out.write(b"x" * 10)
    os.mkdir(unpacking)
    os.utime(unpacking, (0, 0))  # an unpack gives a layer the archive's times: its ctime still tells
    found = {lo.path: lo for lo in leftovers.find(p)}
    assert set(found) == {theirs}
    assert found[theirs].size == 10 and "commit" in found[theirs].what
    # the parent's pid taken by a process that started after these files last changed
    real = leftovers.process_started
    monkeypatch.setattr(leftovers, "process_started",
                        lambda pid: time.time() + 60 if pid == parent else real(pid))
    found = {lo.path: lo for lo in leftovers.find(p)}
    assert set(found) == {theirs, reused, unpacking}
    assert leftovers.remove(list(found.values()), lambda fn, *a: fn(*a)) == 20 + found[unpacking].size
    assert os.listdir(p.tmp) == [os.path.basename(mine)] and os.listdir(p.layers) == []


def test_leftovers_leave_a_locked_download(tmp_path):
    import fcntl

    from layers import leftovers
    p = _store(tmp_path)
    held, loose = (os.path.join(p.tmp, f"partial-{c * 64}") for c in "ab")
    for f in (held, loose):
        with open(f, "wb") as out:
            out.write(b"y" * 5)
    fd = os.open(held, os.O_RDWR)
    try:
        import subprocess
        import sys
        # the lock of another process (a pull): flock is per open file, so a child holds it
        child = subprocess.Popen([sys.executable, "-c", "import fcntl,os,sys,time\n"
                                  f"fd=os.open({held!r},os.O_RDWR); fcntl.flock(fd,fcntl.LOCK_EX); print(1,flush=True);"
                                  " time.sleep(60)"], stdout=subprocess.PIPE)
        assert child.stdout.readline() == b"1\n"
        assert [lo.path for lo in leftovers.find(p)] == [loose]
        leftovers.remove(leftovers.find(p), lambda fn, *a: fn(*a))
        assert os.listdir(p.tmp) == [os.path.basename(held)]
        child.kill()
        child.wait()
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # free again
    finally:
        os.close(fd)


def test_a_helpers_full_disk_travels_as_no_space():
    from rootless.base.channel import Channel
    from rootless.base.errors import NoSpace
    a, b = Channel.pair()
    try:
        b.send_error(OSError(errno.ENOSPC, "No space left on device"), "commit")
        with pytest.raises(NoSpace) as e:
            a.expect("done")
        assert is_no_space(e.value) and "No space left on device" in e.value.message
        b.send_error(OSError(errno.EACCES, "Permission denied"), "commit")
        with pytest.raises(RootlessError) as e:
            a.expect("done")
        assert not is_no_space(e.value)
    finally:
        a.close()
        b.close()
