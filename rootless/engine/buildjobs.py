"""A build's stage graph: independent stages built at once, each in a process of its own.

:meth:`layers.build.Builder.build` hands over the stages the target needs, each with the
stages it reads from; a stage starts once those are done, up to one per CPU at a time. When
only one stage can run (a Dockerfile of one stage, or a chain), it runs here, as it always did:
no process, its output straight through. Otherwise each runs in a forked process whose output
(its progress lines, marked, and its RUN steps' output) comes through a pipe; what is shown
keeps the order of a build that goes stage after stage: the first unfinished stage's lines as
they come, a later stage's kept until the ones before it are shown whole. A stage that fails
stops the build: the others are cancelled as by SIGTERM (their RUN step's container killed,
their files removed), their output is shown, and the first error is the build's; nothing is
stored as an image. A cancelled build (SIGINT, SIGTERM, SIGHUP) stops them the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import signal
import sys
import time

from rootless.base.atomic import write_all

TYPE_CHECKING = False  # annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SAY = b"\x00say\x00"  # starts a progress line (JSON text) among a stage's output
CANCEL = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE = 30.0  # seconds a cancelled stage has to kill its step and tidy up, then SIGKILL


def limit() -> int:
    """How many stages may run at once: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run(ex, jobs: list[tuple[int, set[int]]], work: Callable[[int], dict],
        done: Callable[[int, dict], None], max_jobs: int | None = None) -> None:
    """``done(index, work(index))`` for each of ``jobs`` once the stages it reads from are done;
    independent ones at once (see the module's text)."""
    max_jobs = max_jobs or limit()
    order = [i for i, _ in jobs]
    reads = dict(jobs)
    pending = list(order)
    finished: set[int] = set()
    running: dict[int, _Child] = {}
    shown = _Shown(order, ex.say, ex.outputs)
    try:
        while pending or running:
            ready = [i for i in pending if reads[i] <= finished]
            if not running and (len(ready) == 1 or max_jobs < 2):
                i = ready[0]  # the first unfinished stage: every stage before it is done and shown
                pending.remove(i)
                done(i, work(i))
                finished.add(i)
                shown.end(i)
                continue
            for i in ready[:max(0, max_jobs - len(running))]:
                pending.remove(i)
                running[i] = _Child(ex, i, work)
            i, outcome = _next_end(running, shown)
            del running[i]
            kind, value = outcome
            if kind != "ok":
                _stop(running, shown)
                shown.end_all()
                if isinstance(value, BaseException):
                    raise value
                from rootless.base.errors import RootlessError
                raise RootlessError(f"the build of stage {i} was cancelled")
            done(i, value)
            finished.add(i)
            shown.end(i)
    finally:
        if running:  # cancelled, or a failure here: no stage outlives the build
            _stop(running, shown)
            shown.end_all()


class _Child:
    """One stage built in a forked process: its output pipe (and, when the build's RUN output
    goes to two descriptors, the API's, one for stdout), and the pipe of its result."""

    def __init__(self, ex, index: int, work: Callable[[int], dict]):
        self.index = index
        two = bool(ex.outputs)
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe() if two else (-1, -1)
        sys.stdout.flush()
        sys.stderr.flush()
        me = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's side (its coverage is not collected)
            _child(ex, index, work, err_w, res_w, out_w if two else err_w, [err_r, res_r, out_r], me)
        self.pid = pid
        for fd in (err_w, res_w, out_w):
            if fd >= 0:
                os.close(fd)
        self.fds = {err_r: "err", res_r: "res"}
        if two:
            self.fds[out_r] = "out"
        for fd in self.fds:
            os.set_blocking(fd, False)
        self.partial = {"err": b"", "out": b""}
        self.result = b""
        self.status: int | None = None

    def read(self, fd: int, shown: _Shown) -> None:
        """What is there to read on ``fd`` (non-blocking), passed on; at its end the fd is closed."""
        channel = self.fds[fd]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                os.close(fd)
                del self.fds[fd]
                if channel != "res" and self.partial[channel]:
                    shown.emit(self.index, channel, self.partial[channel])
                    self.partial[channel] = b""
                return
            if channel == "res":
                self.result += data
                continue
            data = self.partial[channel] + data
            lines = data.split(b"\n")
            self.partial[channel] = lines.pop()
            for line in lines:
                if channel == "err" and line.startswith(SAY):
                    shown.emit(self.index, "say", line[len(SAY):])
                else:
                    shown.emit(self.index, channel, line + b"\n")

    def drain(self, shown: _Shown) -> None:
        for fd in list(self.fds):
            self.read(fd, shown)

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = {}

    def poll(self) -> bool:
        """Whether the process has ended (reaped)."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def outcome(self) -> tuple[str, Any]:
        """("ok", the stage's result) or ("error", the exception the build raises)."""
        from rootless.base.errors import RootlessError
        try:
            kind, value = pickle.loads(self.result)
        except Exception:  # noqa: BLE001 - no whole result: the process was killed
            sig = os.WTERMSIG(self.status) if self.status is not None and os.WIFSIGNALED(self.status) else 0
            how = f"was killed by {signal.Signals(sig).name}" if sig else "ended without a result"
            return "error", RootlessError(f"the build of stage {self.index} {how}",
                                          "build again; if it keeps failing, build that stage alone (--target)")
        return kind, value


def _child(ex, index: int, work, err_w: int, res_w: int, out_w: int, parents: list[int], parent: int) -> None:
    """The forked side of a stage: build it, send the result (or the error), exit."""
    code = 1
    try:
        import prctl
        prctl.set_pdeathsig(signal.SIGTERM)  # a build killed outright: its stages cancel themselves
        if os.getppid() != parent:
            raise SystemExit(1)
        for fd in parents:
            if fd >= 0:
                os.close(fd)

        def cancel(sig, _frame):
            for s in CANCEL:
                signal.signal(s, signal.SIG_IGN)
            raise _Stopped(sig)
        for s in CANCEL:
            signal.signal(s, cancel)
        os.dup2(err_w, 2)
        os.dup2(err_w, 1)
        if ex.outputs:
            ex.outputs = (out_w, err_w)

        def say(text: str) -> None:
            write_all(2, SAY + json.dumps(text).encode() + b"\n")
        ex.say = say
        ex.n = (index + 1) * 1_000_000  # the names of its files in the build's directory are its own
        try:
            payload = pickle.dumps(("ok", work(index)))
            code = 0
        except _Stopped:
            payload = pickle.dumps(("cancelled", None))
        except BaseException as e:  # noqa: BLE001 - whatever it is, the build raises it
            try:
                payload = pickle.dumps(("error", e))
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
                from rootless.base.errors import RootlessError
                payload = pickle.dumps(("error", RootlessError(str(e) or type(e).__name__)))
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        write_all(res_w, payload)
    finally:
        os._exit(code)


class _Stopped(BaseException):
    """A stage's process cancelled (its RUN step's container is killed first, as in a build
    cancelled by a signal): no ``except Exception`` of a step takes it, every ``finally`` runs."""


def _next_end(running: dict[int, _Child], shown: _Shown) -> tuple[int, tuple[str, Any]]:
    """Pass the stages' output on until one ends; (its index, its outcome)."""
    while True:
        fds = {fd: c for c in running.values() for fd in c.fds}
        if fds:
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select(list(fds), [], [], 0.2)
                for fd in readable:
                    if fd in fds[fd].fds:
                        fds[fd].read(fd, shown)
        else:
            time.sleep(0.05)
        for i, c in running.items():
            if not c.fds and c.status is None:  # every pipe at its end: the process is exiting
                c.status = os.waitpid(c.pid, 0)[1]
            if c.poll():
                c.drain(shown)  # all it wrote is in the pipes by now
                c.close()  # what a process it left holds is not waited for
                return i, c.outcome()


def _stop(running: dict[int, _Child], shown: _Shown) -> None:
    """Cancel the stages still running (as SIGTERM cancels a build), showing what they say,
    then SIGKILL what is left after a grace period; every one is reaped."""
    for c in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while running:
        if time.monotonic() > deadline:
            for c in running.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.pid, signal.SIGKILL)
                os.waitpid(c.pid, 0)
                c.close()
            running.clear()
            return
        i, _ = _next_end(running, shown)
        del running[i]


class _Shown:
    """What the stages say, shown in the order of a build that goes stage after stage."""

    def __init__(self, order: list[int], say, outputs: tuple[int, int] | None):
        self.order = order
        self.say = say
        self.fds = {"out": outputs[0] if outputs else 2, "err": outputs[1] if outputs else 2}
        self.pos = 0  # order[pos]: the stage whose output is shown as it comes
        self.kept: dict[int, list[tuple[str, bytes]]] = {}
        self.ended: set[int] = set()  # stages that are done

    def emit(self, index: int, channel: str, data: bytes) -> None:
        if self.pos < len(self.order) and self.order[self.pos] == index:
            self._show(channel, data)
        else:
            self.kept.setdefault(index, []).append((channel, data))

    def _show(self, channel: str, data: bytes) -> None:
        if channel == "say":
            self.say(json.loads(data))
        else:
            sys.stderr.flush()
            with contextlib.suppress(OSError):
                write_all(self.fds[channel], data)

    def end(self, index: int) -> None:
        """``index`` is done: the stages after it whose turn it now is are shown."""
        self.ended.add(index)
        while self.pos < len(self.order) and self.order[self.pos] in self.ended:
            self.pos += 1
            if self.pos < len(self.order):
                for channel, data in self.kept.pop(self.order[self.pos], []):
                    self._show(channel, data)

    def end_all(self) -> None:
        """The build stops: whatever is kept is shown, in order."""
        for i in self.order[self.pos:]:
            for channel, data in self.kept.pop(i, []):
                self._show(channel, data)
        self.pos = len(self.order)
