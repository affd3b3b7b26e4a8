"""Did the container's PID 1 leave processes behind when it exited?

A daemon that forks into the background and exits ends the container at once
(its children die with the pid namespace). To say so, the keeper watches PID 1
during the first second of its command (counted from the exec, ``executed``: a
set-up slowed by a loaded machine does not eat the window) with
``PTRACE_SEIZE`` + ``PTRACE_O_TRACEEXIT``: at the exit stop, before the kernel
kills the rest of the namespace, PID 1's children are still listed in
``/proc``. Every other stop is passed through (signals re-delivered, group
stops kept), and after that second the keeper detaches. Where ptrace is not
allowed the watch is simply off.
"""

from __future__ import annotations

import os
import time

from rootless.base import syscalls

WINDOW = 1.0  # seconds
POLL = 0.05


class ExitWatch:
    def __init__(self, pid: int):
        self.pid = pid
        self.start: float | None = None  # the command's exec (``executed``)
        self.active = False
        self.detaching = False
        self.left_children = False
        self.final_status: int | None = None  # set if a wait here reaped PID 1 itself
        try:
            syscalls.ptrace(syscalls.PTRACE_SEIZE, pid, 0, syscalls.PTRACE_O_TRACEEXIT)
            self.active = True
        except OSError:
            pass

    def timeout(self) -> float | None:
        """How long the keeper may sleep before ``tick`` must run. While tracing, it also polls:
        a stopped PID 1 must never wait on a wakeup that went astray."""
        if not self.active:
            return None
        if self.detaching or self.start is None:
            return POLL
        return min(POLL, max(0.0, self.start + WINDOW - time.monotonic()))

    def executed(self) -> None:
        """PID 1 has exec'd the container's command: its window starts now."""
        if self.start is None:
            self.start = time.monotonic()

    def tick(self) -> None:
        """Handle pending stops of PID 1; after the window, detach."""
        if not self.active:
            return
        if not self.detaching and self.start is not None and time.monotonic() - self.start >= WINDOW:
            self.detaching = True
            try:
                syscalls.ptrace(syscalls.PTRACE_INTERRUPT, self.pid)
            except OSError:
                pass  # exiting: its exit stop (or exit) comes through waitpid below
        while self.active:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG | 0x40000000)  # __WALL
            except ChildProcessError:
                self.active = False
                return
            if pid == 0:
                return
            if not os.WIFSTOPPED(status):
                self.final_status = status
                self.active = False
                return
            self._stopped(status)

    def _stopped(self, status: int) -> None:
        """Every stop reported here is resumed here, one way or another."""
        event, sig = status >> 16, os.WSTOPSIG(status)
        try:
            if event == syscalls.PTRACE_EVENT_EXIT:
                # start None: the exec's news (the pipe's end) is not read yet, the command exited at once
                # (before its exec PID 1 has no children: a failed set-up leaves none)
                self.left_children = (self.start is None or time.monotonic() - self.start < WINDOW) \
                    and self._has_children()
                self._detach()
            elif event == syscalls.PTRACE_EVENT_STOP:
                if self.detaching:
                    self._detach()
                else:
                    syscalls.ptrace(syscalls.PTRACE_LISTEN, self.pid)
            else:  # a signal on its way to PID 1: deliver it
                syscalls.ptrace(syscalls.PTRACE_CONT, self.pid, 0, sig)
        except OSError:
            self._detach(sig if event == 0 else 0)

    def _detach(self, sig: int = 0) -> None:
        """Only a successful detach, or PID 1's exit seen by waitpid, ends the watch: ESRCH may
        just mean "not stopped right now", and a traced PID 1 left alone could wait forever."""
        try:
            syscalls.ptrace(syscalls.PTRACE_DETACH, self.pid, 0, sig)
        except OSError:
            self.detaching = True  # the next stop is detached
            if sig:
                try:  # do not lose the signal it was stopped for
                    syscalls.ptrace(syscalls.PTRACE_CONT, self.pid, 0, sig)
                except OSError:
                    pass
            return
        self.active = False

    def finish(self) -> None:
        """After the container's output has ended: resume and release PID 1 until it is gone."""
        self.detaching = True
        while self.active:
            self.tick()
            if self.active:
                time.sleep(0.001)

    def _has_children(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return bool(f.read().split())
        except OSError:
            return False
