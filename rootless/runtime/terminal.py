"""The CLI's side of a container's terminal and signals, shared by ``run``/``start -a``
(:mod:`rootless.runtime.launcher`), ``exec`` (:mod:`rootless.runtime.execute`) and ``attach``:
signal forwarding, raw mode, the window size, the detach keys, stdin and full writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import termios
import tty as ttymod

# The signals a CLI (or --init) passes on to the container's process.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, Docker's default


class Forwarder:
    """Forward the CLI's signals to the container (queued until its pid is known). ``tied``
    (a build's RUN step): SIGINT, SIGTERM and SIGHUP kill it instead, and ``cancelled`` keeps
    the first, for the CLI to act on once the container is gone."""

    CANCEL = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, tied: bool = False) -> None:
        self.pid = 0
        self.pending: list[int] = []
        self.old = {}
        self.tied = tied
        self.cancelled = 0

    def install(self) -> None:
        for sig in FORWARDED:
            self.old[sig] = signal.signal(sig, self._handle)

    def _handle(self, sig: int, _frame) -> None:
        if self.tied and sig in self.CANCEL:
            self.cancelled = self.cancelled or sig
            sig = signal.SIGKILL
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
        else:
            self.pending.append(sig)

    def started(self, pid: int) -> None:
        self.pid = pid
        for sig in self.pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self.pending.clear()

    def restore(self) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def terminal_size() -> bytes | None:
    for fd in (0, 1, 2):
        if os.isatty(fd):
            with contextlib.suppress(OSError):
                return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    return None


class DetachKeys:
    """Recognise the detach sequence in typed input; pass everything else to the container."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.pending = b""

    def feed(self, data: bytes, master: int | None, sink=None) -> bool:
        """Pass ``data`` on (to ``master``, or ``sink.write``); True when the keys were typed."""
        out = b""
        for b in data:
            ch = bytes([b])
            if self.keys.startswith(self.pending + ch):
                self.pending += ch
                if self.pending == self.keys:
                    return True
                continue
            out += self.pending + ch
            self.pending = b""
        if out:
            if sink is not None:
                sink.write(out)
            else:
                write_all(master, out)
        return False


def read_stdin() -> bytes | None:
    """A chunk of the CLI's stdin; None at its end."""
    try:
        data = os.read(0, 65536)
    except OSError:
        return None
    return data or None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            selectors.DefaultSelector().select(0.01)


def follow_window_size(master: int) -> None:
    """Give the pty the size of the CLI's terminal whenever that changes (SIGWINCH)."""
    def winch(_s, _f):
        size = terminal_size()
        if size:
            with contextlib.suppress(OSError):
                fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    signal.signal(signal.SIGWINCH, winch)


class RawTerminal:
    """Put the CLI's terminal in raw mode for an interactive tty session, and restore it."""

    def __init__(self, wanted: bool):
        self.active = wanted and os.isatty(0)
        self.saved = None

    def __enter__(self) -> RawTerminal:
        if self.active:
            self.saved = termios.tcgetattr(0)
            ttymod.setraw(0, termios.TCSANOW)  # keep what was typed ahead
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone (closed window)
                termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
