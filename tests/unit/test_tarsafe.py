"""Tests for layers/tarsafe.py: the validator of every tar member the tool reads."""

import tarfile

import pytest

from layers import tarsafe
from rootless.base.errors import InvalidImage


@pytest.mark.parametrize("name, clean", [
    ("a", "a"),
    ("./a/b", "a/b"),
    ("a//b/", "a/b"),
    ("a/./b/.", "a/b"),
    (".", ""),
    ("./", ""),
    ("", ""),
    ("a/..b", "a/..b"),  # a name that merely starts with dots is fine
    ("...", "..."),
])
def test_clean_name(name, clean):
    assert tarsafe.clean_name(name, "layer") == clean


@pytest.mark.parametrize("name, message", [
    ("/etc/passwd", "absolute path"),
    ("//etc", "absolute path"),
    ("..", "escapes"),
    ("../x", "escapes"),
    ("a/../../b", "escapes"),
    ("a/../b", "escapes"),  # any ".." component is refused, even one that stays inside
    ("./a/b/..", "escapes"),
    ("a\x00b", "NUL"),
])
def test_clean_name_rejects(name, message):
    with pytest.raises(InvalidImage, match=message) as e:
        tarsafe.clean_name(name, "layer 1234")
    assert str(e.value).startswith("layer 1234: ")


def member(name: str, type_: bytes, linkname: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = type_
    m.linkname = linkname
    return m


@pytest.mark.parametrize("m, clean", [
    (member("./bin/sh", tarfile.REGTYPE), "bin/sh"),
    (member("etc/", tarfile.DIRTYPE), "etc"),
    (member("run/fifo", tarfile.FIFOTYPE), "run/fifo"),
    (member("bin/ls", tarfile.SYMTYPE, "/bin/busybox"), "bin/ls"),  # absolute symlink targets are fine
    (member("bin/up", tarfile.SYMTYPE, "../../../x"), "bin/up"),  # symlinks are resolved in the root
    (member("bin/cat", tarfile.LNKTYPE, "./bin/busybox"), "bin/cat"),
    (member("./", tarfile.DIRTYPE), ""),
    (member("dev/null", tarfile.CHRTYPE), "dev/null"),  # device nodes pass: the unpacker skips them
    (member("./dev/sda", tarfile.BLKTYPE), "dev/sda"),
])
def test_check_member_accepts(m, clean):
    assert tarsafe.check_member(m, "layer") == clean


@pytest.mark.parametrize("m, message", [
    (member("/dev/null", tarfile.CHRTYPE), "absolute path"),  # a device's name is checked like any other
    (member("dev/../../sda", tarfile.BLKTYPE), "escapes"),
    (member("bin/x", tarfile.LNKTYPE, "../x"), "escapes"),
    (member("bin/x", tarfile.LNKTYPE, "/etc/shadow"), "absolute path"),
    (member("bin/x", tarfile.LNKTYPE, "."), "archive root"),
    (member("/abs", tarfile.REGTYPE), "absolute path"),
    (member("a/../../b", tarfile.DIRTYPE), "escapes"),
    (member("odd", b"V"), "unsupported member type"),  # a GNU volume header
    (member("l", tarfile.SYMTYPE, ""), "empty"),  # no such symlink can be made: one line, not ENOENT
])
def test_check_member_rejects(m, message):
    with pytest.raises(InvalidImage, match=message):
        tarsafe.check_member(m, "layer")


def device(type_: bytes, major: int, minor: int) -> tarfile.TarInfo:
    m = member("dev/x", type_)
    m.devmajor, m.devminor = major, minor
    return m


@pytest.mark.parametrize("m, is_device, is_whiteout", [
    (device(tarfile.CHRTYPE, 5, 1), True, False),
    (device(tarfile.CHRTYPE, 0, 0), True, True),  # overlay's whiteout form
    (device(tarfile.BLKTYPE, 8, 0), True, False),
    (device(tarfile.BLKTYPE, 0, 0), True, False),  # only a character device is a whiteout
    (member("run/fifo", tarfile.FIFOTYPE), False, False),
    (member("etc/x", tarfile.REGTYPE), False, False),
])
def test_device_kinds(m, is_device, is_whiteout):
    assert tarsafe.is_device(m) is is_device
    assert tarsafe.is_whiteout_device(m) is is_whiteout


@pytest.mark.parametrize("root, rel, joined", [
    ("/r", "", "/r"),
    ("/r", "a/b", "/r/a/b"),
])
def test_safe_join(root, rel, joined):
    assert tarsafe.safe_join(root, rel) == joined
