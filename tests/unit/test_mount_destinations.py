"""Where a user's mount may go (runc's rule for /proc), the /dev volume that replaces the
runtime's tmpfs, and the copy-up and ``:U`` walks that never follow a link the volume holds."""

from __future__ import annotations

import os
import stat

import pytest

from rootless.base.errors import UsageError
from rootless.runtime import copyup, mountplan


@pytest.mark.parametrize("target,kind,source", [
    ("/proc", "volume", None), ("/proc", "tmpfs", None), ("/proc", "bind", "/tmp"), ("/proc/", "volume", None),
    ("/proc/1", "volume", None), ("/proc/sys/kernel", "bind", "/tmp"), ("/proc/self/root", "volume", None),
    ("proc/x", "volume", None), ("/proc/../proc/kcore", "bind", "/tmp"),
])
def test_proc_and_what_is_under_it_are_refused(target, kind, source):
    with pytest.raises(UsageError, match="cannot be mounted because it is (inside /proc|not of type proc)"):
        mountplan.check_destination(target, kind, source)


@pytest.mark.parametrize("target,kind,source", [
    ("/proc", "bind", "/proc"),  # a procfs's root, as runc allows
    ("/proc/cpuinfo", "bind", "/tmp"), ("/proc/meminfo", "bind", "/tmp"), ("/proc/uptime", "bind", "/tmp"),
    ("/sys", "bind", "/sys"), ("/sys/fs/x", "volume", None), ("/dev", "volume", None), ("/dev/shm", "bind", "/dev/shm"),
    ("/dev/log", "bind", "/dev/null"), ("/procx", "volume", None), ("/data/proc", "volume", None),
])
def test_other_destinations_are_allowed(target, kind, source):
    mountplan.check_destination(target, kind, source)


def test_a_volume_on_dev_replaces_the_tmpfs_and_the_devices_go_into_it():
    ops = mountplan.plan({}, True, None, volumes=(("volume", "/store/v/_data", "/dev", False, ""),))
    dev = [op for op in ops if op.target == "/dev"]
    assert [op.kind for op in dev] == ["volume"]
    assert ops.index(dev[0]) < min(i for i, op in enumerate(ops) if op.target.startswith("/dev/"))


def _tree(tmp_path):
    src = tmp_path / "image"
    (src / "a" / "deep").mkdir(parents=True)
    (src / "a" / "deep" / "f").write_text("deep\n")
    (src / "b").write_text("b\n")
    os.chmod(src / "b", 0o4751)
    os.symlink("/etc/passwd", src / "link")
    os.mkfifo(src / "fifo", 0o640)
    os.utime(src / "a", (1000, 1000))
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "b").write_text("mine\n")
    (outside / "f").write_text("mine\n")
    return src, outside


def _listing(top) -> dict:
    return {os.path.relpath(os.path.join(d, n), top): open(os.path.join(d, n)).read()
            if os.path.isfile(os.path.join(d, n)) else None
            for d, dirs, files in os.walk(top) for n in dirs + files}


def test_the_copy_never_follows_links_planted_where_its_files_go(tmp_path):
    src, outside = _tree(tmp_path)
    vol = tmp_path / "volume"
    vol.mkdir()
    before = _listing(outside)
    # what a racing container leaves: links where the image's directory and file would go
    os.symlink(outside, vol / "a")
    os.symlink(outside / "b", vol / "b")
    fds = os.open(src, os.O_RDONLY | os.O_DIRECTORY), os.open(vol, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copyup._copy_dir(*fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert _listing(outside) == before
    assert os.readlink(vol / "a") == str(outside) and os.readlink(vol / "b") == str(outside / "b")
    assert os.readlink(vol / "link") == "/etc/passwd"


def test_fill_copies_modes_times_links_and_fifos_and_only_into_an_empty_volume(tmp_path):
    src, _ = _tree(tmp_path)
    vol = tmp_path / "volume"
    vol.mkdir()
    assert copyup.fill(str(src), str(vol))
    assert (vol / "a" / "deep" / "f").read_text() == "deep\n"
    assert stat.S_IMODE(os.lstat(vol / "b").st_mode) == 0o4751
    assert os.lstat(vol / "a").st_mtime == 1000
    assert os.readlink(vol / "link") == "/etc/passwd"
    assert stat.S_ISFIFO(os.lstat(vol / "fifo").st_mode) and stat.S_IMODE(os.lstat(vol / "fifo").st_mode) == 0o640
    (vol / "b").unlink()
    assert not copyup.fill(str(src), str(vol))  # not empty: left as it is
    assert not (vol / "b").exists()


def test_fill_from_a_missing_or_linked_image_directory_copies_nothing(tmp_path):
    vol = tmp_path / "volume"
    vol.mkdir()
    assert not copyup.fill(str(tmp_path / "missing"), str(vol))
    os.symlink("/etc", tmp_path / "linked")
    assert not copyup.fill(str(tmp_path / "linked"), str(vol))
    assert os.listdir(vol) == []


def test_chown_tree_changes_links_not_what_they_point_to(tmp_path, monkeypatch):
    top = tmp_path / "v"
    (top / "sub").mkdir(parents=True)
    (tmp_path / "target").write_text("x")
    os.symlink(tmp_path / "target", top / "sub" / "link")
    os.symlink(tmp_path, top / "dirlink")
    seen = []
    real_chown, real_fchown = os.chown, os.fchown

    def chown(path, uid, gid, *, dir_fd=None, follow_symlinks=True):
        assert not follow_symlinks and dir_fd is not None
        seen.append(os.readlink(f"/proc/self/fd/{dir_fd}") + "/" + path)
        real_chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    def fchown(fd, uid, gid):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fchown(fd, uid, gid)

    monkeypatch.setattr(os, "chown", chown)
    monkeypatch.setattr(os, "fchown", fchown)
    copyup.chown_tree(str(top), (os.getuid(), os.getgid()))
    assert sorted(seen) == sorted(str(p) for p in (top, top / "sub", top / "sub" / "link", top / "dirlink"))


def test_a_host_directory_bound_on_dev_still_covers_the_runtimes_dev():
    ops = mountplan.plan({}, True, None, volumes=(("bind", "/dev", "/dev", False, ""),))
    dev = [op for op in ops if op.target == "/dev"]
    assert [op.kind for op in dev] == ["mount", "bind"]
    assert ops.index(dev[1]) > max(i for i, op in enumerate(ops) if op.target.startswith("/dev/"))
