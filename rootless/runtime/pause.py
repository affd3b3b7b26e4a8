"""Pausing a container (``pause``/``unpause``): every process of it stops where it is.

Two ways, chosen per container: the cgroup v2 freezer (``cgroup.freeze`` of its ``ctr`` cgroup)
where it has a delegated cgroup of its own (``state.cgroup``: every container where the host
delegates a cgroup v2 subtree, see ``cgroups.wants_own``), else ``SIGSTOP`` to every process
of its pid namespace (and ``SIGCONT`` to go on), sent from inside its user namespace, where
processes of subordinate uids may be signalled. The difference shows: a process stopped by a
signal is ``T`` in ``ps`` and its parent may be told (``SIGCHLD``, ``waitpid(WUNTRACED)``), a
frozen one is not. ``method`` says which a container gets; ``info`` says which this host gives.

The record keeps ``paused`` (the pid of the PID 1 that was paused, so that a later start is not
paused) and ``pause_method``; ``is_paused`` reads them.
"""

from __future__ import annotations

import os
import signal
import time

from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from rootless.base.channel import Channel

FREEZER = "cgroup freezer"
SIGNALS = "SIGSTOP"


def is_paused(st: dict) -> bool:
    """Whether a container's state says it is paused (its current PID 1 was)."""
    return st.get("status") == "running" and bool(st.get("pid")) and st.get("paused") == st.get("pid")


def _freeze_file(st: dict) -> str | None:
    scope = st.get("cgroup")
    if not scope:
        return None
    path = os.path.join(scope, "ctr", "cgroup.freeze")
    return path if os.access(path, os.W_OK) else None


def method(st: dict) -> str:
    """How a running container with this state is paused: ``FREEZER`` or ``SIGNALS``."""
    return FREEZER if _freeze_file(st) else SIGNALS


def pause(st: dict) -> str:
    """Stop every process of the running container of state ``st``; the method used."""
    freeze = _freeze_file(st)
    if freeze:
        _freeze(freeze, True)
        return FREEZER
    _signal_all(st["pid"], signal.SIGSTOP)
    return SIGNALS


def unpause(st: dict) -> None:
    """Let the paused container of state ``st`` go on, the way it was paused."""
    freeze = _freeze_file(st)
    if st.get("pause_method") == FREEZER and freeze:
        _freeze(freeze, False)
        return
    _signal_all(st["pid"], signal.SIGCONT)


def _freeze(path: str, frozen: bool, timeout: float = 5.0) -> None:
    with open(path, "w") as f:
        f.write("1" if frozen else "0")
    events = os.path.join(os.path.dirname(path), "cgroup.events")
    want = f"frozen {int(frozen)}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(events) as f:
                if want in f.read().splitlines():
                    return
        except OSError:
            return
        time.sleep(0.01)
    raise RootlessError(f"the cgroup freezer did not {'freeze' if frozen else 'thaw'} {os.path.dirname(path)} "
                        f"within {timeout:.0f}s", "try again, or stop the container")


def _signal_all(pid1: int, sig: int) -> None:
    """``sig`` to every process of PID 1's pid namespace, from a helper in its user namespace."""
    from rootless.base import syscalls, userns
    from rootless.runtime.execute import open_namespaces
    ns = open_namespaces(pid1, only=(syscalls.CLONE_NEWUSER,))

    def inside(ch: Channel) -> int:
        for fd, flag in ns:
            syscalls.setns(fd, flag)
            os.close(fd)
        ch.send("result", value=_signal_namespace(pid1, sig))
        return 0

    helper, parent_end = userns.fork_child(inside, "signal the container's processes")
    for fd, _ in ns:
        os.close(fd)
    try:
        count = parent_end.expect("result")["value"]
    finally:
        parent_end.close()
        userns.reap(helper)
    if not count:
        raise RootlessError("the container has no processes left to signal", "it is ending: see `ps -a`")


def namespace_members(ns_link: str, kind: str = "pid") -> list[int]:
    """The host pids of the processes in the namespace ``ns_link`` (``pid:[N]``), in /proc's order."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/{kind}") == ns_link:
                    out.append(int(name))
            except OSError:
                continue
    return out


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True  # gone
    return data[data.rindex(b")") + 2:][:1] in (b"T", b"t", b"Z", b"X")


def _signal_namespace(pid1: int, sig: int) -> int:
    """In the container's user namespace: ``sig`` to each member of PID 1's pid namespace, again
    to any that appeared meanwhile (a fork in flight), until a look finds none new; for SIGSTOP,
    until each is seen stopped (at most a second). How many were signalled."""
    kind = "pid"
    try:
        ns_link = os.readlink(f"/proc/{pid1}/ns/pid")
        if ns_link == os.readlink("/proc/self/ns/pid"):  # --pid host: never the host's every process
            kind, ns_link = "mnt", os.readlink(f"/proc/{pid1}/ns/mnt")  # but those in PID 1's own mount namespace
    except OSError:
        return 0
    done: set[int] = set()
    for _ in range(100):
        fresh = [p for p in namespace_members(ns_link, kind) if p not in done]
        if not fresh:
            break
        for p in sorted(fresh):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
            done.add(p)
    if sig == signal.SIGSTOP:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not all(_stopped(p) for p in done):
            time.sleep(0.005)
    return len(done)
