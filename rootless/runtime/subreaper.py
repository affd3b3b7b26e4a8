"""``--pid host`` (``HostConfig.PidMode: host``): a container without a pid namespace of its own.

With a pid namespace, the death of PID 1 ends every process of the container; without one, its
processes would outlive it. The keeper is a child subreaper (``child._Keeper.mount_root``), so the
container's orphans (a daemonized grandchild) become the keeper's children. The container's
processes are then PID 1 and its descendants, and every other descendant of the keeper that
does not come from a helper forked before PID 1 (slirp4netns, the port relay, fuse-overlayfs).

:class:`EndWatch` is a timer of the keeper's supervise loop: once PID 1 has exited (seen without
reaping it, the keeper's wait for its status stays as it is), it SIGKILLs the rest, whose output
then ends, and so does the loop. :func:`end` does the same after the loop, and reaps them.
"""

from __future__ import annotations

import os
import signal
import time

POLL = 0.5  # the loop's longest sleep: SIGCHLD wakes it at PID 1's exit, this is the safety net


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


def helpers_of(keeper: int) -> set[int]:
    """The keeper's descendants before PID 1 is forked: its helpers, each process of theirs (a
    daemon still leaving its first parent, as fuse-overlayfs does, is the keeper's child later)."""
    return set(descendants(keeper)) - {keeper}


def container_pids(keeper: int, helpers: set[int], table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """The container's processes: the keeper's descendants but its ``helpers`` and theirs (and the
    keeper itself)."""
    table = parents() if table is None else table
    roots = [p for p, (pp, _s) in table.items() if pp == keeper and p not in helpers]
    out = []
    for r in roots:
        out += descendants(r, table)
    return [p for p in out if p not in helpers]


def exited(pid: int) -> bool:
    """Whether the keeper's child ``pid`` has exited (left for the keeper's wait to reap)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


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


def kill_all(keeper: int, helpers: set[int], pid1: int, mnt: str = "", timeout: float = 5.0) -> None:
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


def reap_all(keeper: int, helpers: set[int], pid1: int, timeout: float = 5.0) -> None:
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
    """The supervise loop's timer: at PID 1's exit, the container's other processes are killed."""

    def __init__(self, pid1: int, helpers: set[int]):
        self.pid1, self.helpers, self.keeper = pid1, helpers, os.getpid()
        self.done = False
        self.mnt = ""  # PID 1's mount namespace, once it runs the command (note_namespace)

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

    def end(self) -> None:
        """After PID 1 is reaped: nothing of the container is left, no zombie either."""
        kill_all(self.keeper, self.helpers, self.pid1, self.mnt)
        reap_all(self.keeper, self.helpers, self.pid1)


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
