"""Issue 22, red team: attacks on the merged fixes, end to end as the unprivileged user.

Each test aims at a stand-in for the user's home (a directory of the test's), which must be
unchanged afterwards, or at a hole in the checks of the first fixes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

import pytest

from tests.conftest import one_error

pytestmark = pytest.mark.userns

RACE_TRIES = 25
AT_FDCWD, RENAME_EXCHANGE = -100, 2


def _snapshot(home) -> dict:
    out = {}
    for top, dirs, files in os.walk(home):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            out[os.path.relpath(p, home)] = (st.st_mode, st.st_size)
    return out


# ---- cp to and from a stopped container whose volume another container changes ------------------
@contextlib.contextmanager
def _racer(busybox, home, files: int = 0):
    """What a running container on the volume ``shared`` can do: turn ``sub`` into a link to the
    user's home and back, again and again (an atomic exchange with a link) (the stopped container
    has the same volume at /data; ``/data/sub/inner`` holds ``files`` files f0, f1... of its own).
    Done from the volume's directory by a process of the test, which swaps faster than a shell in a container."""
    busybox("volume", "create", "shared")
    top = busybox("volume", "inspect", "-f", "{{.Mountpoint}}", "shared").out.strip()
    os.makedirs(f"{top}/sub/inner")
    for i in range(files):
        with open(f"{top}/sub/inner/f{i}", "w") as f:
            f.write("mine\n")
    os.symlink(str(home), f"{top}/link")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the racer: sub is the directory or the link, in turn
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            sub, link = f"{top}/sub".encode(), f"{top}/link".encode()
            while True:
                libc.renameat2(AT_FDCWD, sub, AT_FDCWD, link, RENAME_EXCHANGE)
        finally:
            os._exit(0)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_cp_into_a_stopped_container_raced_through_a_shared_volume_writes_nothing_outside(busybox, tmp_path):
    home = tmp_path / "home"
    (home / "inner").mkdir(parents=True)
    before = _snapshot(home)
    src = tmp_path / "planted"
    src.write_text("from the cp\n")
    with _racer(busybox, home):
        busybox("create", "--name", "stopped", "-v", "shared:/data", "busybox", "true")
        for i in range(RACE_TRIES):
            r = busybox("cp", str(src), "stopped:/data/sub/inner/", expect=None)
            assert "internal error" not in r.err and "Traceback" not in r.err, r.err
            assert _snapshot(home) == before, f"try {i}: cp wrote through the racing container's link"


def test_cp_from_a_stopped_container_raced_through_a_shared_volume_reads_nothing_outside(busybox, tmp_path):
    home = tmp_path / "home"
    (home / "inner").mkdir(parents=True)
    for i in range(40):
        (home / "inner" / f"f{i}").write_text("HOME\n")  # the size of the container's own "mine\n"
    with _racer(busybox, home, files=40):
        busybox("run", "--name", "stopped", "-v", "shared:/data", "busybox", "true")
        for i in range(RACE_TRIES):
            out = tmp_path / f"out{i}"
            r = busybox("cp", "stopped:/data/sub/inner", str(out), expect=None)
            assert "internal error" not in r.err and "Traceback" not in r.err, r.err
            leaked = [p.name for p in out.glob("f*") if p.read_text() != "mine\n"] if out.is_dir() else []
            assert not leaked, f"try {i}: cp read the user's files through the racer's link: {leaked}"


def test_mount_points_in_a_shared_volume_raced_by_another_container_are_made_nowhere_outside(busybox, tmp_path):
    # the container's mounts below a shared volume: their mount points (a directory, a file) are
    # made inside the volume at each start, where another container swaps a directory for a link
    home = tmp_path / "home"
    home.mkdir()
    before = _snapshot(home)
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("bound\n")
    with _racer(busybox, home):
        busybox("create", "--name", "nested", "-v", "shared:/data", "-v", "inner:/data/sub/made",
                "-v", f"{hostfile}:/data/sub/planted.txt", "busybox", "true")
        for i in range(RACE_TRIES):
            r = busybox("start", "-a", "nested", expect=None)
            assert "internal error" not in r.err and "Traceback" not in r.err, r.err
            assert _snapshot(home) == before, f"try {i}: a mount point was made through the racer's link"


# ---- a tmpfs that reaches /proc through the image's own link ------------------------------------
@pytest.mark.parametrize("target", ["/x", "/x/sys"])
def test_a_tmpfs_that_reaches_proc_through_a_link_in_the_container_is_refused_at_start(busybox, target):
    # the container's own layer holds x -> /proc (committed): --tmpfs /x covered the whole of /proc
    # (the masks of /proc/kcore and the others then found nothing to mask)
    busybox("run", "--name", "mk", "busybox", "ln", "-s", "/proc", "/x")
    busybox("commit", "mk", "linkproc")
    r = busybox("run", "--rm", "--tmpfs", target, "linkproc", "cat", "/proc/self/stat", expect=125)
    one_error(r, "inside /proc" if target != "/x" else "/proc")


# ---- trees deeper than Python's recursion, made by a container or an image -----------------------
DEEP = 1100
MAKE_DEEP = f"i=0; while [ $i -lt {DEEP} ]; do mkdir d; cd d; i=$((i+1)); done; echo bottom > f"


@pytest.fixture
def deep(busybox, tmp_path):
    """busybox, and no deep tree left behind afterwards (pytest's own clean-up of old test
    directories recurses, and would fail on one)."""
    yield busybox
    from layers.store import remove_trees
    ids = busybox("ps", "-aq", expect=None).out.split()
    if ids:
        busybox("rm", "-f", *ids, expect=None)
    for vol in busybox("volume", "ls", "-q", expect=None).out.split():
        busybox("volume", "rm", "-f", vol, expect=None)
    busybox("rmi", "-f", "deepseed", expect=None)
    remove_trees([str(tmp_path / "out")])


def test_a_tree_deeper_than_pythons_recursion_is_copied_out_and_removed(deep, tmp_path):
    busybox = deep
    busybox("run", "--name", "deep", "busybox", "sh", "-c", f"mkdir /top; cd /top; {MAKE_DEEP}")
    out = tmp_path / "out"
    out.mkdir()
    busybox("cp", "deep:/top", str(out))  # was an internal RecursionError (the unpack's walk, then rmtree)
    assert (out / "top" / "/".join(["d"] * DEEP) / "f").read_text() == "bottom\n"
    top = busybox("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "deep", expect=None).out.strip()
    busybox("rm", "deep")  # was "RecursionError" with the container's files left in the store
    assert busybox("ps", "-aq").out == ""
    assert not top or not os.path.exists(top)


def test_chown_of_U_on_a_volume_deeper_than_pythons_recursion(deep):
    busybox = deep
    busybox("run", "--rm", "-v", "deepv:/v", "busybox", "sh", "-c", f"cd /v; {MAKE_DEEP}")
    busybox("run", "--rm", "-u", "1000:1000", "-v", "deepv:/v:U", "busybox", "true")  # was RecursionError
    path = "/v/" + "/".join(["d"] * DEEP) + "/f"
    assert busybox("run", "--rm", "-v", "deepv:/v", "busybox", "stat", "-c", "%u", path).out.strip() == "1000"


def test_an_images_volume_deeper_than_pythons_recursion_fills_a_new_volume(deep, tmp_path):
    busybox = deep
    from tests.conftest import _load_mkimages
    mk = _load_mkimages()
    entries = [mk.dir_entry("seed/" + "/".join(["d"] * n), 0o755, 0, 0) for n in range(1, DEEP + 1)]
    entries.append(mk.file_entry("seed/" + "/".join(["d"] * DEEP) + "/f", "bottom\n"))
    base = mk.Layer(mk.make_layer_tar(mk.busybox_entries(mk.DEFAULT_BUSYBOX)), "busybox")
    image = mk.Image("deepseed", "deepseed", [base, mk.Layer(mk.make_layer_tar(entries), "deep")],
                     {"Env": [mk.DEFAULT_PATH], "Cmd": ["sh"], "Volumes": {"/seed": {}}})
    mk.write_image(str(tmp_path), image)
    busybox("load", "-i", str(tmp_path / "deepseed.tar"))
    path = "/seed/" + "/".join(["d"] * DEEP) + "/f"
    assert busybox("run", "--rm", "-v", "fresh:/seed", "deepseed", "cat", path).out.strip() == "bottom"


# ---- an image whose /etc/passwd is a FIFO ------------------------------------------------------
@pytest.mark.parametrize("args", [[], ["-u", "1000", "-v", "owned:/x:U"]])
def test_an_images_passwd_that_is_a_fifo_does_not_hang_the_start(busybox, args):
    # the user lookup opened it and waited for a writer for ever, deaf to ctrl-C
    busybox("run", "--name", "mk", "busybox", "sh", "-c", "rm /etc/passwd /etc/group; mkfifo /etc/passwd /etc/group")
    busybox("commit", "mk", "fifopw")
    r = busybox("run", "--rm", *args, "fifopw", "true", expect=None, timeout=30)
    assert "internal error" not in r.err and "Traceback" not in r.err, r.err


# ---- tcp://localhost: the other loopback address of the same port ----------------------------------
def test_tcp_localhost_leaves_no_loopback_address_of_its_port_to_another_user(rl):
    """``system service tcp://localhost:PORT`` listened on 127.0.0.1 only: another user could listen
    on [::1]:PORT, where a client of ``localhost`` (tried first) sent it its requests and registry
    credentials. The port is held on both addresses; the owner is still served."""
    from tests.e2e.test_escape_api import TcpService
    svc = TcpService(rl, "localhost", "--time", "0")
    try:
        script = "\n".join([
            "import os, socket",
            "os.setgid(1000); os.setuid(1000)",
            "s = socket.socket(socket.AF_INET6)",
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
            "try:",
            f"    s.bind(('::1', {svc.port})); s.listen(); print('squatted')",
            "except OSError as e:",
            "    print('refused', e.errno)"])
        r = rl("unshare", "python3", "-c", script)
        assert r.out.strip().startswith("refused"), r.out
        assert svc.ping() == b"OK"
    finally:
        svc.stop()


def test_mount_points_are_made_where_the_kernel_has_no_openat2(tmp_path, monkeypatch):
    import errno

    from rootless.base import syscalls
    from rootless.runtime import rootfs

    def nosys(*_args, **_kwargs):
        raise OSError(errno.ENOSYS, "openat2: Function not implemented")
    root = tmp_path / "root"
    root.mkdir()
    for target, is_file in ((root / "a" / "b" / "f.txt", True), (root / "d" / "e", False)):
        for openat2 in (syscalls.openat2, nosys):
            monkeypatch.setattr(syscalls, "openat2", openat2)
            fd = rootfs.mount_point(str(root), str(target), is_file)
            try:
                assert os.readlink(f"/proc/self/fd/{fd}") == str(target)
                assert target.is_file() if is_file else target.is_dir()
            finally:
                os.close(fd)


# ---- cp CONTAINER:DIR/. (a directory's contents) to the host ------------------------------------
@pytest.mark.parametrize("src", ["/etc/.", "/"])
def test_cp_of_a_directorys_contents_out_makes_or_fills_the_destination(busybox, tmp_path, src):
    # was an internal error (EBUSY: the temporary directory's "." renamed over DEST)
    busybox("create", "--name", "c", "busybox", "true")
    made = tmp_path / "made"
    busybox("cp", f"c:{src}", str(made))
    assert (made / "passwd" if src != "/" else made / "etc" / "passwd").is_file()
    into = tmp_path / "into"
    into.mkdir()
    (into / "passwd").symlink_to(tmp_path / "victim")  # replaced, never written through
    busybox("cp", "c:/etc/.", str(into))
    assert (into / "passwd").is_file() and not (into / "passwd").is_symlink()
    assert not (tmp_path / "victim").exists()
