"""Tests for rootless/runtime/users.py: ``-u`` resolved through the image's /etc/passwd and /etc/group."""

import pytest

from rootless.base.errors import RootlessError
from rootless.runtime import users
from rootless.runtime.users import User

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:App User:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
# a comment
broken:line
"""

GROUP = """\
root:x:0:
daemon:x:1:
wheel:x:10:root
users:x:100:app,nobody
app:x:1000:
staff:x:50:other
nogroup:x:65534:
"""


@pytest.mark.parametrize("spec, expected", [
    ("", User(0, 0, (0, 10), "/root")),  # empty -> root
    ("root", User(0, 0, (0, 10), "/root")),
    ("0", User(0, 0, (0, 10), "/root")),
    ("0:0", User(0, 0, (0,), "/root")),  # an explicit group drops the supplementary groups
    ("app", User(1000, 1000, (1000, 100), "/home/app")),
    ("1000", User(1000, 1000, (1000, 100), "/home/app")),
    ("app:users", User(1000, 100, (100,), "/home/app")),
    ("app:100", User(1000, 100, (100,), "/home/app")),
    ("1000:nogroup", User(1000, 65534, (65534,), "/home/app")),
    ("app:4321", User(1000, 4321, (4321,), "/home/app")),  # numeric gids need no entry
    ("1234", User(1234, 0, (0,), "/")),  # unknown numeric uid: allowed, gid 0, home /
    ("1234:1234", User(1234, 1234, (1234,), "/")),
    ("1234:users", User(1234, 100, (100,), "/")),
    ("nobody", User(65534, 65534, (65534, 100), "/home")),
    ("nohome", User(1001, 1001, (1001,), "/")),  # empty home field -> /
    ("daemon", User(1, 1, (1,), "/usr/sbin")),
])
def test_resolve(spec, expected):
    assert users.resolve(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize("spec, message", [
    ("ghost", "unable to find user ghost"),
    ("ghost:users", "unable to find user ghost"),
    ("broken", "unable to find user broken"),  # a malformed passwd line is not an entry
    ("app:ghosts", "unable to find group ghosts"),
    ("1234:ghosts", "unable to find group ghosts"),
])
def test_resolve_errors(spec, message):
    with pytest.raises(RootlessError, match=message):
        users.resolve(spec, PASSWD, GROUP)


@pytest.mark.parametrize("spec, expected", [
    ("", User(0, 0, (0,), "/")),
    ("0", User(0, 0, (0,), "/")),
    ("42:7", User(42, 7, (7,), "/")),
])
def test_resolve_without_passwd_or_group_files(spec, expected):
    assert users.resolve(spec, "", "") == expected


def test_resolve_name_needs_passwd():
    with pytest.raises(RootlessError, match="unable to find user root"):
        users.resolve("root", "", "")


def test_group_add_adds_supplementary_groups():
    group = "root:x:0:\nusers:x:100:app\nbad:x:nope:\n"
    user = users.resolve("0", "", group)
    assert users.with_groups(user, ("users", "1000", "0"), group).groups == (0, 100, 1000)
    for name in ("nosuch", "bad"):
        with pytest.raises(RootlessError, match=f"unable to find group {name}"):
            users.with_groups(user, (name,), group)
    with pytest.raises(RootlessError, match="out of range"):
        users.with_groups(user, ("4294967295",), group)
