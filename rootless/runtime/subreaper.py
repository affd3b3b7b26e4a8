"""``--pid host`` (``HostConfig.PidMode: host``): a container without a pid namespace of its own.

With a pid namespace, the death of PID 1 ends every process of the container; without one, its
processes would outlive it. The keeper is a child subreaper (``child._Keeper.mount_root``), so the
container's orphans (a daemonized grandchild) become the keeper's children. The container's
processes are then PID 1 and its descendants, and every other descendant of the keeper that
does not come from a helper forked before PID 1 (slirp4netns, fuse-overlayfs).
The helpers are held by pidfd (:class:`HelperSet`): a helper that has gone and been reaped is no
longer one, even when a process of the container gets its pid.

:class:`EndWatch` is a timer of the keeper's supervise loop. While the container runs, it reaps
the orphans that have exited (:meth:`EndWatch.reap_orphans`: no zombie piles up), never a child
whose status another part of the keeper waits for (PID 1, a helper, a healthcheck's probe). Once
PID 1 has exited (seen without reaping it, the keeper's wait for its status stays as it is), it
SIGKILLs the rest, whose output then ends, and so does the loop. :func:`end` does the same after
the loop, and reaps them.
"""

from __future__ import annotations

import os
import signal
import time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

POLL = 0.5  # the loop's longest sleep: SIGCHLD wakes it at PID 1's exit, this is the safety net
SCAN_EVERY = 0.1  # the longest an orphan's zombie waits behind a known child's (a scan of /proc)


def pid_host(spec) -> bool:
    """``--pid host``: the container shares the host's pid namespace."""
    return ((getattr(spec, "asked", None) or {}).get("PidMode") or "") == "host"


def parents() -> dict[int, tuple[int, str]]:
    """Every process this user can see: pid -> (parent pid, state letter)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(d)] = (int(fields[1]), fields[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    return {p for p, (pp, _s) in parents().items() if pp == pid}


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """``root`` and every process below it, parents before their children."""
    table = parents() if table is None else table
    below: dict[int, list[int]] = {}
    for p, (pp, _s) in table.items():
        below.setdefault(pp, []).append(p)
    out, todo = [], [root]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += sorted(below.get(p, ()))
    return out


class HelperSet:
    """Processes held by pidfd: ``pid in helpers`` while that very process exists (running or a
    zombie not yet reaped); once it is reaped its pid may be another process's, which is not a
    helper. Without pidfds (a kernel before 5.3) the pids alone are compared."""

    def __init__(self, pids=()):
        self.fds: dict[int, int | None] = {}
        for pid in pids:
            try:
                self.fds[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # gone already: whatever gets its pid is not a helper
            except (OSError, AttributeError):
                self.fds[pid] = None  # no pidfds here: by pid

    def __contains__(self, pid: object) -> bool:
        if not isinstance(pid, int) or pid not in self.fds:
            return False
        fd = self.fds[pid]
        return fd is None or _pidfd_pid(fd) in (pid, None)

    def __iter__(self):
        return iter([p for p in self.fds if p in self])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds = {}


def _pidfd_pid(fd: int) -> int | None:
    """The pid a pidfd stands for: -1 once that process has been reaped (None: not told)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def helpers_of(keeper: int) -> HelperSet:
    """The keeper's descendants before PID 1 is forked: its helpers, each process of theirs (a
    daemon still leaving its first parent, as fuse-overlayfs does, is the keeper's child later)."""
    return HelperSet(p for p in descendants(keeper) if p != keeper)


def container_pids(keeper: int, helpers, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """The container's processes: the keeper's descendants but its ``helpers`` and theirs (and the
    keeper itself)."""
    table = parents() if table is None else table
    roots = [p for p, (pp, _s) in table.items() if pp == keeper and p not in helpers]
    out = []
    for r in roots:
        out += descendants(r, table)
    return [p for p in out if p not in helpers]


def exited(pid: int) -> bool:
    """Whether the keeper's child ``pid`` has exited (left for the keeper's wait to reap). A
    tracer's wait reports its tracee's stops whatever the flags (``exitwatch`` traces PID 1 in its
    first second, and each signal to it is a stop there): only an exit's code counts."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None and info.si_code in (os.CLD_EXITED, os.CLD_KILLED, os.CLD_DUMPED)
    except ChildProcessError:  # gone, or not waitable this instant (as PID 1 is while ptrace lets it go)
        return process_state(pid) in ("", "Z", "X")


def process_state(pid: int) -> str:
    """The state letter of ``pid`` in /proc ("" when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def in_namespace(mnt: str, table: dict[int, tuple[int, str]]) -> list[int]:
    """The processes in the mount namespace ``mnt`` (``/proc/PID/ns/mnt``'s text): those of
    ``exec`` and the healthchecks, which join PID 1's and are no descendants of the keeper."""
    out = []
    for p in table:
        try:
            if os.readlink(f"/proc/{p}/ns/mnt") == mnt:
                out.append(p)
        except OSError:
            continue
    return out


def kill_all(keeper: int, helpers, pid1: int, mnt: str = "", timeout: float = 5.0) -> None:
    """SIGKILL every process of the container but the exited PID 1, until none is left alive
    (one that forks meanwhile is found by the next round); ``mnt``: PID 1's mount namespace,
    whose processes are the container's too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = parents()
        ours = set(container_pids(keeper, helpers, table)) | set(in_namespace(mnt, table) if mnt else ())
        alive = [p for p in ours if p not in (pid1, keeper) and table[p][1] not in "ZX"]
        if not alive:
            return
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def reap_all(keeper: int, helpers, pid1: int, timeout: float = 5.0) -> None:
    """Wait for the killed processes: each is the keeper's child once its parent is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in container_pids(keeper, helpers) if p != pid1]
        if not left:
            return
        for p in children(keeper) & set(left):
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.005)


class EndWatch:
    """The supervise loop's timer: the orphans are reaped as they exit; at PID 1's exit, the
    container's other processes are killed. ``waited()``: the pids of the keeper's other children
    whose status someone waits for (a healthcheck's probe), set by the keeper."""

    def __init__(self, pid1: int, helpers: HelperSet):
        self.pid1, self.helpers, self.keeper = pid1, helpers, os.getpid()
        self.done = False
        self.mnt = ""  # PID 1's mount namespace, once it runs the command (note_namespace)
        self.waited: Callable[[], Collection[int]] = tuple
        self.scanned = 0.0

    def note_namespace(self) -> None:
        """PID 1 has exec'd its command: its mount namespace (its own, unshared) is the container's."""
        try:
            mnt = os.readlink(f"/proc/{self.pid1}/ns/mnt")
        except OSError:
            return
        if mnt != os.readlink("/proc/self/ns/mnt"):
            self.mnt = mnt

    def timeout(self) -> float | None:
        return None if self.done else POLL

    def tick(self) -> None:
        if not self.done and exited(self.pid1):
            self.done = True
            kill_all(self.keeper, self.helpers, self.pid1, self.mnt)
        self.reap_orphans()

    def orphan(self, pid: int) -> bool:
        """Whether the keeper's child ``pid`` is an orphan of the container, whose status nobody waits for."""
        return pid != self.pid1 and pid not in self.helpers and pid not in self.waited()

    def reap_orphans(self) -> None:
        """Reap the orphans that have exited, each by its pid: the exited child the kernel names
        first (seen without reaping it) while it is an orphan, then, when a child someone else
        waits for stands first, every zombie child found in /proc (at most every SCAN_EVERY)."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            if not self.orphan(info.si_pid):
                break
            _reap(info.si_pid)
        now = time.monotonic()
        if now - self.scanned < SCAN_EVERY:
            return
        self.scanned = now
        for p, (pp, st) in parents().items():
            if pp == self.keeper and st == "Z" and self.orphan(p):
                _reap(p)

    def end(self) -> None:
        """After PID 1 is reaped: nothing of the container is left, no zombie either."""
        kill_all(self.keeper, self.helpers, self.pid1, self.mnt)
        reap_all(self.keeper, self.helpers, self.pid1)
        self.helpers.close()


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class Timers:
    """Two timers of the supervise loop as one (either may be None)."""

    def __init__(self, *timers):
        self.timers = [t for t in timers if t is not None]

    def timeout(self) -> float | None:
        waits = [w for w in (t.timeout() for t in self.timers) if w is not None]
        return min(waits) if waits else None

    def tick(self) -> None:
        for t in self.timers:
            t.tick()


def combined(*timers):
    """One timer for the loop: None, the only one, or :class:`Timers`."""
    present = [t for t in timers if t is not None]
    return present[0] if len(present) == 1 else (Timers(*present) if present else None)
