"""The parent side of a foreground container: start it, relay its terminal, forward signals.

The dialogue with the in-namespace side (:mod:`rootless.child`) is:
``userns`` -> (maps written) ``mapped`` -> ``tty`` (the pty master, with -t) ->
``pid`` (the container's pid) -> EOF when the keeper exits; an ``error``
message at any point carries the failure and its exit code.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import sys
import termios
import tty as ttymod

from rootless import child, timing, userns
from rootless.errors import RootlessError
from rootless.idmap import IdMapping


class Forwarder:
    """Forward the CLI's signals to the container (queued until its pid is known)."""

    def __init__(self) -> None:
        self.pid = 0
        self.pending: list[int] = []
        self.old = {}

    def install(self) -> None:
        for sig in child.FORWARDED:
            self.old[sig] = signal.signal(sig, self._handle)

    def _handle(self, sig: int, _frame) -> None:
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


DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, Docker's default


def run(plan: child.LaunchPlan, mapping: IdMapping, detach_keys: bytes = DETACH_KEYS) -> int | None:
    """Start the container; attached: wait and return its exit code; detached: return None once
    it runs. A failure to start raises RootlessError (with the container's exit code for 126/127)."""
    attached = plan.attached
    fwd = Forwarder()
    if attached:
        fwd.install()
    master = -1
    error: dict | None = None
    code: int | None = None
    detached = False  # by the detach keys: the keeper goes on without us
    finished = False  # the keeper said the container's end is recorded: it tidies up alone
    try:
        try:
            if plan.net is not None and plan.net.join_fds:  # container: network: its user namespace too
                keeper, ch = userns.fork_joining(plan.net.join_fds[0], mapping, lambda c: child.sandbox(plan, c))
            else:
                keeper, ch = userns.fork_into_userns(mapping, lambda c: child.sandbox(plan, c))
        finally:
            if plan.net is not None:
                from rootless import network
                network.close(plan.net)  # the keeper holds the ports now; a failed start frees them
        try:
            sel = selectors.DefaultSelector()
            sel.register(ch.fileno(), selectors.EVENT_READ, "channel")
            detach = DetachKeys(detach_keys)
            with RawTerminal(attached and plan.spec.tty and plan.spec.interactive and plan.stdin) as raw:
                while sel.get_map():
                    for key, _ in sel.select():
                        if key.fd not in sel.get_map():  # unregistered by an earlier event of this round
                            continue
                        if key.data == "stdin":
                            data = read_stdin()
                            if data is None:  # EOF
                                sel.unregister(0)
                                with contextlib.suppress(OSError):
                                    os.write(master, b"\x04")  # EOF for the line discipline
                            elif detach.feed(data, master):
                                ch.send("detach")
                                detached = True
                                return None
                            continue
                        msg, fds = ch.recv()
                        if msg is None:  # the keeper has exited
                            sel.unregister(ch.fileno())
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(0)
                        elif msg["type"] == "tty" and fds:
                            master = fds[0]
                            _start_input_relay(sel, master, plan.spec.interactive and plan.stdin, raw)
                        elif msg["type"] == "pid":
                            fwd.started(msg["pid"])
                            if not attached:
                                return None
                        elif msg["type"] == "finished":  # the container's end is recorded
                            code = msg["code"]
                            finished = True
                            sel.unregister(ch.fileno())
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(0)
                        elif msg["type"] == "error":
                            error = msg
                        elif msg["type"] == "mark":
                            timing.mark(msg["name"], msg["t"])
                        elif msg["type"] == "warning":
                            print(f"rootless: warning: {msg['message']}", file=sys.stderr, flush=True)
        finally:
            ch.close()
            if error is not None or (attached and not detached and not finished):
                code = userns.reap(keeper)
    finally:
        fwd.restore()
        if master >= 0:
            os.close(master)
    if error is not None:
        raise RootlessError(error["message"], error.get("hint"), error.get("exit_code"))
    return code


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


def _start_input_relay(sel: selectors.BaseSelector, master: int, interactive: bool, raw: RawTerminal) -> None:
    if interactive:
        sel.register(0, selectors.EVENT_READ, "stdin")
    if raw.active:
        follow_window_size(master)


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
