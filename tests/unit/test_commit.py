"""layers.commit: an overlay upper directory (or a whole tree) to a layer tar, and back.

Whiteouts are character devices 0/0: creating them takes root, so the test bodies
run as root of a user namespace (``rootless.base.userns.call``) when the tests run as
an unprivileged user, and directly when they run as root.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import tarfile

import pytest

from layers import whiteout
from layers.commit import layer_from_tree, layer_from_upper
from layers.store import remove_trees
from layers.unpack import unpack_layer
from rootless.base import idmap, userns
from rootless.base.errors import RootlessError

MTIME = 1_600_000_000
LONG = "l" * 120


def _as_root(fn, *args):
    if os.geteuid() == 0:
        return fn(*args)
    return userns.call(idmap.plan("auto"), fn, *args)


def _other_uid() -> int:
    """A second owner for files: 1000 when the namespace maps it, else root."""
    if os.geteuid() == 0 or idmap.plan("auto").size > 1000:
        return 1000
    return 0


@pytest.fixture
def base(tmp_path):
    yield str(tmp_path)
    # Files of subordinate uids in directories they own: remove them as namespace root.
    _as_root(remove_trees, [str(p) for p in tmp_path.iterdir() if p.is_dir()])
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


# ---- run as root (of the user namespace) --------------------------------------------
def _write(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # after chown, which clears setuid


def _build_upper(upper: str, uid: int) -> None:
    j = lambda *p: os.path.join(upper, *p)  # noqa: E731
    os.mkdir(upper, 0o755)
    os.makedirs(j("etc", "empty"))
    _write(j("etc", "hostname"), b"box\n")
    _write(j("etc", "owned"), b"mine", 0o640, uid, uid)
    os.setxattr(j("etc", "owned"), "user.note", b"kept")
    os.setxattr(j("etc", "owned"), "user.overlay.origin", b"private")
    os.makedirs(j("usr", "bin"))
    _write(j("usr", "bin", "suid"), b"#!/bin/sh\n", 0o4755)
    os.symlink("suid", j("usr", "bin", "link-to-suid"))
    _write(j("usr", "bin", "hard1"), b"same inode")
    os.link(j("usr", "bin", "hard1"), j("usr", "bin", "hard2"))
    os.mkfifo(j("fifo"))
    os.chmod(j("fifo"), 0o640)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    whiteout.make_whiteout("removed", fd)
    os.close(fd)
    # overlayfs shares one whiteout inode: two links of it are two whiteouts, not a hardlink
    os.mkdir(j("var"))
    fd = os.open(j("var"), os.O_RDONLY | os.O_DIRECTORY)
    whiteout.make_whiteout("gone1", fd)
    os.link("gone1", "gone2", src_dir_fd=fd, dst_dir_fd=fd)
    os.close(fd)
    # fuse-overlayfs's whiteout and opaque files, when it cannot mknod or set xattrs
    _write(j("var", ".wh.fusegone"), b"")
    os.makedirs(j("var", "fuseopq"))
    _write(j("var", "fuseopq", whiteout.OPAQUE_MARKER), b"")
    _write(j("var", "fuseopq", "new"), b"n")
    os.makedirs(j("opaque", "sub"))
    _write(j("opaque", "kept"), b"k")
    os.setxattr(j("opaque"), whiteout.OPAQUE_XATTR, b"y")
    os.setxattr(j("opaque"), "user.overlay.impure", b"y")
    os.makedirs(j("deep", LONG))
    _write(j("deep", LONG, LONG), b"long")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(j("sock"))
    sock.close()
    # fixed times, children before their directories
    for dirpath, dirnames, filenames in os.walk(upper, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(upper, (MTIME, MTIME))


def _describe(root: str) -> dict:
    """What a layer directory means, in overlay terms: whiteouts in either form, opaque in
    either form, kept xattrs only, hardlink groups; sockets left out."""
    out: dict[str, list] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            if whiteout.is_whiteout_stat(st) or (name.startswith(".wh.") and name != whiteout.OPAQUE_MARKER):
                target = os.path.join(os.path.dirname(rel), name.removeprefix(".wh."))
                out[os.path.normpath(target)] = ["whiteout"]
                continue
            if name == whiteout.OPAQUE_MARKER:
                continue
            if stat.S_ISSOCK(st.st_mode):
                continue
            desc = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)]
            if stat.S_ISDIR(st.st_mode):
                opaque = whiteout.is_opaque(path) or os.path.exists(os.path.join(path, whiteout.OPAQUE_MARKER))
                desc.append(opaque)
            elif stat.S_ISLNK(st.st_mode):
                desc.append(os.readlink(path))
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    desc.append(hashlib.sha256(f.read()).hexdigest())
                desc.append(inodes.setdefault(st.st_ino, rel))
            if not stat.S_ISLNK(st.st_mode):
                desc.append(sorted((k, os.getxattr(path, k).decode()) for k in os.listxattr(path)
                                   if k.startswith("user.") and not k.startswith("user.overlay.")))
            out[rel] = desc
    return out


def _scenario(base: str, uid: int) -> dict:
    upper = os.path.join(base, "upper")
    _build_upper(upper, uid)
    tar1, tar2 = os.path.join(base, "layer1.tar"), os.path.join(base, "layer2.tar")
    with open(tar1, "wb") as f:
        r1 = layer_from_upper(upper, f)
    with open(tar2, "wb") as f:
        r2 = layer_from_upper(upper, f)
    unpacked = os.path.join(base, "unpacked")
    os.mkdir(unpacked)
    r3 = unpack_layer(tar1, unpacked, r1["diff_id"])
    return {"r1": r1, "r2": r2, "r3": r3, "upper": _describe(upper), "unpacked": _describe(unpacked),
            "whiteouts": [is_wh(os.path.join(unpacked, p)) for p in ("removed", "var/gone1", "var/fusegone")],
            "opaque": [whiteout.is_opaque(os.path.join(unpacked, p)) for p in ("opaque", "var/fuseopq", "etc")]}


def is_wh(path: str) -> bool:
    return whiteout.is_whiteout_stat(os.lstat(path))


# ---- the tests ------------------------------------------------------------------------
@pytest.fixture
def committed(base):
    uid = _other_uid()
    got = _as_root(_scenario, base, uid)
    with open(os.path.join(base, "layer1.tar"), "rb") as f:
        data = f.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        order = [m.name for m in tf.getmembers()]
    return got, data, members, order, uid


def test_members_names_and_order(committed):
    _, _, members, order, _ = committed
    assert order == [
        ".wh.removed",
        "deep", f"deep/{LONG}", f"deep/{LONG}/{LONG}",
        "etc", "etc/empty", "etc/hostname", "etc/owned",
        "fifo",
        "opaque", "opaque/.wh..wh..opq", "opaque/kept", "opaque/sub",
        "usr", "usr/bin", "usr/bin/hard1", "usr/bin/hard2", "usr/bin/link-to-suid", "usr/bin/suid",
        "var", "var/.wh.fusegone", "var/.wh.gone1", "var/.wh.gone2",
        "var/fuseopq", "var/fuseopq/.wh..wh..opq", "var/fuseopq/new",
    ]
    assert not any(n.startswith(("/", "./")) for n in order)
    assert "sock" not in members


def test_member_types_modes_and_owners(committed):
    _, _, m, _, uid = committed
    assert m["etc"].isdir() and m["etc/empty"].isdir() and m["opaque"].isdir()
    assert m["etc/hostname"].isreg() and m["etc/hostname"].size == 4 and m["etc/hostname"].mode == 0o644
    assert (m["etc/owned"].uid, m["etc/owned"].gid, m["etc/owned"].mode) == (uid, uid, 0o640)
    assert m["usr/bin/suid"].mode == 0o4755
    assert m["usr/bin/link-to-suid"].issym() and m["usr/bin/link-to-suid"].linkname == "suid"
    assert m["usr/bin/hard1"].isreg() and m["usr/bin/hard1"].size == 10
    assert m["usr/bin/hard2"].islnk() and m["usr/bin/hard2"].linkname == "usr/bin/hard1"
    assert m["fifo"].isfifo() and m["fifo"].mode == 0o640
    assert m[f"deep/{LONG}/{LONG}"].size == 4
    assert all(x.mtime == MTIME for x in m.values() if not x.name.split("/")[-1].startswith(".wh."))


def test_whiteouts_opaque_markers_and_xattrs(committed):
    _, _, m, _, _ = committed
    for name in (".wh.removed", "var/.wh.gone1", "var/.wh.gone2", "var/.wh.fusegone",
                 "opaque/.wh..wh..opq", "var/fuseopq/.wh..wh..opq"):
        assert m[name].isreg() and m[name].size == 0, name
    assert m["etc/owned"].pax_headers == {"SCHILY.xattr.user.note": "kept"}
    assert not any(k for x in m.values() for k in x.pax_headers if "overlay" in k)


def test_diff_id_size_and_determinism(committed):
    got, data, _, _, _ = committed
    assert got["r1"]["diff_id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert got["r1"] == got["r2"]
    assert got["r1"]["size"] == sum(len(b) for b in (b"box\n", b"mine", b"#!/bin/sh\n", b"same inode",
                                                     b"", b"", b"n", b"k", b"long"))
    assert got["r3"]["diff_id"] == got["r1"]["diff_id"]


def test_round_trip_through_unpack(committed):
    got, _, _, _, _ = committed
    assert got["unpacked"] == got["upper"]
    assert got["whiteouts"] == [True, True, True]  # fuse-overlayfs's .wh. file is a device again
    assert got["opaque"] == [True, True, False]


def _tree_scenario(base: str) -> dict:
    root = os.path.join(base, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    _write(os.path.join(root, "bin", "sh"), b"sh", 0o755)
    os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(0, 0))
    os.setxattr(os.path.join(root, "bin"), whiteout.OPAQUE_XATTR, b"y")
    out = io.BytesIO()
    res = layer_from_tree(root, out)
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))]
    return {"res": res, "names": names, "sha": "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()}


def test_tree_has_no_overlay_markers_and_no_devices(base):
    got = _as_root(_tree_scenario, base)
    assert got["names"] == ["bin", "bin/sh"]
    assert got["res"] == {"diff_id": got["sha"], "size": 2}


def test_plain_tree_as_the_current_user(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"x" * 5000)
    (root / "z").symlink_to("/etc/passwd")
    (root / ".wh.kept").write_bytes(b"")
    out = io.BytesIO()
    res = layer_from_upper(str(root), out)
    data = out.getvalue()
    assert res == {"diff_id": "sha256:" + hashlib.sha256(data).hexdigest(), "size": 5000}
    assert len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        ms = tf.getmembers()
        assert [m.name for m in ms] == [".wh.kept", "a", "a/b", "a/b/f", "z"]
        assert tf.extractfile("a/b/f").read() == b"x" * 5000
        assert ms[-1].linkname == "/etc/passwd"
    again = io.BytesIO()
    assert layer_from_upper(str(root), again) == res and again.getvalue() == data


def test_missing_directory_is_a_rootless_error(tmp_path):
    with pytest.raises(RootlessError, match="cannot open"):
        layer_from_upper(str(tmp_path / "nope"), io.BytesIO())


def test_the_runtimes_bare_mount_points_are_no_part_of_a_layer(tmp_path):
    """What the runtime made only to mount on (an empty /etc/hosts, /proc, apt's sandbox word) is
    left out, as Docker's init layer keeps it out; the same paths with content stay."""
    from rootless.runtime.mountplan import MOUNT_POINTS
    upper = tmp_path / "upper"
    (upper / "etc" / "apt" / "apt.conf.d").mkdir(parents=True)
    (upper / "etc" / "hosts").write_text("")
    (upper / "etc" / "hostname").write_text("kept\n")
    (upper / "etc" / "apt" / "apt.conf.d" / "00rootless-sandbox").write_text("")
    (upper / "proc").mkdir()
    (upper / "sys").mkdir()
    (upper / "sys" / "made-by-a-step").write_text("x")
    (upper / "dev").mkdir()
    out = io.BytesIO()
    layer_from_upper(str(upper), out, MOUNT_POINTS)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert names == ["etc", "etc/apt", "etc/apt/apt.conf.d", "etc/hostname", "sys", "sys/made-by-a-step"]
    everything = io.BytesIO()
    layer_from_upper(str(upper), everything)
    assert "etc/hosts" in tarfile.open(fileobj=io.BytesIO(everything.getvalue())).getnames()


# ---- a build step's upper directory kept as its layer (settle_upper) -------------------------------
def _exact(root: str) -> dict:
    """Everything of a layer directory overlay or a later step could see, exactly: nanosecond
    mtimes, every xattr (the overlay's own too), the root's owner and mode; whiteouts by kind."""
    out: dict[str, list] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames) + ([""] if dirpath == root else []):
            path = os.path.join(dirpath, name) if name else root
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if whiteout.is_whiteout_stat(st):
                out[rel] = ["whiteout"]
                continue
            desc = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
            if rel != ".":
                desc.append(st.st_mtime_ns)
            if stat.S_ISLNK(st.st_mode):
                desc.append(os.readlink(path))
            else:
                desc.append(sorted((k, os.getxattr(path, k).hex()) for k in os.listxattr(path)))
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    desc.append(hashlib.sha256(f.read()).hexdigest())
                desc.append(inodes.setdefault(st.st_ino, rel))
            out[rel] = desc
    return out


def _settle_scenario(base: str, uid: int) -> dict:
    from layers.commit import settle_upper
    from rootless.runtime.mountplan import MOUNT_POINTS
    upper = os.path.join(base, "upper")
    _build_upper(upper, uid)
    os.remove(os.path.join(upper, "var", ".wh.fusegone"))  # the kernel overlay's upper: its own forms
    os.makedirs(os.path.join(upper, "proc"))  # bare mount points, and one with content
    _write(os.path.join(upper, "etc", "hosts"), b"")
    os.makedirs(os.path.join(upper, "sys", "kept"))
    for rel in ("etc/owned", "usr/bin/hard1", "fifo", "usr/bin/link-to-suid", "opaque", "etc", "sys/kept", ""):
        os.utime(os.path.join(upper, rel), ns=(MTIME * 10**9 + 123456789,) * 2, follow_symlinks=False)
    os.chmod(upper, 0o700)
    tar = os.path.join(base, "layer.tar")
    with open(tar, "wb") as f:
        info = layer_from_upper(upper, f, MOUNT_POINTS)
    unpacked = os.path.join(base, "unpacked")
    os.mkdir(unpacked, 0o755)
    unpack_layer(tar, unpacked, info["diff_id"])
    settled = settle_upper(upper, MOUNT_POINTS)
    again = io.BytesIO()
    return {"settled": settled, "upper": _exact(upper), "unpacked": _exact(unpacked),
            "diff_id": info["diff_id"], "again": layer_from_upper(upper, again, MOUNT_POINTS)["diff_id"]}


def test_a_settled_upper_is_the_very_unpacking_of_its_tar(base):
    """A build step's writable layer, settled, can be renamed into the store as its layer instead
    of the tar being unpacked: the same names, owners, modes, whole-second times, xattrs (none of
    the overlay's own but the opaque mark), whiteouts, hard links; no socket, no bare mount point;
    and it still gives the same tar."""
    got = _as_root(_settle_scenario, base, _other_uid())
    assert got["settled"] is True
    assert got["upper"] == got["unpacked"]
    assert "sock" not in got["upper"] and "proc" not in got["upper"] and "etc/hosts" not in got["upper"]
    assert "sys/kept" in got["upper"]
    assert got["upper"]["opaque"][5] == [["user.overlay.opaque", b"y".hex()]]
    assert got["again"] == got["diff_id"]


def _wh_file_scenario(base: str) -> bool:
    from layers.commit import settle_upper
    upper = os.path.join(base, "upper")
    os.makedirs(os.path.join(upper, "d"))
    _write(os.path.join(upper, "d", ".wh.x"), b"")
    return settle_upper(upper)


def test_a_wh_file_leaves_the_upper_to_be_unpacked(base):
    """A file a step named ``.wh.NAME`` is a whiteout in the tar; only unpacking makes it one."""
    assert _as_root(_wh_file_scenario, base) is False


# ---- a build step's layer kept as its tree and recipe, the tar never written ----------------------
def _step_scenario(base: str, uid: int, wh_file: bool) -> dict:
    from layers import tarsplit
    from rootless.runtime import fsaccess
    from rootless.runtime.mountplan import MOUNT_POINTS
    upper = os.path.join(base, "upper")
    _build_upper(upper, uid)
    os.remove(os.path.join(upper, "var", ".wh.fusegone"))
    if wh_file:  # a file a step named .wh.NAME: the upper cannot be settled
        _write(os.path.join(upper, "etc", ".wh.x"), b"")
    _write(os.path.join(upper, "big"), os.urandom(3 * 1024 * 1024 + 17))  # over the tar writer's chunks
    _write(os.path.join(upper, "etc", "hosts"), b"")  # a bare mount point: no member
    expected = io.BytesIO()
    info = layer_from_upper(upper, expected, MOUNT_POINTS)  # what the tar is: written before settling
    recipe = os.path.join(base, "step.tarsplit")
    open(recipe, "wb").close()
    tar = os.path.join(base, "step.tar")
    fd = os.open(tar, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        got = fsaccess.step_layer(upper, fd, recipe)
    finally:
        os.close(fd)
    with open(tar, "rb") as f:
        written = f.read()
    again = os.path.join(base, "again.tar")
    with open(again, "wb") as f:
        tarsplit.rebuild(recipe, upper, got["diff_id"], f.fileno())
    with open(again, "rb") as f:
        rebuilt = f.read()
    digest = lambda b: (len(b), hashlib.sha256(b).hexdigest())  # noqa: E731  # the answer is JSON
    return {"info": info, "got": got, "expected": digest(expected.getvalue()), "written": digest(written),
            "rebuilt": digest(rebuilt), "recipe_size": os.path.getsize(recipe), "tar_size": tarsplit.tar_size(recipe)}


def test_a_settled_step_layer_writes_only_its_recipe(base):
    """A build step's layer (kernel overlay): no tar is written, only the recipe, which with the
    settled upper re-creates byte for byte the tar the upper made before it was settled."""
    got = _as_root(_step_scenario, base, _other_uid(), False)
    assert got["got"]["settled"] is True
    assert got["got"]["diff_id"] == got["info"]["diff_id"] and got["got"]["size"] == got["info"]["size"]
    assert got["written"][0] == 0
    assert got["rebuilt"] == got["expected"]
    assert got["tar_size"] == got["expected"][0]
    assert got["recipe_size"] < 64 * 1024  # the files' bytes are named, not copied


def test_a_step_layer_that_cannot_be_settled_gets_its_tar_from_the_recipe(base):
    got = _as_root(_step_scenario, base, _other_uid(), True)
    assert got["got"]["settled"] is False
    assert got["got"]["diff_id"] == got["info"]["diff_id"]
    assert got["written"] == got["expected"]
