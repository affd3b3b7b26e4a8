"""Issue 22: archives copied into a container (``cp``, the API's PUT archive) are unpacked by the
layer unpacker's rules, checked whole first; a GNU-sparse member stays sparse."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from layers import tarsafe
from layers.unpack import unpack_layer
from rootless.base.errors import InvalidImage
from tests import hostile_tars
from tests.hostile_tars import REFUSED


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    return home, hostile_tars.home_with_victims(home)


def _dest(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "etc").mkdir()
    (dest / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return dest


@pytest.mark.parametrize("name", sorted(hostile_tars.hostile(Path("/h"))))
def test_hostile_archive_is_refused_whole_or_contained(tmp_path, home, name):
    home, before = home
    data, outcome, member = hostile_tars.hostile(home)[name]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        if outcome == REFUSED:
            with pytest.raises(InvalidImage) as e:
                tarsafe.check_archive(tf, "the archive")
            assert "\n" not in str(e.value)
        else:
            tarsafe.check_archive(tf, "the archive")
    dest = _dest(tmp_path)
    if outcome == REFUSED:
        with pytest.raises(InvalidImage):
            unpack_layer(io.BytesIO(data), str(dest), what="archive", archive=True)
    else:
        unpack_layer(io.BytesIO(data), str(dest), what="archive", archive=True)
        assert not os.path.islink(dest / member)  # replaced, not written through
    assert hostile_tars.snapshot(home) == before
    assert not os.path.lexists(dest / "stolen")


def test_archive_hard_links_only_to_its_own_members(tmp_path):
    dest = _dest(tmp_path)
    ok = hostile_tars.tar_of(hostile_tars._entry("a", tarfile.REGTYPE, b"x\n"),
                             hostile_tars._entry("b", tarfile.LNKTYPE, linkname="a"))
    unpack_layer(io.BytesIO(ok), str(dest), what="archive", archive=True)
    assert os.stat(dest / "a").st_ino == os.stat(dest / "b").st_ino
    bad = hostile_tars.tar_of(hostile_tars._entry("b2", tarfile.LNKTYPE, linkname="etc/passwd"))
    with pytest.raises(InvalidImage, match="did not make"):
        unpack_layer(io.BytesIO(bad), str(dest), what="archive", archive=True)
    assert not os.path.lexists(dest / "b2")


def test_a_hard_link_to_itself_is_refused_before_anything_is_written():
    data = hostile_tars.tar_of(hostile_tars._entry("a", tarfile.REGTYPE, b"x\n"),
                               hostile_tars._entry("a", tarfile.LNKTYPE, linkname="a"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf, pytest.raises(InvalidImage, match="did not make"):
        tarsafe.check_archive(tf, "the archive")


def test_archive_whiteout_names_are_plain_files_and_the_root_keeps_its_mode(tmp_path):
    dest = _dest(tmp_path)
    os.chmod(dest, 0o755)
    root = hostile_tars._entry(".", tarfile.DIRTYPE, mode=0o777)
    root[0].uid = root[0].gid = os.geteuid()
    data = hostile_tars.tar_of(root, hostile_tars._entry("etc/.wh.passwd", tarfile.REGTYPE, b"kept\n"),
                               hostile_tars._entry("etc/.wh..wh..opq", tarfile.REGTYPE, b""))
    unpack_layer(io.BytesIO(data), str(dest), what="archive", archive=True)
    assert (dest / "etc" / "passwd").read_text().startswith("root:")
    assert (dest / "etc" / ".wh.passwd").read_text() == "kept\n"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o755


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
@pytest.mark.parametrize("archive", [False, True])
def test_a_sparse_member_stays_sparse(tmp_path, fmt, archive):
    data = hostile_tars.sparse_tar(tmp_path / "src", fmt)
    assert len(data) < 1 << 20
    dest = tmp_path / "dest"
    dest.mkdir()
    info = unpack_layer(io.BytesIO(data), str(dest), what="archive", **({"archive": True} if archive else {}))
    assert info["diff_id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    st = os.stat(dest / "sparse")
    assert st.st_size == hostile_tars.SPARSE_SIZE
    assert st.st_blocks * 512 < 8 << 20, st.st_blocks  # not 1 GiB of written zeros
    with open(dest / "sparse", "rb") as f:
        f.seek(hostile_tars.SPARSE_OFFSET - 4)
        assert f.read(4 + len(hostile_tars.SPARSE_DATA) + 4) == \
            b"\0" * 4 + hostile_tars.SPARSE_DATA + b"\0" * 4
