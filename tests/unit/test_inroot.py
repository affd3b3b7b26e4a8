"""The one in-root resolver: a container root clamps escapes, a build context refuses them."""

from __future__ import annotations

import os
import re

import pytest

from rootless.base import inroot
from rootless.base.clock import now_iso


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "usr" / "bin").mkdir(parents=True)
    os.symlink("usr/bin", r / "bin")
    os.symlink("/usr", r / "abs")
    os.symlink("../../..", r / "usr" / "up")
    os.symlink("loop", r / "loop")
    return str(r)


@pytest.mark.parametrize("path, below", [
    ("/bin/sh", "usr/bin/sh"), ("bin/sh", "usr/bin/sh"), ("/abs/bin", "usr/bin"),
    ("/usr/up/etc", "etc"), ("/../../etc", "etc"), ("/new/dir/", "new/dir"), ("/", ""),
])
def test_clamped_like_the_kernel_after_pivot_root(root, path, below):
    assert inroot.resolve(root, path) == (os.path.join(root, below) if below else root)


@pytest.mark.parametrize("path, link", [("/abs/bin", "abs"), ("usr/up/etc", None), ("../x", None)])
def test_confined_refuses_an_escape(root, path, link):
    assert inroot.resolve(root, "bin/sh", confined=True) == os.path.join(root, "usr/bin/sh")
    with pytest.raises(inroot.Escape) as e:
        inroot.resolve(root, path, confined=True)
    assert e.value.link == link and e.value.target == ("/usr" if link else None)


@pytest.mark.parametrize("confined", [False, True])
def test_a_loop_ends(root, confined):
    with pytest.raises(inroot.LinkLoop, match="too many levels of symbolic links"):
        inroot.resolve(root, "/loop/x", confined)


def test_now_iso_forms():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", now_iso())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_iso(nanoseconds=False))
