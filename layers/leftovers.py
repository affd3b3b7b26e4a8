"""What killed commands left in the store: temporary files and directories whose owner is gone.

Every command that stages something in the store names it with its pid (``tmp/blob-PID-NS``,
``tmp/commit-ID-PID.tar``, ``tmp/build-PID-XXXX``, ``layers/.tmp-DIFF-PID-NS``, an atomic
write's ``.tmp-NAME-PID`` ...). Its owner is gone when no process has that pid, or when the
process that has it now started after the thing last changed (its ctime, which no one can set
back: the pid was reused): the owner of a thing is alive while it is, and changes it only while
alive. A resumable download (``tmp/partial-HEX``) is held by an flock while a pull writes it:
unlocked, it is a leftover. Nothing here is removed while its owner may still write it.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.base.paths import Paths

Leftover = namedtuple("Leftover", "path size what")

_SLACK = 2.0  # seconds: the boot time that dates processes has a one-second resolution

# (pattern of a name in tmp/, what it is); the group is the owner's pid
_IN_TMP = (
    (r"blob-(\d+)-\d+", "a blob being stored (pull, load, import or commit)"),
    (r"commit-[0-9a-f]+-(\d+)\.tar", "the layer of a commit"),
    (r"build-(\d+)-[^/]+", "the files of a build"),
    (r"probe-(\d+)-\d+", "an overlay probe"),
    (r"api-[a-z]+-(\d+)-[^/]+", "an upload to the API service (load, import, build, cp)"),
)
_IN_LAYERS = (
    (r"\.tmp-[0-9a-f]+-(\d+)-\d+", "a layer being unpacked"),
    (r"\.del-[0-9a-f]+-(\d+)-\d+", "a layer being removed"),
)
_ATOMIC = (r"\.tmp-.+-(\d+)", "a file being written")
_IN_VOLUMES = ((r"\.del-.+-(\d+)", "a volume being removed"),)


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when there is none (or
    only its zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def owner_gone(pid: int, changed: float) -> bool:
    """Whether the process that named a thing changed at ``changed`` with ``pid`` is gone."""
    if pid == os.getpid():
        return False
    started = process_started(pid)
    return started is None or started > changed + _SLACK


def size_of(path: str) -> int:
    """The bytes of the file or tree ``path`` (0 when it is gone)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda e: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _match(directory: str, patterns: tuple[tuple[str, str], ...], found: list) -> None:
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        for pattern, what in patterns:
            m = re.fullmatch(pattern, name)
            if m is None:
                continue
            path = os.path.join(directory, name)
            try:  # ctime, not mtime: an unpack sets a layer's mtime to the archive's, in the past
                changed = os.lstat(path).st_ctime
            except OSError:
                break
            if owner_gone(int(m.group(1)), changed):
                found.append(Leftover(path, size_of(path), what))
            break


def _unlocked(path: str) -> bool:
    """Whether no process holds ``path``'s flock (a pull going on with that download)."""
    return _lock_free(path, os.O_RDONLY, fcntl.LOCK_SH)


def _lock_free(path: str, flags: int, lock: int) -> bool:
    """Whether the flock ``lock`` on ``path`` (opened with ``flags``) could be taken right now; it
    is let go at once."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, lock | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def find(paths: Paths) -> list[Leftover]:
    """Every leftover in the store, in a stable order."""
    found: list[Leftover] = []
    _match(paths.tmp, _IN_TMP, found)
    try:
        partials = sorted(n for n in os.listdir(paths.tmp) if n.startswith("partial-"))
    except OSError:
        partials = []
    for name in partials:
        path = os.path.join(paths.tmp, name)
        if _unlocked(path):
            found.append(Leftover(path, size_of(path), "a broken-off download (kept for the next pull)"))
    _match(paths.layers, _IN_LAYERS, found)
    _match(paths.volumes, _IN_VOLUMES, found)
    dirs = [paths.root, paths.containers, paths.volumes]
    try:
        dirs += [paths.container(c) for c in os.listdir(paths.containers) if len(c) == 64]
    except OSError:
        pass
    for d in dirs:
        _match(d, (_ATOMIC,), found)
    return sorted(found)


def remove(items: list[Leftover], userns_call: Callable) -> int:
    """Remove ``items``, each checked again just before (its owner may have been a process
    that only now shows to be alive, and a pull may have taken a download up again); the bytes
    freed. Directories go from inside the user namespace (their files may belong to
    subordinate ids)."""
    from layers.store import remove_trees
    again = {lo.path for lo in find_at([os.path.dirname(lo.path) for lo in items])}
    freed = 0
    trees = []
    for lo in items:
        if lo.path not in again:
            continue
        if os.path.basename(lo.path).startswith("partial-"):
            if _unlink_unlocked(lo.path):
                freed += lo.size
            continue
        if os.path.isdir(lo.path) and not os.path.islink(lo.path):
            trees.append(lo.path)
        else:
            try:
                os.unlink(lo.path)
            except OSError:
                continue
        freed += lo.size
    if trees:
        userns_call(remove_trees, trees)
    return freed


def _unlink_unlocked(path: str) -> bool:
    """Remove a download no pull holds, holding its lock meanwhile (a pull that opens it next
    finds it gone and starts afresh)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def find_at(directories: list[str]) -> list[Leftover]:
    """The leftovers directly in ``directories`` (any of the store's kinds)."""
    found: list[Leftover] = []
    for d in sorted(set(directories)):
        _match(d, _IN_TMP + _IN_LAYERS + (_ATOMIC,) + _IN_VOLUMES, found)
        try:
            names = sorted(n for n in os.listdir(d) if n.startswith("partial-"))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(d, name)
            if _unlocked(path):
                found.append(Leftover(path, size_of(path), "a broken-off download"))
    return found


def half_made(directory: str, prefixes: tuple[str, ...]) -> list[Leftover]:
    """The entries of ``directory`` made aside under a lock that names no owner (a container
    or volume being created, ``.new-``, or removed, ``.del-``): leftovers unless someone holds
    that lock now (the caller's to take)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith(prefixes))
    except OSError:
        return []
    what = {".new-": "a half-made record (a killed create)", ".del-": "a half-removed one (a killed rm)"}
    return [Leftover(os.path.join(directory, n), size_of(os.path.join(directory, n)), what.get(n[:5], "left aside"))
            for n in names]


# ---- blobs and layers no image names ----------------------------------------------------------
def _staging_path(paths: Paths) -> str:
    from layers.store import STAGING_LOCK
    return os.path.join(paths.root, STAGING_LOCK)


def staging_free(paths: Paths) -> bool:
    """Whether no command is storing blobs or layers for an image it has yet to register."""
    return _lock_free(_staging_path(paths), os.O_RDWR | os.O_CREAT, fcntl.LOCK_EX)


def unreferenced(paths: Paths, blobs: set[str], layers: set[str]) -> list[Leftover]:
    """The blobs and unpacked layers that nothing names (``blobs``, ``layers``: the digests and
    diff ids images, the build cache and containers use): left by a pull, load or commit that did
    not finish. None while a command is staging (it may be one of its own)."""
    if not staging_free(paths):
        return []
    return _unnamed(paths, blobs, layers)


def _unnamed(paths: Paths, blobs: set[str], layers: set[str]) -> list[Leftover]:
    """The blobs and layer trees of the store whose digests are not in ``blobs`` / ``layers``."""
    found = []
    for directory, known, what in (
            (paths.blobs, blobs, "a blob no image uses (a pull, load or commit that did not finish)"),
            (paths.layers, layers, "a layer no image uses (a pull, load or commit that did not finish)")):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            m = re.fullmatch(r"([0-9a-f]{64})(\.tarsplit)?", name)  # a layer tar kept as its recipe
            if m and f"sha256:{m.group(1)}" not in known:
                path = os.path.join(directory, name)
                found.append(Leftover(path, size_of(path), what))
    return found


def remove_unreferenced(paths: Paths, blobs: set[str], layers: set[str], userns_call: Callable) -> list[Leftover]:
    """Remove what :func:`unreferenced` finds, holding the staging lock meanwhile (a command that
    starts to stage waits); what was removed. The caller holds the store's lock."""
    try:
        fd = os.open(_staging_path(paths), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []
        found = _unnamed(paths, blobs, layers)
        trees = []
        for lo in found:
            if os.path.isdir(lo.path):
                aside = os.path.join(os.path.dirname(lo.path), f".del-{os.path.basename(lo.path)[:12]}-{os.getpid()}-0")
                os.rename(lo.path, aside)  # out of sight at once, as the store removes a layer
                trees.append(aside)
            else:
                os.unlink(lo.path)
        if trees:
            from layers.store import remove_trees
            userns_call(remove_trees, trees)
        return found
    finally:
        os.close(fd)
