"""Tests for rootless/runtime/volumes.py: the -v flag as data, and the volume store."""

from __future__ import annotations

import os

import pytest

from rootless.base.errors import RootlessError, UsageError, VolumeNotFound
from rootless.base.paths import Paths
from rootless.runtime import volumes
from rootless.runtime.volumes import Mount


@pytest.mark.parametrize("text, want", [
    ("/data", Mount("volume", "", "/data", False)),
    ("/data:ro", Mount("volume", "", "/data", True)),
    ("db:/var/lib/db", Mount("volume", "db", "/var/lib/db", False)),
    ("db:/var/lib/db:ro", Mount("volume", "db", "/var/lib/db", True)),
    ("db:/var/lib/db:rw,z", Mount("volume", "db", "/var/lib/db", False)),
    ("/host/dir:/in", Mount("bind", "/host/dir", "/in", False)),
    ("/host/dir/../x/:/in/./y:ro", Mount("bind", "/host/x", "/in/y", True)),
    ("my.vol_1-2:/d", Mount("volume", "my.vol_1-2", "/d", False)),
])
def test_parse(text, want):
    assert volumes.parse(text) == want


@pytest.mark.parametrize("text, message", [
    ("", "not an absolute path"),
    ("data", "not an absolute path"),
    ("db:data", "not an absolute path"),
    ("db:/", "can't be '/'"),
    ("/x:/y:rx", "invalid mode"),
    ("/x:/y:ro,rw", "invalid mode"),
    ("a:b:c:d", "invalid volume specification"),
    ("./rel:/d", "invalid volume name"),
    ("bad name:/d", "invalid volume name"),
    ("-x:/d", "invalid volume name"),
    (":/x", "empty section"),
    ("v::/x", "empty section"),
    ("v:/x:", "empty section"),
])
def test_parse_refuses(text, message):
    with pytest.raises(UsageError, match=message):
        volumes.parse(text)


@pytest.fixture
def paths(tmp_path):
    p = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    p.ensure()
    return p


def test_create_is_atomic_idempotent_and_listed(paths):
    rec, made = volumes.create(paths, "data", {"k": "v"})
    assert made and rec["labels"] == {"k": "v"} and not rec["anonymous"]
    assert os.path.isdir(paths.volume_data("data"))
    again, made = volumes.create(paths, "data")
    assert not made and again == rec
    volumes.create(paths, "anon", anonymous=True)
    assert [r["name"] for r in volumes.all_volumes(paths)] == ["anon", "data"]
    assert not [n for n in os.listdir(paths.volumes) if n.startswith(".")]


def test_get_and_a_damaged_record(paths):
    volumes.create(paths, "vv")
    with open(paths.volume_record("vv"), "w") as f:
        f.write("{cut")
    assert volumes.get(paths, "vv")["name"] == "vv"  # still there, with its data
    with pytest.raises(VolumeNotFound, match="no such volume: nope"):
        volumes.get(paths, "nope")
    with pytest.raises(VolumeNotFound):
        volumes.get(paths, "../containers")


def test_doom_takes_it_out_of_the_listing(paths):
    volumes.create(paths, "gone")
    doomed = volumes.doom(paths, "gone")
    assert doomed and os.path.isdir(doomed) and volumes.all_volumes(paths) == []
    assert volumes.doom(paths, "gone") is None
    with pytest.raises(RootlessError):
        volumes.get(paths, "gone")


@pytest.mark.parametrize("text, want", [
    ("type=bind,src=/h,dst=/c", Mount("bind", "/h", "/c", False, must_exist=True)),
    ("type=bind,source=/h,target=/c,readonly", Mount("bind", "/h", "/c", True, must_exist=True)),
    ("type=bind,src=/h,destination=/c,ro=false", Mount("bind", "/h", "/c", False, must_exist=True)),
    ("src=vol,dst=/c", Mount("volume", "vol", "/c", False)),
    ("type=volume,dst=/c,volume-nocopy", Mount("volume", "", "/c", False, copy=False)),
    ("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770", Mount("tmpfs", "", "/t", False, options="size=64m,mode=1770")),
])
def test_parse_mount(text, want):
    assert volumes.parse_mount(text) == want


@pytest.mark.parametrize("text, message", [
    ("type=bind,dst=/c", "must be an absolute path"),
    ("type=nfs,dst=/c", "type 'nfs'"),
    ("src=v", "a destination"),
    ("type=tmpfs,dst=/t,tmpfs-size=huge", "tmpfs-size"),
    ("type=tmpfs,dst=/t,tmpfs-mode=999", "tmpfs-mode"),
    ("type=tmpfs,src=x,dst=/t", "no source"),
    ("dst=/c,readonly=maybe", "true or false"),
    ("dst=/c,color=red", "unknown key 'color'"),
    ("dst=/c,dst=/d", "given twice"),
    ("type=volume,src=bad name,dst=/c", "invalid volume name"),
])
def test_parse_mount_refuses(text, message):
    with pytest.raises(UsageError, match=message):
        volumes.parse_mount(text)


def test_parse_tmpfs_and_its_plan():
    from rootless.base.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
    from rootless.runtime import mountplan
    m = volumes.parse_tmpfs("/run:size=64m,mode=1777,exec")
    assert m == Mount("tmpfs", "", "/run", False, options="size=64m,mode=1777,exec")
    op = mountplan.plan({}, True, None, volumes=(("tmpfs", "tmpfs", "/run", False, m.options),))[
        -len(mountplan.MASKED) - len(mountplan.READONLY) - 1]
    assert (op.kind, op.target, op.fstype, op.data) == ("mount", "/run", "tmpfs", "size=64m,mode=1777")
    assert op.flags & (MS_NOSUID | MS_NODEV) and not op.flags & MS_NOEXEC and not op.flags & MS_RDONLY
    assert volumes.parse_tmpfs("/t:ro").readonly
    for bad in ("rel", "/t:size=lots", "/t:weird", "/"):
        with pytest.raises(UsageError):
            volumes.parse_tmpfs(bad)


def test_volume_plan_entries_keep_ro_chown_and_copy():
    from rootless.base.syscalls import MS_RDONLY
    from rootless.runtime import mountplan
    ops = mountplan.plan({"/etc/hosts": "/run/x/hosts"}, True, None,
                         volumes=(("volume", "/store/v/_data", "/data", True, "U"),
                                  ("bind", "/etc", "/host-etc", False, "")))
    vol = next(o for o in ops if o.target == "/data" and o.kind == "volume")
    bind = next(o for o in ops if o.target == "/host-etc")
    assert (vol.kind, vol.data, vol.is_file) == ("volume", "U", False)
    assert (bind.kind, bind.data, bool(bind.flags & MS_RDONLY)) == ("bind", None, False)
    # read-only after the /etc files are bound in (their mount points may be made in the volume)
    kinds = [(o.kind, o.target) for o in ops]
    assert kinds.index(("remount_ro", "/data")) > max(i for i, (k, t) in enumerate(kinds) if t.startswith("/etc/"))
    assert ("remount_ro", "/host-etc") not in kinds


def test_etc_files_in_a_read_only_volume_at_etc():
    from rootless.runtime import mountplan
    ops = mountplan.plan({"/etc/hosts": "/run/x/hosts"}, True, None, volumes=(("volume", "/v", "/etc", True, ""),))
    kinds = [(o.kind, o.target) for o in ops]
    assert kinds.index(("volume", "/etc")) < kinds.index(("bind", "/etc/hosts")) < kinds.index(("remount_ro", "/etc"))


def test_names_docker_refuses_and_the_longest_ones(paths):
    for bad in ("v", "-v", "a/b", "x" * 256):
        with pytest.raises(UsageError, match="invalid volume name"):
            volumes.create(paths, bad)
    longest = "v" * 255  # made and removed aside under names that never contain it
    volumes.create(paths, longest)
    assert volumes.get(paths, longest)["name"] == longest
    assert volumes.doom(paths, longest)
    with pytest.raises(VolumeNotFound):
        volumes.get(paths, "x" * 300)


def test_prune_goes_on_past_a_volume_it_cannot_remove(paths, monkeypatch):
    from rootless.engine import volumes as uc
    for name in ("aa", "bb", "cc"):
        volumes.create(paths, name)
    real = volumes.doom

    def doom(p, name):
        if name == "bb":
            raise RootlessError("cannot remove volume bb: Device or resource busy")
        return real(p, name)
    monkeypatch.setattr(volumes, "doom", doom)
    warned = []

    class Ctx:
        def __init__(self):
            self.paths = paths

        def warn(self, message):
            warned.append(message)

        def userns_call(self, fn, *args):
            return fn(*args)
    failed = []
    assert uc.prune(Ctx(), True, failed) == ["aa", "cc"]
    assert failed == warned == ["cannot remove volume bb: Device or resource busy"]
    assert [r["name"] for r in volumes.all_volumes(paths)] == ["bb"]
