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

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

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
        self.old: dict[int, Any] = {}
        self.tied = tied
        self.cancelled = 0

    def install(self) -> None:
        for sig in FORWARDED:
            self.old[sig] = signal.signal(sig, self._handle)

    def take(self, proxy: bool) -> None:
        """Docker's ``--sig-proxy``: the CLI's signals go to the container (:meth:`install`), or
        with ``proxy`` false they end the CLI at once, Ctrl-C too (no exception, no wait), the
        container running on; :meth:`restore` undoes either."""
        if proxy:
            self.install()
        else:
            self.old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_DFL)

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
                assert master is not None  # the callers give a master or a sink
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
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        if self.active:
            self.saved = termios.tcgetattr(0)
            ttymod.setraw(0, termios.TCSANOW)  # keep what was typed ahead
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            with contextlib.suppress(OSError, termios.error):  # the terminal may be gone (closed window)
                termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)


def hold_std_fds() -> None:
    """A CLI started with stdin, stdout or stderr closed gets /dev/null there, so that no pipe or
    socket made later takes the number and is mistaken for the user's stdio."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open("/dev/null", os.O_RDWR)  # the lowest free number: this one


F_SETPIPE_SZ = 1031
RELAY_CHUNK = 1 << 20


class InputRelay:
    """Copy the CLI's stdin (``src``) into the write end of a container's stdin pipe (``dst``)
    from the caller's selector loop, so that no descriptor of the user's terminal (or of the CLI's
    own pipes and files) ever reaches the container. Input waits in a buffer while the pipe is
    full, so the loop goes on relaying output; at the end of the input the pipe is closed and the
    container reads EOF. A source epoll cannot watch (a regular file, ``/dev/null``) is read
    whenever the pipe has room. ``src`` is never made non-blocking: its file description is
    shared with the user's shell. The selector's keys carry this object as their data."""

    def __init__(self, sel: selectors.BaseSelector, src: int, dst: int):
        self.sel, self.src, self.dst = sel, src, dst
        self.buf = b""
        self.pollable = True
        self.reading = True
        self._registered: set[int] = set()
        os.set_blocking(dst, False)
        with contextlib.suppress(OSError):  # fewer, larger copies (best effort: a user's pipe quota)
            fcntl.fcntl(dst, F_SETPIPE_SZ, RELAY_CHUNK)
        try:
            sel.register(src, selectors.EVENT_READ, self)
            self._registered.add(src)
        except PermissionError:  # a regular file: always readable, epoll refuses it
            self.pollable = False
        except (OSError, ValueError):  # no stdin at all
            self.reading = False
        self._arm()

    @property
    def done(self) -> bool:
        return self.dst < 0

    def _watch(self, fd: int, events: int | None) -> None:
        if events is None:
            if fd in self._registered:
                self.sel.unregister(fd)
                self._registered.discard(fd)
        elif fd in self._registered:
            self.sel.modify(fd, events, self)
        else:
            self.sel.register(fd, events, self)
            self._registered.add(fd)

    def _arm(self) -> None:
        if self.dst < 0:
            return
        if not self.buf and not self.reading:
            self.close()
            return
        from_src = not self.buf and self.pollable
        self._watch(self.src, selectors.EVENT_READ if from_src and self.pollable else None)
        self._watch(self.dst, None if from_src else selectors.EVENT_WRITE)

    def handle(self, fd: int) -> None:
        """One event of ``fd`` (the source readable or the pipe writable)."""
        if self.dst < 0:
            return
        if not self.buf and self.reading and (fd == self.src or not self.pollable):
            try:
                self.buf = os.read(self.src, RELAY_CHUNK)
            except OSError:  # EIO: the terminal is gone
                self.buf = b""
            if not self.buf:
                self.reading = False
        if self.buf:
            try:
                self.buf = self.buf[os.write(self.dst, self.buf):]
            except BlockingIOError:
                pass
            except OSError:  # EPIPE: the container closed its stdin; the rest is not read
                self.buf, self.reading = b"", False
        self._arm()

    def stop_reading(self) -> None:
        """Read no more of ``src`` (what is buffered still goes in), then close the pipe."""
        self.reading = False
        self._arm()

    def close(self) -> None:
        for fd in list(self._registered):
            self._watch(fd, None)
        if self.dst >= 0:
            os.close(self.dst)
            self.dst = -1
