"""Device nodes in a layer (mmdebstrap root filesystems, ``docker export`` tarballs): skipped.

A user namespace cannot create them, so they are left out of every unpack, as are hard links to
them; a character device 0/0 is overlay's whiteout and stays one. These tests run as root and
as an unprivileged user alike: nothing here needs ``mknod`` of a real device.
"""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from layers import whiteout
from layers.unpack import unpack_layer
from rootless.base.errors import InvalidImage


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _m(name: str, type_: bytes, *, data: bytes | None = None, linkname: str = "", mode: int = 0o644,
       dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.mtime = 1_700_000_000
    ti.uid = ti.gid = os.geteuid()  # no chown needed, whoever runs the tests
    ti.linkname = linkname
    ti.devmajor, ti.devminor = dev
    if data is not None:
        ti.size = len(data)
    return ti, data


def _unpack(tmp_path, blob: bytes) -> tuple[str, dict]:
    dest = tmp_path / "layer"
    dest.mkdir()
    return str(dest), unpack_layer(io.BytesIO(blob), str(dest))


def _can_make_whiteout(tmp_path) -> bool:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        whiteout.make_whiteout("probe", fd)
        os.unlink("probe", dir_fd=fd)
        return True
    except PermissionError:
        return False
    finally:
        os.close(fd)


def test_devices_and_links_to_them_are_skipped(tmp_path):
    blob = _tar(
        _m("./", tarfile.DIRTYPE, mode=0o755),
        _m("dev/", tarfile.DIRTYPE, mode=0o755),
        _m("dev/console", tarfile.CHRTYPE, mode=0o600, dev=(5, 1)),
        _m("dev/sda", tarfile.BLKTYPE, mode=0o660, dev=(8, 0)),
        _m("dev/console-again", tarfile.LNKTYPE, linkname="dev/console"),
        _m("etc/", tarfile.DIRTYPE, mode=0o755),
        _m("etc/hostname", tarfile.REGTYPE, data=b"debian\n"),
    )
    dest, res = _unpack(tmp_path, blob)
    assert res == {"diff_id": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": 7, "skipped_devices": 3}
    assert os.path.isdir(os.path.join(dest, "dev"))
    assert os.path.isdir(os.path.join(dest, "etc"))
    with open(os.path.join(dest, "etc", "hostname"), "rb") as f:
        assert f.read() == b"debian\n"
    for gone in ("console", "sda", "console-again"):
        assert not os.path.lexists(os.path.join(dest, "dev", gone))
    assert sorted(os.listdir(dest)) == ["dev", "etc"]
    assert os.listdir(os.path.join(dest, "dev")) == []


def test_device_without_its_directory_and_compressed(tmp_path):
    import gzip
    blob = _tar(_m("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
                _m("bin/sh", tarfile.REGTYPE, data=b"#!", mode=0o755))
    dest = tmp_path / "layer"
    dest.mkdir()
    (tmp_path / "layer.tar.gz").write_bytes(gzip.compress(blob))
    res = unpack_layer(str(tmp_path / "layer.tar.gz"), str(dest))
    assert res["skipped_devices"] == 1
    assert res["diff_id"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert os.listdir(dest) == ["bin"]  # nothing made for a device that is left out


def test_a_later_file_replaces_a_skipped_device(tmp_path):
    blob = _tar(
        _m("dev/", tarfile.DIRTYPE, mode=0o755),
        _m("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        _m("dev/null", tarfile.REGTYPE, data=b"x"),
        _m("dev/null2", tarfile.LNKTYPE, linkname="dev/null"),  # to the file now, not the device
    )
    dest, res = _unpack(tmp_path, blob)
    assert res["skipped_devices"] == 1
    a, b = os.lstat(os.path.join(dest, "dev", "null")), os.lstat(os.path.join(dest, "dev", "null2"))
    assert stat.S_ISREG(a.st_mode) and a.st_ino == b.st_ino


def test_a_hard_link_to_a_missing_file_is_still_refused(tmp_path):
    blob = _tar(_m("dev/console", tarfile.CHRTYPE, dev=(5, 1)),
                _m("dev/other", tarfile.LNKTYPE, linkname="dev/tty"))
    with pytest.raises(InvalidImage, match="to missing"):
        _unpack(tmp_path, blob)


@pytest.mark.parametrize("name, message", [
    ("/dev/console", "absolute path"),
    ("../dev/console", "escapes"),
    ("dev/../../console", "escapes"),
])
def test_hostile_device_names_are_still_refused(tmp_path, name, message):
    with pytest.raises(InvalidImage, match=message):
        _unpack(tmp_path, _tar(_m(name, tarfile.CHRTYPE, dev=(5, 1))))


def test_hard_link_to_a_device_through_a_hostile_name_is_refused(tmp_path):
    blob = _tar(_m("dev/console", tarfile.CHRTYPE, dev=(5, 1)),
                _m("dev/x", tarfile.LNKTYPE, linkname="../dev/console"))
    with pytest.raises(InvalidImage, match="escapes"):
        _unpack(tmp_path, blob)


def test_fifos_are_still_created(tmp_path):
    dest, res = _unpack(tmp_path, _tar(_m("run/initctl", tarfile.FIFOTYPE, mode=0o600)))
    assert res["skipped_devices"] == 0
    assert stat.S_ISFIFO(os.lstat(os.path.join(dest, "run", "initctl")).st_mode)


def test_whiteouts_still_become_overlay_whiteouts(tmp_path):
    if not _can_make_whiteout(tmp_path):
        pytest.skip("this kernel or sandbox does not let this user create a whiteout (char 0/0)")
    blob = _tar(
        _m("etc/", tarfile.DIRTYPE, mode=0o755),
        _m("etc/.wh.motd", tarfile.REGTYPE, data=b""),  # the OCI form
        _m("etc/gone", tarfile.CHRTYPE, dev=(0, 0)),  # overlay's form, as in a tar of an upper dir
        _m("etc/gone-too", tarfile.LNKTYPE, linkname="etc/gone"),  # overlay shares the inode
        _m("dev/console", tarfile.CHRTYPE, dev=(5, 1)),
    )
    dest, res = _unpack(tmp_path, blob)
    assert res["skipped_devices"] == 1
    for name in ("motd", "gone", "gone-too"):
        assert whiteout.is_whiteout_stat(os.lstat(os.path.join(dest, "etc", name))), name
    assert not os.path.lexists(os.path.join(dest, "dev"))
