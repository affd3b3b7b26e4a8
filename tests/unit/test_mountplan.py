"""Tests for rootless/runtime/mountplan.py: the container's mounts as ordered data."""

import pytest

from rootless.base.syscalls import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC
from rootless.runtime import mountplan

ETC = {"/etc/resolv.conf": "/run/x/resolv.conf", "/etc/hostname": "/run/x/hostname",
       "/etc/hosts": "/run/x/hosts"}
VARIANTS = [(ETC, True, None), (ETC, False, 5), ({}, True, 0), ({}, False, None)]


def index(ops, kind, target):
    matches = [i for i, op in enumerate(ops) if op.kind == kind and op.target == target]
    assert len(matches) == 1, (kind, target, matches)
    return matches[0]


@pytest.mark.parametrize("etc, own_netns, pts_gid", VARIANTS)
def test_order(etc, own_netns, pts_gid):
    ops = mountplan.plan(etc, own_netns, pts_gid)
    assert (ops[0].kind, ops[0].target, ops[0].fstype) == ("mount", "/proc", "proc")
    dev = index(ops, "mount", "/dev")
    pts = index(ops, "mount", "/dev/pts")
    assert dev < pts
    # everything under /dev comes after the tmpfs on /dev
    for i, op in enumerate(ops):
        if op.target.startswith("/dev/"):
            assert i > dev, op
    assert index(ops, "symlink", "/dev/ptmx") > pts
    # masks and read-only remounts come after the file systems they cover
    sys_i = next(i for i, op in enumerate(ops) if op.target == "/sys")
    for i, op in enumerate(ops):
        if op.kind in ("mask", "readonly"):
            assert i > sys_i


@pytest.mark.parametrize("etc, own_netns, pts_gid", VARIANTS)
def test_all_targets_absolute_and_unique(etc, own_netns, pts_gid):
    ops = mountplan.plan(etc, own_netns, pts_gid)
    for op in ops:
        assert op.target.startswith("/") and ".." not in op.target.split("/"), op
        for fb in op.fallback:
            assert fb.target.startswith("/")
    targets = [(op.kind, op.target) for op in ops]
    assert len(targets) == len(set(targets))


def test_proc_and_dev_mounts():
    ops = mountplan.plan({}, True, None)
    proc = ops[0]
    assert proc.flags == MS_NOSUID | MS_NODEV | MS_NOEXEC
    for node in mountplan.DEV_NODES:
        op = ops[index(ops, "bind", f"/dev/{node}")]
        assert op.source == f"/dev/{node}" and op.is_file and op.flags & MS_BIND
    for name, target in mountplan.DEV_LINKS.items():
        assert ops[index(ops, "symlink", f"/dev/{name}")].source == target
    assert ops[index(ops, "mount", "/dev/shm")].fstype == "tmpfs"
    assert ops[index(ops, "mount", "/dev/mqueue")].fstype == "mqueue"
    assert {op.target for op in ops if op.kind == "mask"} == set(mountplan.MASKED)
    assert {op.target for op in ops if op.kind == "readonly"} == set(mountplan.READONLY)


def test_etc_files_are_bound_as_files():
    ops = mountplan.plan(ETC, False, None)
    binds = [op for op in ops if op.target.startswith("/etc/")]
    assert [op.target for op in binds] == sorted(ETC)
    for op in binds:
        assert op.kind == "bind" and op.is_file and op.source == ETC[op.target]
        assert op.flags & MS_BIND


def test_sysfs_in_own_network_namespace_with_bind_fallback():
    ops = mountplan.plan({}, True, None)
    sys_op = ops[index(ops, "mount", "/sys")]
    assert sys_op.fstype == "sysfs" and sys_op.flags & MS_RDONLY
    assert len(sys_op.fallback) == 1
    fb = sys_op.fallback[0]
    assert (fb.kind, fb.target, fb.source) == ("bind", "/sys", "/sys")
    assert fb.flags & MS_BIND and fb.flags & MS_REC and fb.flags & MS_RDONLY


def test_sysfs_is_a_readonly_rbind_with_the_host_network():
    ops = mountplan.plan({}, False, None)
    assert not [op for op in ops if op.fstype == "sysfs"]
    sys_op = ops[index(ops, "bind", "/sys")]
    assert sys_op.source == "/sys" and sys_op.fallback == ()
    assert sys_op.flags == MS_BIND | MS_REC | MS_RDONLY


@pytest.mark.parametrize("pts_gid, expected", [(None, None), (5, "gid=5"), (0, "gid=0")])
def test_pts_gid_option(pts_gid, expected):
    ops = mountplan.plan({}, True, pts_gid)
    opts = ops[index(ops, "mount", "/dev/pts")].data.split(",")
    assert "newinstance" in opts and "ptmxmode=0666" in opts
    gids = [o for o in opts if o.startswith("gid=")]
    assert gids == ([expected] if expected else [])


def test_root_emulations_word_to_apt_is_bound_only_where_apt_is():
    assert not [op for op in mountplan.plan({}, True, 5) if op.target == mountplan.APT_SANDBOX_CONF]
    ops = [op for op in mountplan.plan({}, True, None, apt_sandbox="/run/x/apt.conf")
           if op.target == mountplan.APT_SANDBOX_CONF]
    assert len(ops) == 1 and ops[0].if_parent and ops[0].is_file and ops[0].flags & MS_RDONLY
    assert mountplan.APT_SANDBOX_CONF[1:] in mountplan.MOUNT_POINTS  # and it is no part of a layer


def test_pid_host_binds_the_hosts_proc_and_still_masks_it():
    """--pid host: a new procfs needs a pid namespace of one's own; the host's /proc is bound
    (recursively), and its sensitive files are masked and made read-only as with a procfs."""
    ops = mountplan.plan(ETC, True, None, pid_host=True)
    proc = ops[index(ops, "bind", "/proc")]
    assert (proc.source, proc.flags) == ("/proc", MS_BIND | MS_REC)
    assert not any(op.kind == "mount" and op.target == "/proc" for op in ops)
    assert {op.target for op in ops if op.kind == "mask"} >= {"/proc/kcore", "/proc/keys"}
    assert "/proc/sys" in {op.target for op in ops if op.kind == "readonly"}
    mountplan.check_destination("/proc", "bind", proc.source)  # what apply_op checks: a procfs's root
