"""Tests for rootless/runtime/rootfs.py: container paths resolved on a real tree, never leaving the root."""

import os

import pytest

from rootless.base.errors import RootlessError
from rootless.runtime import rootfs


@pytest.fixture
def root(tmp_path):
    """A small container root with the kinds of symlinks images carry."""
    r = tmp_path / "root"
    for d in ("private/etc", "usr/bin", "usr/lib", "var/lib", "home/app"):
        (r / d).mkdir(parents=True)
    (r / "private/etc/hosts").write_text("")
    (r / "usr/bin/busybox").write_text("")
    links = {
        "etc": "/private/etc",  # absolute: taken relative to the root
        "bin": "usr/bin",  # relative
        "lib": "./usr/lib",
        "up": "../../..",  # climbs above the root: clamps at the root
        "slash": "/",
        "dotdot": "..",
        "usr/bin/sh": "busybox",
        "usr/bin/ash": "/bin/sh",  # a chain: ash -> /bin/sh -> bin=usr/bin -> sh -> busybox
        "usr/bin/back": "../lib",
        "var/run": "../run",  # dangling
        "loop1": "loop2",
        "loop2": "/loop1",
        "self": "self",
        "home/app/escape": "../../../../../../etc",
        "hostetc": "/etc/passwd",  # must not reach the host's file
    }
    for name, target in links.items():
        os.symlink(target, r / name)
    return str(r)


@pytest.mark.parametrize("path, rel", [
    ("/", ""),
    ("", ""),
    ("/etc/hosts", "private/etc/hosts"),
    ("etc/hosts", "private/etc/hosts"),
    ("/etc", "private/etc"),
    ("/bin/busybox", "usr/bin/busybox"),
    ("/lib", "usr/lib"),
    ("/up", ""),
    ("/up/etc/hosts", "private/etc/hosts"),
    ("/../../..", ""),
    ("/../../../etc/hosts", "private/etc/hosts"),
    ("/usr/../../x", "x"),
    ("/slash", ""),
    ("/slash/slash/usr", "usr"),
    ("/dotdot/usr", "usr"),
    ("/usr/bin/sh", "usr/bin/busybox"),
    ("/bin/sh", "usr/bin/busybox"),
    ("/usr/bin/ash", "usr/bin/busybox"),
    ("/usr/bin/back", "usr/lib"),
    ("/var/run/x.pid", "run/x.pid"),  # a dangling link's target is followed, its tail kept
    ("/home/app/escape/hosts", "private/etc/hosts"),
    ("/hostetc", "private/etc/passwd"),
    ("/nonexistent/a/b", "nonexistent/a/b"),
    ("/usr/bin/busybox/not-a-dir", "usr/bin/busybox/not-a-dir"),
    ("//usr///bin/./busybox", "usr/bin/busybox"),
    ("/usr/bin/", "usr/bin"),
])
def test_resolve(root, path, rel):
    expected = os.path.join(root, rel) if rel else root
    assert rootfs.resolve(root, path) == expected


@pytest.mark.parametrize("path", ["/loop1", "/loop2/x", "/self", "/usr/../self/x"])
def test_resolve_loops(root, path):
    with pytest.raises(RootlessError, match="too many levels of symbolic links"):
        rootfs.resolve(root, path)


def test_resolve_long_chain_within_limit(tmp_path):
    r = tmp_path / "r"
    r.mkdir()
    (r / "end").mkdir()
    prev = "end"
    for i in range(30):
        os.symlink(prev, r / f"l{i}")
        prev = f"l{i}"
    assert rootfs.resolve(str(r), f"/{prev}/file") == str(r / "end" / "file")


def test_resolve_missing_root(tmp_path):
    r = str(tmp_path / "not-yet")
    assert rootfs.resolve(r, "/etc/hosts") == os.path.join(r, "etc/hosts")


def test_resolve_stays_inside_root_for_every_path(root):
    """Every result of a walk over the tree is under the root."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            cpath = "/" + os.path.relpath(os.path.join(dirpath, name), root)
            try:
                host = rootfs.resolve(root, cpath + "/../../../x")
            except RootlessError:
                continue
            assert host == root or host.startswith(root + os.sep)
