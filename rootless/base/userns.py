"""Run Python code as root of a new user namespace whose maps the parent writes.

``fork_into_userns`` is the one primitive: the child unshares CLONE_NEWUSER,
tells the parent, the parent writes the maps (newuidmap/newgidmap or the
single-uid map), and the child becomes uid 0 in the namespace. The store uses
it to unpack and remove layers so that files keep their image owners; the
launcher builds the container on it; ``rootless unshare`` execs a command in it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from rootless.base import apparmor, idmap, syscalls
from rootless.base.channel import Channel
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any, NoReturn


# ``become_root``'s ``own_maps`` when the process has joined a user namespace of the user's with
# the very map it needs (the shared network's): that one is its own, no new one is made
JOINED = "joined"


def become_root(ch: Channel, mapping: idmap.IdMapping,
                own_maps: Callable[[idmap.IdMapping], None] | str | None = None) -> None:
    """Child side: new user namespace, wait for the maps, then uid/gid 0 inside. ``own_maps``:
    this process has joined a user namespace of the user's (the shared network's), where the new
    one is made; only a process in that one may write its maps, and ``own_maps(mapping)`` has one
    do it (the parent does not); :data:`JOINED`: the joined one has ``mapping`` already."""
    step = "create the user namespace"
    if own_maps != JOINED:
        try:
            syscalls.unshare(syscalls.CLONE_NEWUSER)
        except PermissionError:
            _apparmor_check(step, refused=True)
            raise
        # Under Ubuntu's restriction the unshare works but lands us in AppArmor's unprivileged_userns
        # profile (no capabilities): say so now, in one line, rather than EPERM from the maps or mounts.
        _apparmor_check(step)
        if callable(own_maps):
            own_maps(mapping)
    ch.send("userns", mapped=own_maps is not None)
    ch.expect("mapped")
    # uid 0 inside, unless the map has none (--userns=keep-id in a single-uid map: only the user)
    gid, uid = (min(r.inside for r in ranges) for ranges in (mapping.gids, mapping.uids))
    changed = (os.getuid(), os.getgid()) != (uid, gid)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if changed:
        _stay_dumpable()
    if mapping.mode == "subid":
        try:
            os.setgroups([])  # needs CAP_SETGID in the namespace: the first capability we use
        except PermissionError:
            _apparmor_check(step, refused=True)
            raise


def _stay_dumpable() -> None:
    """Undo what the kernel does on any change of credentials: the process became non-dumpable, so its
    ``/proc/PID/fd/*`` and ``/proc/PID/ns/*`` belong to the host's root and are out of reach of its own
    helpers (slirp4netns opens the network namespace through ``/proc/KEEPER/fd/N``) and of the user
    (``--network container:`` opens ``/proc/KEEPER/ns/net``). Only keep-id changes the uid here (the
    user's own id maps to itself, so root inside is another id); without keep-id the process is already
    root inside and stays dumpable, which is the same standing this gives back."""
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 1)


def _apparmor_check(step: str, refused: bool = False) -> None:
    """Raise the AppArmor error when the restriction is on and explains the failure: ``refused`` (a
    call failed with EPERM/EACCES) while we run without a profile of our own, or this process was
    moved into the unprivileged_userns profile. Nothing happens when the sysctl is 0 or absent."""
    if not apparmor.restricted():
        return
    label = apparmor.label()
    if apparmor.in_unprivileged_profile(label) or (refused and apparmor.profile_of(label) is None):
        raise apparmor.restriction_error(step)


def fork_child(child: Callable[[Channel], int | None], step: str) -> tuple[int, Channel]:
    """Fork and run ``child(channel)`` in the child, whose return value is its exit code; an
    exception travels back over the channel as an error (naming ``step``). The child's pid and
    the parent's end of the channel."""
    parent_end, child_end = Channel.pair()
    pid = os.fork()
    if pid == 0:  # child
        parent_end.close()
        child_main(child, child_end, step)
    child_end.close()
    return pid, parent_end


def child_main(child: Callable[[Channel], int | None], ch: Channel, step: str) -> NoReturn:
    """The child's side of :func:`fork_child` (and of a keeper the warm forker made): run
    ``child(ch)`` and exit with its code; an exception goes back over ``ch`` as an error."""
    code = 125
    try:
        code = child(ch) or 0
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        ch.send_error(e, step)
        code = getattr(e, "exit_code", 125)
    finally:
        os._exit(code)


def fork_into_userns(mapping: idmap.IdMapping, child: Callable[[Channel], int | None],
                     before_mapped: Callable[[int], object] | None = None,
                     forked: Callable[[int], object] | None = None,
                     prelude: Callable[[], Callable[[idmap.IdMapping], None] | str | None] | None = None
                     ) -> tuple[int, Channel]:
    """Fork; in the child become root of a new user namespace and run ``child(channel)``.
    ``forked(pid)`` runs right after the fork, before the maps are written (the launcher asks
    for the keeper's cgroup there, so that it is made meanwhile); ``before_mapped(pid)`` once
    they are, before the child goes on (the launcher puts the keeper in its cgroup there).
    ``prelude()`` runs in the child first; what it returns is :func:`become_root`'s ``own_maps``."""
    def enter(ch: Channel) -> int | None:
        become_root(ch, mapping, prelude() if prelude is not None else None)
        return child(ch)

    pid, parent_end = fork_child(enter, "user namespace")
    return adopt(pid, parent_end, mapping, before_mapped, forked)


def adopt(pid: int, parent_end: Channel, mapping: idmap.IdMapping,
          before_mapped: Callable[[int], object] | None = None,
          forked: Callable[[int], object] | None = None) -> tuple[int, Channel]:
    """The parent's side of :func:`fork_into_userns` for a child that was just forked (by it, or by
    the warm forker: ``runtime.forker``) and is becoming root of its user namespace (``become_root``)."""
    try:
        if forked is not None:
            forked(pid)
        mapped = parent_end.expect("userns").get("mapped")
        from rootless.base import timing
        timing.mark("forked-userns")
        try:
            if not mapped:  # (made inside the shared network's user namespace, the child has had them written)
                idmap.write_maps(pid, mapping)
        except (RootlessError, OSError):
            # newuidmap/newgidmap (or our own write) refused: the restriction when the child was
            # moved into unprivileged_userns (its own check may not have seen the label)
            if apparmor.restricted() and apparmor.in_unprivileged_profile(apparmor.label(str(pid))):
                raise apparmor.restriction_error("write the id maps") from None
            raise
        timing.mark("mapped")
        if before_mapped is not None:
            before_mapped(pid)
        parent_end.send("mapped")
    except BaseException:
        reap(pid, kill=True)
        parent_end.close()
        raise
    return pid, parent_end


def fork_joining(user_fd: int, mapping: idmap.IdMapping, child: Callable[[Channel], int | None]) -> tuple[int, Channel]:
    """Fork; in the child join the user namespace ``user_fd`` (another container's, which this user
    owns), become root there and run ``child(channel)``."""
    def enter(ch: Channel) -> int | None:
        syscalls.setns(user_fd, syscalls.CLONE_NEWUSER)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if mapping.mode == "subid":
            os.setgroups([])
        return child(ch)

    return fork_child(enter, "join the user namespace of the other container")


def reap(pid: int, kill: bool = False) -> int:
    """Wait for ``pid`` (killing it first if asked); its Docker-style exit code."""
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 0
    return exit_code(status)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def call(mapping: idmap.IdMapping, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` as root of a fresh user namespace; return its (JSON-able) result."""
    def child(ch: Channel) -> int:
        ch.send("result", value=fn(*args))
        return 0

    pid, ch = fork_into_userns(mapping, child)
    try:
        msg = ch.expect("result")
    finally:
        ch.close()
        code = reap(pid)
    if code != 0:
        raise RootlessError(f"user namespace helper failed with exit code {code}")
    return msg["value"]


class Worker:
    """A helper in a fresh user namespace that runs ``handler(job)`` for each job it is sent, one at
    a time, and answers the (JSON-able) result or the error. Made before any thread exists (a
    threaded process cannot enter a new user namespace); jobs can then come from anywhere."""

    def __init__(self, mapping: idmap.IdMapping, handler: Callable[[Any], Any], what: str = "helper"):
        self.what = what

        def child(ch: Channel) -> int:
            while True:
                msg, _ = ch.recv()
                if msg is None or msg["type"] != "job":
                    return 0
                try:
                    value = handler(msg["job"])
                except BaseException as e:  # noqa: BLE001 - the error goes back to the caller
                    ch.send_error(e, what)
                    continue
                ch.send("result", value=value)

        self.pid, self.ch = fork_into_userns(mapping, child)

    def fileno(self) -> int:
        return self.ch.fileno()

    def submit(self, job: Any) -> None:
        self.ch.send("job", job=job)

    def result(self) -> Any:
        """The answer to the job submitted last (raises its error)."""
        return self.ch.expect("result")["value"]

    def close(self) -> None:
        # An explicit stop: EOF alone may never come, as a helper forked later holds a copy of our end.
        try:
            self.ch.send("stop")
        except OSError:
            pass
        try:
            self.ch.close()
        finally:
            reap(self.pid)


def exec_in_userns(mapping: idmap.IdMapping, argv: list[str], mount_ns: bool = True) -> int:
    """``rootless unshare``: run a command as root of the user namespace; its exit code."""
    def child(ch: Channel) -> int:
        if mount_ns:
            syscalls.unshare(syscalls.CLONE_NEWNS)
        from rootless.base import proc
        env = dict(os.environ, ROOTLESS_UNSHARE="1")
        exe = proc.find_executable(argv[0], env.get("PATH", ""))
        # The channel is close-on-exec: the parent sees EOF when the exec worked.
        os.execve(exe, argv, env)

    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    pid, ch = fork_into_userns(mapping, child)
    try:
        msg, _ = ch.recv()
        if msg is not None and msg["type"] == "error":
            reap(pid)
            from rootless.base.channel import error_of
            raise error_of(msg)
        return reap(pid)
    finally:
        ch.close()
        for s, h in old.items():
            signal.signal(s, h)
