"""Tests for rootless/base/idmap.py: subordinate id ranges and the mapping plan (pure, with injected host texts)."""

import os
import shutil

import pytest

from rootless.base import idmap
from rootless.base.idmap import IdMapping, Range

ALICE = ("alice", 1000, 1001)

SUBIDS = """\
# comment
bob:200000:65536
alice:100000:65536

  1000:300000:1000
alice:abc:10
alice:1:2:3
alice:5
alice:400000:0
alice:-5:10
alicex:500000:10
"""


@pytest.mark.parametrize("text, user, uid, ranges", [
    ("", "alice", 1000, []),
    ("alice:100000:65536\n", "alice", 1000, [(100000, 65536)]),
    ("1000:100000:65536\n", "alice", 1000, [(100000, 65536)]),  # by uid
    ("alice:100000:65536\n", "bob", 1001, []),
    (SUBIDS, "alice", 1000, [(100000, 65536), (300000, 1000)]),  # comments and bad lines skipped
    (SUBIDS, "bob", 2000, [(200000, 65536)]),
    (SUBIDS, "carol", 3000, []),
    ("alice:1:2\nalice:10:20\nalice:100:200\n", "alice", 1000, [(1, 2), (10, 20), (100, 200)]),
])
def test_parse_subids(text, user, uid, ranges):
    assert idmap.parse_subids(text, user, uid) == ranges


def test_plan_subid():
    m = idmap.plan("auto", "alice:100000:65536\n", "alice:200000:65536\n", helpers_ok=True, user=ALICE)
    assert m.mode == "subid" and m.warning is None
    assert m.uids == (Range(0, 1000, 1), Range(1, 100000, 65536))
    assert m.gids == (Range(0, 1001, 1), Range(1, 200000, 65536))
    assert m.size == 65537


def test_plan_multiple_ranges_are_concatenated():
    text = "alice:100000:1000\n1000:300000:500\n"
    m = idmap.plan("auto", text, text, helpers_ok=True, user=ALICE)
    assert m.uids == (Range(0, 1000, 1), Range(1, 100000, 1000), Range(1001, 300000, 500))
    assert m.gids == (Range(0, 1001, 1), Range(1, 100000, 1000), Range(1001, 300000, 500))
    assert m.size == 1501


SINGLE = IdMapping("single", (Range(0, 1000, 1),), (Range(0, 1001, 1),))


@pytest.mark.parametrize("subuid, subgid, helpers_ok, why", [
    ("", "", True, "no subordinate id range for alice"),
    ("alice:100000:65536\n", "", True, "no subordinate id range for alice"),
    ("", "alice:100000:65536\n", True, "no subordinate id range for alice"),
    ("bob:100000:65536\n", "bob:100000:65536\n", True, "no subordinate id range for alice"),
    ("alice:100000:65536\n", "alice:100000:65536\n", False, "newuidmap/newgidmap are missing"),
])
def test_plan_falls_back_to_single_with_a_warning(subuid, subgid, helpers_ok, why):
    m = idmap.plan("auto", subuid, subgid, helpers_ok=helpers_ok, user=ALICE)
    assert m._replace(warning=None) == SINGLE
    assert why in m.warning
    assert "usermod --add-subuids" in m.warning and "alice" in m.warning


@pytest.mark.parametrize("helpers_ok", [True, False])
def test_plan_single_mode_has_no_warning(helpers_ok):
    m = idmap.plan("single", "alice:100000:65536\n", "alice:100000:65536\n", helpers_ok=helpers_ok, user=ALICE)
    assert m == SINGLE and m.warning is None


def test_key_is_stable_and_describes_the_mapping():
    args = ("alice:100000:65536\n", "alice:100000:65536\n")
    a = idmap.plan("auto", *args, helpers_ok=True, user=ALICE)
    b = idmap.plan("auto", *args, helpers_ok=True, user=ALICE)
    assert a.key == b.key == "subid uid=0:1000:1,1:100000:65536 gid=0:1001:1,1:100000:65536"
    assert SINGLE.key == "single uid=0:1000:1 gid=0:1001:1"


def test_key_ignores_the_warning_but_not_the_ranges():
    warned = idmap.plan("auto", "", "", helpers_ok=True, user=ALICE)
    quiet = idmap.plan("single", user=ALICE)
    assert warned.key == quiet.key and warned._replace(warning=None) == quiet
    other = idmap.plan("auto", "alice:100000:1000\n", "alice:100000:1000\n", helpers_ok=True, user=ALICE)
    wider = idmap.plan("auto", "alice:100000:2000\n", "alice:100000:2000\n", helpers_ok=True, user=ALICE)
    assert len({warned.key, other.key, wider.key}) == 3


def test_helper_usable(tmp_path):
    plain = tmp_path / "newuidmap"
    plain.write_text("")
    assert idmap.helper_usable(None) is False
    assert idmap.helper_usable("") is False
    assert idmap.helper_usable(str(plain)) is False  # neither setuid root nor file capabilities


def test_parse_getsubids():
    assert idmap.parse_getsubids("0: alice 100000 65536\n1: alice 300000 10\n") == [(100000, 65536), (300000, 10)]
    assert idmap.parse_getsubids("Error fetching ranges\n0: alice x 1\n0: alice 5 0\n") == []


@pytest.mark.skipif(not shutil.which("getsubids"), reason="no getsubids here (shadow's uidmap package has it)")
def test_ranges_the_files_lack_come_from_libsubid():
    """The real getsubids (files here; SSSD where nsswitch.conf says ``subid: sss``)."""
    import pwd
    me = pwd.getpwuid(os.getuid())
    from_tool = idmap.from_getsubids(me.pw_name, groups=False)
    if not from_tool:
        pytest.skip(f"{me.pw_name} has no subordinate ids to find")
    m = idmap.plan("auto", "", "", helpers_ok=True, user=(me.pw_name, me.pw_uid, me.pw_gid), use_getsubids=True)
    assert m.mode == "subid" and m.uids[1] == idmap.Range(1, *from_tool[0])
    not_asked = idmap.plan("auto", "", "", helpers_ok=True, user=(me.pw_name, me.pw_uid, me.pw_gid))
    assert not_asked.mode == "single"  # texts given: the files said it all
    assert idmap.from_getsubids("no-such-user-here", groups=True) == []
