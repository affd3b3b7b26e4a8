"""The user-namespace primitives against the real kernel and helpers, as the unprivileged user."""

from __future__ import annotations

import os

import pytest

from layers import overlay
from rootless.base import idmap, userns
from rootless.base.paths import Paths

pytestmark = pytest.mark.userns


def _maps() -> dict:
    with open("/proc/self/uid_map") as a, open("/proc/self/gid_map") as b:
        return {"uid": a.read().split(), "gid": b.read().split(), "id": [os.getuid(), os.getgid()]}


def test_subid_mapping_makes_us_root_with_the_range():
    mapping = idmap.plan("auto")
    if mapping.mode != "subid":
        pytest.fail(f"this host should give the test user subordinate ids: {mapping.warning}")
    got = userns.call(mapping, _maps)
    assert got["id"] == [0, 0]
    assert got["uid"][:3] == ["0", str(os.getuid()), "1"]
    assert got["uid"][3] == "1" and int(got["uid"][5]) == mapping.uids[1].count


def test_single_uid_mapping():
    got = userns.call(idmap.plan("single"), _maps)
    assert got["id"] == [0, 0]
    assert got["uid"] == ["0", str(os.getuid()), "1"]


def _chown_probe(path: str) -> list[int]:
    with open(path, "w") as f:
        f.write("x")
    os.chown(path, 1000, 1000)
    st = os.stat(path)
    return [st.st_uid, st.st_gid]


def test_files_owned_inside_map_to_subordinate_ids_outside(tmp_path):
    mapping = idmap.plan("auto")
    target = tmp_path / "owned"
    assert userns.call(mapping, _chown_probe, str(target)) == [1000, 1000]
    assert target.stat().st_uid == mapping.uids[1].outside + 999


def test_child_errors_come_back_as_rootless_errors():
    from rootless.base.errors import RootlessError

    def boom():
        raise RootlessError("it broke", "fix it", exit_code=42)

    with pytest.raises(RootlessError) as e:
        userns.call(idmap.plan("auto"), boom)
    assert e.value.message == "it broke" and e.value.hint == "fix it"


def test_overlay_probe_finds_a_method_and_caches_it(tmp_path):
    paths = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    paths.ensure()
    call = lambda fn, *a: userns.call(idmap.plan("auto"), fn, *a)  # noqa: E731
    p = overlay.probe(paths, call)
    assert p.method in overlay.METHODS
    assert p.kernel_ok, p.kernel_detail  # the team's hosts support overlay in a user namespace
    assert p.fuse_ok, p.fuse_detail
    assert overlay.probe(paths, lambda *a: pytest.fail("the probe must be cached")) == p
    assert not list((tmp_path / "store" / "tmp").iterdir())
