"""A full disk under the store (issue 22, item 8): a container that logs goes on (its output is
dropped, as Docker's json-file does), read-only commands and ``rm -f`` work, a command that must
write says so in one line naming the store, and nothing half-written is left behind.

The store lives on one of the small tmpfs that `.ci/run` mounts at /mnt/rootless-small/{0..3}
(an unprivileged test cannot mount one); a slot is locked, so parallel workers never share one.
Without them the tests skip, saying why; in CI (where they are part of the host set-up) they fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Rootless, one_error, rootless_argv, wait_for

pytestmark = pytest.mark.userns

SMALL = Path("/mnt/rootless-small")
SLOTS = 4


def _need(what: str, reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}: {reason} (CI mounts them: .ci/run)")
    pytest.skip(f"{what}: {reason}")


def _is_small_tmpfs(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == str(path) and fields[sep + 1] == "tmpfs":
                return os.access(path, os.W_OK)
    return False


@contextlib.contextmanager
def _slot():
    """An exclusive small tmpfs (flock on a file in it, so no other worker takes it meanwhile)."""
    usable = [SMALL / str(i) for i in range(SLOTS) if _is_small_tmpfs(SMALL / str(i))]
    if not usable:
        _need("small tmpfs stores", f"none of {SMALL}/0..{SLOTS - 1} is a tmpfs this user can write")
    deadline = time.monotonic() + 600
    while True:
        for path in usable:
            fd = os.open(path / ".slot.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield path
            finally:
                os.close(fd)
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no free slot in {SMALL} after 10 minutes")
        time.sleep(0.2)


def _wipe(path: Path, tmp_path: Path) -> None:
    """Remove everything in a slot but its lock (a store's files may belong to subordinate ids:
    removed from inside the user namespace)."""
    doomed = [str(p) for p in path.iterdir() if p.name != ".slot.lock"]
    if doomed:
        env = dict(os.environ, ROOTLESS_ROOT=str(tmp_path / "wipe-store"), XDG_RUNTIME_DIR=str(tmp_path / "run"))
        subprocess.run(rootless_argv() + ["unshare", "rm", "-rf", *doomed], env=env, check=False,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    left = [p.name for p in path.iterdir() if p.name != ".slot.lock"]
    assert not left, f"cannot empty {path}: {left}"


@pytest.fixture
def small(tmp_path, images) -> Rootless:
    """busybox loaded into a store on a small tmpfs of its own."""
    with _slot() as path:
        _wipe(path, tmp_path)
        rl = Rootless(tmp_path)
        rl.root = path / "store"
        rl.filler = path / "filler"
        rl.load(images, "busybox")
        try:
            yield rl
        finally:
            with contextlib.suppress(OSError):
                rl.filler.unlink()
            ids = rl("ps", "-aq", expect=None).out.split()
            if ids:
                rl("rm", "-f", *ids, expect=None)
            _wipe(path, tmp_path)


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem is full (big pieces, then small ones)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 12):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)
    assert os.statvfs(path).f_bavail == 0


def leftovers(rl: Rootless) -> list[str]:
    """Temporary files of atomic writes and half-made records anywhere in the store."""
    found = []
    for dirpath, dirnames, filenames in os.walk(rl.root, onerror=lambda e: None):
        dirnames[:] = [d for d in dirnames if d not in ("upper", "work", "merged", "_data")
                       and not Path(dirpath, d).is_relative_to(rl.root / "layers")]
        found += [os.path.join(dirpath, n) for n in filenames + dirnames if n.startswith((".tmp-", ".new-"))]
    return found


NO_SPACE = "no space left on the device of the store"
LOGGER = "i=0; while true; do i=$((i+1)); echo line $i of a container that logs a lot; done"


def _log_grows(rl: Rootless, cid: str) -> int:
    return sum(p.stat().st_size for p in (rl.root / "containers" / cid).glob("ctr.log*"))


def test_logging_container_goes_on_and_commands_work_on_a_full_disk(small):
    rl = small
    cid = rl("run", "-d", "--name", "logger", "busybox", "sh", "-c", LOGGER).out.strip()
    wait_for(lambda: _log_grows(rl, cid) > 100_000, what="the log to grow")
    fill(rl.filler)
    time.sleep(1.5)  # the container writes on, into a full disk, all this time
    for argv in (["ps", "-a"], ["inspect", "logger"], ["logs", "--tail", "1", "logger"], ["images"],
                 ["volume", "ls"], ["info"], ["system", "df"]):
        rl(*argv)
    assert rl("inspect", "-f", "{{.State.Status}}", "logger").out.strip() == "running"
    last = rl("logs", "--tail", "1", "logger").out
    assert last.startswith("line ") and last.endswith(" of a container that logs a lot\n"), last
    # a command that must write says so in one line naming the store, and leaves nothing
    r = rl("create", "busybox", "true", expect=125)
    one_error(r, NO_SPACE, str(rl.root))
    r = rl("volume", "create", "v1", expect=125)
    one_error(r, NO_SPACE)
    assert leftovers(rl) == []
    # rm -f frees the space: afterwards the store works again
    rl("rm", "-f", "logger")
    assert rl("ps", "-aq").out == ""
    rl.filler.unlink()
    assert rl("run", "--rm", "busybox", "echo", "ok").out == "ok\n"
    assert leftovers(rl) == []


def test_dead_keeper_on_a_full_disk_is_listed_and_removed(small):
    """The keeper's exit could not be recorded (killed while the disk was full): every reader
    reconciles the record without needing to write it."""
    rl = small
    cid = rl("run", "-d", "--name", "stuck", "busybox", "sleep", "1000").out.strip()
    rec = json.loads((rl.root / "containers" / cid / "container.json").read_text())
    fill(rl.filler)
    os.kill(rec["state"]["keeper"], signal.SIGKILL)  # and its container with it
    os.kill(rec["state"]["pid"], signal.SIGKILL)
    for _ in range(3):  # every try alike: no temporary file piles up
        assert "Exited (137)" in rl("ps", "-a").out
        assert rl("inspect", "-f", "{{.State.Status}}", "stuck").out.strip() == "exited"
    assert leftovers(rl) == []
    rl("rm", "-f", "stuck")
    assert rl("ps", "-aq").out == ""
    assert leftovers(rl) == []
    assert not (rl.root / "containers" / cid).exists()


def test_logging_container_attached_is_told_once(small):
    """An attached run is warned once that its log is dropped; its output still reaches it."""
    rl = small
    fill(rl.filler)
    with contextlib.suppress(OSError):  # room for the container's record, none for its log
        os.truncate(rl.filler, max(0, rl.filler.stat().st_size - 64 * 1024))
    r = rl("run", "--rm", "busybox", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); "
           "echo line $i of a container that logs a lot; done")
    assert r.out.count("\n") == 20000
    warnings = [line for line in r.err.splitlines() if "cannot write the container's log" in line]
    assert len(warnings) == 1, r.err
    assert leftovers(rl) == []



def test_api_answers_a_full_disk_with_docker_s_500_naming_the_store(small):
    from tests.apiservice import ApiService
    rl = small
    api = ApiService(rl)
    try:
        fill(rl.filler)
        status, body = api.request("POST", "/volumes/create", {"Name": "v1"})
        assert status == 500, (status, body)
        assert body["message"].startswith(f"{NO_SPACE} {rl.root}: "), body
        status, body = api.request("GET", "/containers/json?all=1")
        assert status == 200, (status, body)
        assert "Traceback" not in api.service_log()
    finally:
        api.stop()
    assert leftovers(rl) == []


def test_removing_images_works_on_a_full_disk(small, images):
    """rmi and image prune are how the error line says to make room: they must work when the
    index cannot be written before something is freed."""
    rl = small
    rl.load(images, "layered")
    rl("tag", "busybox", "spare:1")
    fill(rl.filler)
    out = rl("rmi", "layered").out
    assert "Deleted: sha256:" in out
    assert "Deleted: sha256:" in rl("image", "prune", "-a", "-f").out
    assert rl("images", "-q").out == ""
    assert rl("system", "check").out.startswith("the store ")
    assert leftovers(rl) == []


def test_commit_on_a_full_disk_names_the_store(small):
    """The layer's tar is written by a helper in the user namespace: its ENOSPC travels back as
    the same one line."""
    rl = small
    rl("run", "--name", "c", "--network", "none", "busybox", "sh", "-c", "head -c 1000000 /dev/urandom > /f")
    fill(rl.filler)
    r = rl("commit", "c", "c:1", expect=125)
    one_error(r, NO_SPACE, str(rl.root))
    assert list((rl.root / "tmp").iterdir()) == [] and leftovers(rl) == []
    assert rl("images", "--format", "{{.Repository}}").out.split() == ["busybox"]


def test_pull_on_a_full_disk_says_so_and_what_it_stored_is_counted_and_pruned(small, registry):
    """A pull that runs out of room ends with the one line; what it stored for an image it never
    registered (its config, finished blobs and layers) is a leftover once it is gone: check names
    it, df counts it, image prune removes it."""
    rl = small
    rl.configure(insecure=(registry.host,))
    rl("run", "--name", "big", "--network", "none", "busybox", "sh", "-c",
       "head -c 8000000 /dev/urandom > /big")
    ref = f"{registry.host}/full/big:1"
    rl("commit", "big", ref)
    rl("rm", "big")
    rl("push", "-q", ref)
    rl("rmi", ref)
    before = sorted(p.name for p in (rl.root / "blobs" / "sha256").iterdir())
    fill(rl.filler)
    os.truncate(rl.filler, rl.filler.stat().st_size - 3_000_000)  # room for a part of the big layer
    r = rl("pull", "-q", ref, expect=125)
    one_error(r, NO_SPACE, str(rl.root))
    stored = sorted(set(p.name for p in (rl.root / "blobs" / "sha256").iterdir()) - set(before))
    assert stored  # its config at least
    problems = rl("system", "check", expect=1).out
    for name in stored:
        assert f"{name}: a blob no image uses" in problems, problems
    row = [ln.split() for ln in rl("system", "df").out.splitlines() if ln.startswith("Leftovers")]
    assert row and int(row[0][1]) >= len(stored), row
    rl("image", "prune", "-f")
    assert sorted(p.name for p in (rl.root / "blobs" / "sha256").iterdir()) == before
    assert rl("system", "check").out.startswith("the store ")
    rl.filler.unlink()
    rl("pull", "-q", ref)  # and the store works again
    assert rl("run", "--rm", "--network", "none", ref, "wc", "-c", "/big").out.split()[0] == "8000000"
