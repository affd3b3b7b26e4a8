"""A container's restart monitor: the process that starts it again under its restart policy.

The keeper decides at the end of a run (``rootless.runtime.restart.exit_fields``: the record says
``restarting``), but it cannot start the next run: it lives in the container's user namespace,
and its first PID 1 took the one pid namespace it may make. So each start of a container whose
policy is not ``no`` leaves a small daemon outside (:func:`watch`, forked from the CLI or the
API service, with no descriptor of theirs), one per container (it holds the container's
``restart.lock``). It sleeps until the keeper ends; on ``restarting`` it waits the back-off and
starts the container again (its writable layer as ``start`` keeps it) with the function it was
given, and it goes when the container is removed, stopped by hand, or ends without a restart.

``stop``, ``kill`` and ``rm`` end a policy through the record (``manually_stopped``, set by
:func:`note_stopped` before the signal); :func:`cancel` also takes a container out of its
back-off and waits until the monitor has let it go.
"""

from __future__ import annotations

import os
import time

from rootless.base import atomic, locking
from rootless.base.errors import RootlessError
from rootless.runtime import records, restart, state

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord

POLL = 0.05  # how often the back-off looks at the record
RUNNING_POLL = 2.0  # how often, while the container runs, the monitor looks for a hand stop
LOCK_WAIT = 5.0  # how long a new monitor waits for the old one's lock


def watch(ctx: Context, cid: str, start: Callable) -> None:
    """Leave a restart monitor for the container (none if one is there already: the new one gives
    way). ``start(ctx, record)`` starts it detached, in a child of the monitor."""
    pid = os.fork()
    if pid:
        try:
            os.waitpid(pid, 0)  # the first child ends at once: the monitor is nobody's child
        except ChildProcessError:  # reaped by a handler of the caller's
            pass
        return
    try:
        os.setsid()
        if os.fork() == 0:
            from rootless.engine.context import Context
            # its own: the caller's open files are about to be closed
            own = Context(root=ctx.paths.root, warm_forker=ctx.warm_forker)
            own.config  # noqa: B018 - read now, from where the caller runs (ROOTLESS_CONFIG may be relative)
            _daemonize()
            _monitor(own, cid, start)
    except BaseException:  # noqa: BLE001 - a forked child never returns into its parent's code
        pass
    finally:
        os._exit(0)


def _daemonize() -> None:
    """No descriptor of the CLI's or the service's (a pipe of ``$(rootless run -d ...)``, the API
    client's connection) stays open in the monitor."""
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 65536)
    os.chdir("/")  # holds no directory of the caller's busy
    _name("rootless-restart")


def _name(name: str) -> None:
    try:
        import prctl
        prctl.set_name(name)
    except (ImportError, OSError):
        pass


def _monitor(ctx: Context, cid: str, start: Callable) -> None:
    paths = ctx.paths
    fd = os.open(restart.lock_path(paths, cid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if not _lock(fd):
        return  # the monitor that runs keeps watching
    delay = 0.0
    while True:
        rec = state.read(paths, cid)
        if rec is None:
            return
        st = rec["state"]
        if st.get("status") == "running":
            if st.get("manually_stopped") or not _wait_keeper(paths, cid, st):
                return
            _keeper_died(ctx, cid, st)
            continue
        if st.get("status") != "restarting":
            return  # exited for good, or never ran
        delay = restart.next_delay(delay, restart.ran_for(st))
        if not _back_off(paths, cid, delay):
            return
        if not _launch(ctx, cid, start, fd):
            return
        rec = state.read(paths, cid)
        if rec is None or rec["state"].get("manually_stopped"):
            return  # `rm -f` or `stop` came meanwhile: they take it from here


def _lock(fd: int) -> bool:
    import fcntl
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)


def _wait_keeper(paths, cid: str, st: Mapping[str, Any]) -> bool:
    """Sleep until the run ends (True), or the container is stopped by hand or removed (False)."""
    keeper, keeper_start = st.get("keeper", 0), st.get("keeper_start", "")
    while records.alive(keeper, keeper_start):
        records.wait_for_pid(keeper, RUNNING_POLL)
        if records.alive(keeper, keeper_start):
            rec = state.read(paths, cid)
            if rec is None or rec["state"].get("manually_stopped"):
                return False
    return True


def _keeper_died(ctx: Context, cid: str, st: Mapping[str, Any]) -> None:
    """After the run's keeper ended: if it died without recording the exit (killed), the record
    reconciled (exited, 137; perhaps by a reader already), then the policy applied to that exit,
    as the keeper would have. (An exit the keeper recorded is left as it is: it decided.)"""
    rec = state.read(ctx.paths, cid)
    if rec is None:
        return
    if rec["state"].get("status") == "running" and rec["state"].get("keeper") == st.get("keeper"):
        rec = records.current(ctx, rec)
        if rec["state"].get("status") == "running":
            time.sleep(POLL)  # a reconciliation that could not be written (a full disk) is not a busy loop
            return
    this_run = rec["state"].get("started_at") == st.get("started_at")
    if rec["state"].get("status") == "exited" and this_run and rec["state"].get("error") == records.KEEPER_DIED:
        again = restart.exit_fields(rec, rec["state"].get("exit_code", records.UNKNOWN_EXIT))
        if again:
            _transition(ctx.paths, cid, lambda r: r["state"].get("status") == "exited"
                        and r["state"].get("started_at") == st.get("started_at"), **again)


def _back_off(paths, cid: str, delay: float) -> bool:
    """Wait ``delay`` seconds; False (and the container exited) if it was stopped or removed meanwhile."""
    deadline = time.monotonic() + delay
    while True:
        rec = state.read(paths, cid)
        if rec is None or rec["state"].get("status") != "restarting":
            return False
        if rec["state"].get("manually_stopped"):
            _transition(paths, cid, lambda r: r["state"].get("status") == "restarting", status="exited")
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(POLL, left))


def _launch(ctx: Context, cid: str, start: Callable, lock: int) -> bool:
    """Start the container again, in a child (the start's signal handlers and helpers stay
    there); False if it could not be started (the record then says why)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(lock)  # the keeper it forks must not hold the monitor's lock
            _name("rootless")  # what the keeper it forks is called, as after any start
            rec = records.lookup(ctx, cid)
            if rec["state"].get("status") == "restarting" and not rec["state"].get("manually_stopped"):
                start(ctx, rec)
            code = 0
        except BaseException as e:  # noqa: BLE001 - recorded, as a start's failure
            message = getattr(e, "message", None) or str(e) or type(e).__name__
            _transition(ctx.paths, cid, lambda r: r["state"].get("status") == "restarting", status="exited",
                        error=message, exit_code=getattr(e, "exit_code", 125))
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return True
    return os.waitstatus_to_exitcode(status) == 0


def _transition(paths, cid: str, expect: Callable, **changes) -> ContainerRecord | None:
    """Change the state under the container's lock only if ``expect(record)`` still holds."""
    try:
        with locking.locked(paths.container_lock(cid), timeout=10):
            rec = state.read(paths, cid)
            if rec is None or not expect(rec):
                return None
            rec["state"].update(changes)  # type: ignore[typeddict-item]  # state keys
            atomic.write_json(paths.container_record(cid), rec)
            return rec
    except (OSError, RootlessError):
        return None


def note_stopped(ctx: Context, rec: ContainerRecord) -> None:
    """``stop``/``kill`` (before the signal): the policy ends for this run, as Docker's manual stop."""
    if restart.active(rec.get("spec") or {}) and not rec["state"].get("manually_stopped"):
        state.update_state(ctx.paths, rec["id"], manually_stopped=True)


def cancel(ctx: Context, rec: ContainerRecord) -> ContainerRecord:
    """Take a restarting container out of its back-off (``stop``, ``rm -f``): its monitor lets it
    go (and if it was starting it, the run it started is the caller's to end). The record now."""
    if rec["state"].get("status") != "restarting":
        return rec
    state.update_state(ctx.paths, rec["id"], manually_stopped=True)
    settle(ctx, rec["id"])
    _transition(ctx.paths, rec["id"], lambda r: r["state"].get("status") == "restarting", status="exited")
    return records.lookup(ctx, rec["id"])


def settle(ctx: Context, cid: str) -> None:
    """Wait (a few seconds at most) until the container's monitor, told to let go, has gone."""
    deadline = time.monotonic() + LOCK_WAIT + RUNNING_POLL
    while restart.monitor_alive(ctx.paths, cid) and time.monotonic() < deadline:
        time.sleep(POLL)


def started_by_hand(ctx: Context, rec: ContainerRecord) -> None:
    """A start by the user (``start``, ``run``, ``restart``): the policy applies again, counting
    from 0 (Docker's reset)."""
    st = rec["state"]
    if st.get("manually_stopped") or st.get("restart_count"):
        state.update_state(ctx.paths, rec["id"], manually_stopped=False, restart_count=0)
