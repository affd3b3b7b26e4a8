"""The keeper's healthcheck monitor (the settings: :mod:`rootless.runtime.health`).

:class:`Monitor` is a timer in the keeper's supervise loop (``keeper.supervise(timer=...)``): it
says how long the loop may sleep and, after every wake-up (SIGCHLD included), starts a probe that
is due, collects its output and records its result through ``save``. :func:`keeper_monitor`
builds it for a container: each probe is a fork of the keeper (so in the container's pid
namespace), made only once PID 1 has pivoted into the container's root, not dumpable until its
exec, that joins PID 1's mount namespace and then runs the keeper's ``enter`` (the container's
user, capabilities and seccomp program, as ``exec`` takes them; exec).
"""

from __future__ import annotations

import os
import time

from rootless.runtime.events import exec_action, new_exec_id
from rootless.runtime.health import (
    DEFAULT_INTERVAL,
    DEFAULT_RETRIES,
    DEFAULT_START_INTERVAL,
    DEFAULT_TIMEOUT,
    SECOND,
    go_duration,
    initial,
    probe_argv,
)

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.base.paths import Paths

MAX_LOG = 5  # results kept in State.Health.Log
MAX_OUTPUT = 4096  # bytes of a probe's output kept


class Monitor:
    """Runs one container's healthcheck from the keeper's loop: :meth:`timeout` says how long the
    loop may sleep, :meth:`tick` (after every wake-up, SIGCHLD included) starts a probe that is
    due, collects its output and records its result; :meth:`stop` ends it with the container.
    ``spawn(argv, out_fd)``: forks the probe (the keeper's part: the container's namespaces and
    identity), its pid, or None when it cannot run now; ``save(health, changed)``: records the
    health (and the event when ``changed``); ``emit(action, attributes)``: a container event. Each
    probe is an exec to Docker, which says ``exec_create: CMD``, ``exec_start: CMD`` (with its
    ``execID``) and ``exec_die`` (with its ``exitCode``; 137 for one killed at its timeout)."""

    def __init__(self, hc: dict, spawn: Callable[[list[str], int], int | None],
                 save: Callable[[dict, bool], None], emit: Callable[[str, dict], None] | None = None):
        self.argv = probe_argv(hc) or []
        self.interval = (hc.get("Interval") or DEFAULT_INTERVAL) / SECOND
        self.probe_timeout = hc.get("Timeout") or DEFAULT_TIMEOUT
        self.start_period = (hc.get("StartPeriod") or 0) / SECOND
        self.start_interval = (hc.get("StartInterval") or DEFAULT_START_INTERVAL) / SECOND
        self.retries = hc.get("Retries") or DEFAULT_RETRIES
        self.spawn, self.save, self.emit = spawn, save, emit
        self.started = time.monotonic()
        self.health = initial(hc) or {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.due = self.started + self._next_interval()
        self.probe: _Probe | None = None

    def restable(self) -> bool:
        """Whether the keeper may rest until :meth:`timeout` (``runtime.hibernate``): no probe runs."""
        return self.probe is None

    def carried(self) -> dict:
        """What a rest carries over to the monitor after it (:meth:`take`): its times, the health."""
        return {"started": self.started, "due": self.due, "health": self.health}

    def take(self, carried: dict) -> None:
        self.started, self.due, self.health = carried["started"], carried["due"], carried["health"]

    def _next_interval(self) -> float:
        if time.monotonic() - self.started < self.start_period and self.health["Status"] == "starting":
            return self.start_interval
        return self.interval

    def timeout(self) -> float:
        """Seconds until :meth:`tick` has something to do (a probe's output is polled meanwhile)."""
        now = time.monotonic()
        if self.probe is not None:
            return max(0.0, min(0.05, self.probe.deadline - now))
        return max(0.0, self.due - now)

    def tick(self) -> None:
        now = time.monotonic()
        if self.probe is not None:
            self.probe.collect()
            result = self.probe.result(now, self.probe_timeout)
            if result is not None:
                counts = self.probe.mono - self.started >= self.start_period
                self._died(result["ExitCode"])
                self.probe = None
                self._record(result, counts)
                self.due = time.monotonic() + self._next_interval()
        elif now >= self.due:
            self.probe = _Probe.start(self.spawn, self.argv, self.probe_timeout)
            if self.probe is None:  # the container is not ready for it (or is ending): later
                self.due = now + self._next_interval()
            elif self.emit is not None:
                for what in ("exec_create", "exec_start"):
                    self.emit(exec_action(what, self.argv), {"execID": self.probe.exec_id})

    def _died(self, code: int) -> None:
        if self.emit is not None and self.probe is not None:
            self.emit("exec_die", {"execID": self.probe.exec_id, "exitCode": code if code >= 0 else 137})

    def _record(self, result: dict, counts: bool) -> None:
        h = self.health
        old = h["Status"]
        h["Log"] = (h["Log"] + [result])[-MAX_LOG:]
        if result["ExitCode"] == 0:
            h["FailingStreak"] = 0
            h["Status"] = "healthy"
        elif counts or old != "starting":  # a failure in the start period does not count
            h["FailingStreak"] += 1
            if h["FailingStreak"] >= self.retries:
                h["Status"] = "unhealthy"
        self.save(h, h["Status"] != old)

    def stop(self) -> None:
        """The container has ended: a running probe is killed; the status becomes unhealthy."""
        if self.probe is not None:
            self.probe.kill()
            self._died(-1)
            self.probe = None
        self.health["Status"] = "unhealthy"
        self.save(self.health, False)


class _Probe:
    """One run of the check: its pid, the read end of its output, its times."""

    def __init__(self, pid: int, out: int, timeout_ns: int):
        self.pid, self.out = pid, out
        self.mono = time.monotonic()
        self.deadline = self.mono + timeout_ns / SECOND
        from rootless.base.clock import now_iso
        self.start_iso = now_iso()
        self.output = b""
        self.status: int | None = None
        self.exec_id = new_exec_id()

    @classmethod
    def start(cls, spawn: Callable[[list[str], int], int | None], argv: list[str], timeout_ns: int) -> _Probe | None:
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = spawn(argv, w)
        except OSError:  # no fork into a pid namespace whose PID 1 is gone
            pid = None
        finally:
            os.close(w)
        if pid is None:
            os.close(r)
            return None
        os.set_blocking(r, False)
        return cls(pid, r, timeout_ns)

    def collect(self) -> None:
        while self.out >= 0:
            try:
                data = os.read(self.out, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                os.close(self.out)
                self.out = -1
                return
            if len(self.output) < MAX_OUTPUT:
                self.output = (self.output + data)[:MAX_OUTPUT]

    def result(self, now: float, timeout_ns: int) -> dict | None:
        """The probe's result once it has exited (or run out of time: killed), else None."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else's wait: it is over
                pid, status = self.pid, 255 << 8
            if pid == 0:
                if now < self.deadline:
                    return None
                self.kill()
                return self._result(-1, f"Health check exceeded timeout ({go_duration(timeout_ns)})")
            self.status = status
            self.collect()  # what it wrote before it exited
        if self.out >= 0:  # a process it left behind may hold the output open: what came, came
            os.close(self.out)
            self.out = -1
        code = os.waitstatus_to_exitcode(self.status)
        return self._result(code if code >= 0 else 128 - code, self.output.decode("utf-8", "replace"))

    def _result(self, code: int, output: str) -> dict:
        from rootless.base.clock import now_iso
        return {"Start": self.start_iso, "End": now_iso(), "ExitCode": code, "Output": output}

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        if self.out >= 0:
            os.close(self.out)
            self.out = -1


# ---- the keeper's probes -------------------------------------------------------------------------
def keeper_monitor(hc: dict | None, paths: Paths, cid: str, root_dir: str, pid1: int,
                   enter: Callable[[list[str]], None]) -> Monitor | None:
    """The keeper's monitor of container ``cid`` (None: it has no healthcheck to run), whose root
    filesystem is mounted on ``root_dir``. ``enter(argv)`` (the keeper's: the container's identity,
    then exec) runs in each probe once it has joined PID 1's mount namespace."""
    if hc is None or not probe_argv(hc):
        return None
    root = os.stat(root_dir)
    root_id = (root.st_dev, root.st_ino)
    from rootless.base.errors import RootlessError
    from rootless.runtime import events, state

    def save(h: dict, changed: bool) -> None:
        def event(rec) -> None:
            events.container(paths, f"health_status: {h['Status']}", rec["spec"])
        try:
            state.update_state(paths, cid, then=event if changed else None, health=h)
        except (OSError, RootlessError):
            pass  # a full disk: the next result tries again

    def emit(action: str, attributes: dict) -> None:
        rec = state.read(paths, cid)
        if rec is not None:
            events.container(paths, action, rec["spec"], **attributes)

    return Monitor(hc, lambda argv, out: _spawn_probe(pid1, root_id, argv, out, enter), save, emit)


def _spawn_probe(pid1: int, root_id: tuple[int, int], argv: list[str], out: int,
                 enter: Callable[[list[str]], None]) -> int | None:
    """Fork a probe into the container's pid namespace (the keeper's children go there); its pid,
    or None while PID 1 has not pivoted into the container's root yet. The fork is not dumpable
    until it execs: no process of the container reaches the keeper's view of the host through its
    /proc entry."""
    try:
        root = os.stat(f"/proc/{pid1}/root")  # PID 1's root: the container's once it has pivoted
    except OSError:
        return None
    if (root.st_dev, root.st_ino) != root_id:
        return None
    import prctl
    dumpable = prctl.get_dumpable()
    prctl.set_dumpable(0)  # inherited by the fork; its exec resets it
    try:
        pid = os.fork()
        if pid == 0:
            _probe_entry(pid1, root_id, argv, out, enter)
    finally:
        prctl.set_dumpable(dumpable)
    return pid


def _probe_entry(pid1: int, root_id: tuple[int, int], argv: list[str], out: int,
                 enter: Callable[[list[str]], None]) -> None:
    """The probe: stdin /dev/null, stdout and stderr ``out``; join PID 1's mount namespace (whose
    root is the container's), then ``enter``. What goes wrong before the exec is written to ``out``."""
    code = 126
    try:
        import signal

        from rootless.base import syscalls
        from rootless.base.errors import RootlessError
        signal.set_wakeup_fd(-1)
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        mnt = os.open(f"/proc/{pid1}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        syscalls.setns(mnt, syscalls.CLONE_NEWNS)
        here = os.stat("/")
        if (here.st_dev, here.st_ino) != root_id:
            raise RootlessError("the container's root is not in place")
        enter(argv)
    except BaseException as e:  # noqa: BLE001 - the probe's output says what failed
        try:
            os.write(out, (getattr(e, "message", None) or str(e) or type(e).__name__).encode() + b"\n")
        except OSError:
            pass
        code = getattr(e, "exit_code", None) or 126
    finally:
        os._exit(code)
