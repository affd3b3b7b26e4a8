"""The CLI's loop while a child it forked runs in the foreground: ``run``'s keeper
(:mod:`rootless.runtime.launcher`) or ``exec``'s helper (:mod:`rootless.runtime.execute`).

One loop for both: it reads the child's channel (``tty`` hands over the pty master, ``pid``
the process's pid, for signals, ``finished`` the recorded exit code, ``error``, ``warning``,
``mark``; its end: the child is gone), relays the CLI's stdin into the pty (watching for the
detach keys) or through an :class:`~rootless.runtime.terminal.InputRelay` into a pipe, and
shows the pty's or the pipes' output. What differs between its users is said by its options.
"""

from __future__ import annotations

import contextlib
import os
import selectors

from rootless.base.channel import Channel
from rootless.runtime.terminal import (
    DetachKeys,
    Forwarder,
    InputRelay,
    RawTerminal,
    follow_window_size,
    read_stdin,
    write_all,
)

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

ENDED, DETACHED, LEFT = "ended", "detached", "left"


class Session:
    """``interactive``: relay the CLI's stdin into the pty; ``detach_keys``: typed there, they
    leave the child running (the child is told ``detach``); ``eof_to_pty``: the end of stdin
    is passed on as the line discipline's EOF (ctrl-d); ``eof_ends``: the end of stdin ends the
    session (``LEFT``: Docker's ``exec -t``, whose daemon closes the output once the client's input
    ended); ``show_pty``: the pty's output is
    the CLI's to show (else the child shows it); ``outputs``: pipes whose bytes go to the CLI's
    stdout or stderr (our end -> 1 or 2); ``stdin_pipe``: the write end of the process's stdin
    pipe, fed from the CLI's stdin (the session's from now on); ``warn``: where the child's
    warnings go (the Context's ``warn``)."""

    def __init__(self, ch: Channel, fwd: Forwarder, *, interactive: bool, detach_keys: bytes | None = None,
                 eof_to_pty: bool = False, eof_ends: bool = False, show_pty: bool = False,
                 outputs: dict[int, int] | None = None, stdin_pipe: int = -1,
                 warn: Callable[[str], None] | None = None):
        self.ch, self.fwd = ch, fwd
        self.warn = warn
        self.interactive = interactive
        self.detach = DetachKeys(detach_keys) if detach_keys is not None else None
        self.eof_to_pty, self.eof_ends = eof_to_pty, eof_ends
        self.show_pty = show_pty
        self.master = -1
        self.error: dict | None = None
        self.code: int | None = None
        self.finished = False  # the child said the container's end is recorded: it tidies up alone
        self.on_running: Callable[[], bool] | None = None  # run()'s
        self.detached = False  # by the detach keys: the child goes on without us
        self.sel = selectors.DefaultSelector()
        self.sel.register(ch.fileno(), selectors.EVENT_READ, "channel")
        self.outputs = dict(outputs or {})
        for fd in self.outputs:
            self.sel.register(fd, selectors.EVENT_READ, "output")
        self.relay = InputRelay(self.sel, 0, stdin_pipe) if stdin_pipe >= 0 else None

    def run(self, raw: bool, on_pid=None, on_running=None) -> str:
        """Until the child is gone or has said the end is recorded (``ENDED``), the detach keys
        were typed (``DETACHED``), or ``on_pid(pid)`` says to leave once the process exists, or
        ``on_running()`` once its command was exec'd and recorded running (a container's keeper
        says so: ``running``), or stdin ended with ``eof_ends`` (``LEFT``). ``raw``: the CLI's
        terminal is in raw mode meanwhile."""
        self.on_running = on_running
        sel = self.sel
        with RawTerminal(raw) as term:
            while sel.get_map():
                for key, _ in sel.select():
                    if key.fd not in sel.get_map():  # unregistered by an earlier event of this round
                        continue
                    if self.relay is not None and key.data is self.relay:
                        self.relay.handle(key.fd)
                    elif key.data == "output":
                        if not self._emit(key.fd):
                            self._end(key.fd)
                    elif key.data == "master":
                        data = _read(self.master)
                        if data:
                            write_all(1, data)
                        else:
                            sel.unregister(self.master)
                    elif key.data == "stdin":
                        if self._from_stdin():
                            self.ch.send("detach")
                            self.detached = True
                            return DETACHED
                        if self.eof_ends and 0 not in sel.get_map():  # stdin ended: so does the session
                            self._stop(drain=True)
                            return LEFT
                    elif self._from_child(term, on_pid):
                        return LEFT
        return ENDED

    def _from_stdin(self) -> bool:
        """Pass typed input to the pty; True when it was the detach keys."""
        data = read_stdin()
        if data is None:  # EOF
            self.sel.unregister(0)
            if self.eof_to_pty:
                with contextlib.suppress(OSError):
                    os.write(self.master, b"\x04")  # EOF for the line discipline
            return False
        if self.detach is not None:
            return self.detach.feed(data, self.master)
        write_all(self.master, data)
        return False

    def _from_file(self) -> None:
        """A terminal's input from a file (``start -ai`` of a ``-t`` container, as Docker's CLI
        allows): its bytes to the pty, then the end of input."""
        while (data := read_stdin()) is not None:
            write_all(self.master, data)
        if self.eof_to_pty:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")

    def _from_child(self, term: RawTerminal, on_pid) -> bool:
        """A message from the child, or its end; True when ``on_pid`` says to leave."""
        msg, fds = self.ch.recv()
        if msg is None:  # the child is gone: show what is left of the output, then stop
            self._stop(drain=True)
        elif msg["type"] == "tty" and fds:
            self.master = fds[0]
            if self.show_pty:
                self.sel.register(self.master, selectors.EVENT_READ, "master")
            if self.interactive:
                try:
                    self.sel.register(0, selectors.EVENT_READ, "stdin")
                except PermissionError:  # a regular file or /dev/null (epoll refuses them): read at once
                    self._from_file()
            if term.active:
                follow_window_size(self.master)
        elif msg["type"] == "pid":
            self.fwd.started(msg["pid"])
            if on_pid is not None and on_pid(msg["pid"]):
                return True
        elif msg["type"] in ("running", "created"):  # created: an OCI container waits for `start`
            if self.on_running is not None and self.on_running():
                return True
        elif msg["type"] == "finished":  # the container's end is recorded
            self.code = msg["code"]
            self.finished = True
            self._stop(drain=False)
        elif msg["type"] == "error":
            self.error = msg
        elif msg["type"] == "mark":
            from rootless.base import timing
            timing.mark(msg["name"], msg["t"])
        elif msg["type"] == "warning":
            if self.warn is not None:
                self.warn(msg["message"])
        return False

    def _stop(self, drain: bool) -> None:
        """Watch nothing more. ``drain``: first pass on what the pty and the pipes hold (a
        process left behind may hold them: no waiting for it)."""
        if drain:
            if self.show_pty and self.master >= 0:
                os.set_blocking(self.master, False)
                while data := _read(self.master):
                    write_all(1, data)
            for fd in list(self.outputs):
                os.set_blocking(fd, False)
                while self._emit(fd):
                    pass
                self._end(fd)
        if self.relay is not None:
            self.relay.close()
        for k in list(self.sel.get_map().values()):
            self.sel.unregister(k.fileobj)

    def _emit(self, fd: int) -> bool:
        """Pass on what the pipe ``fd`` holds; False at its end, or when our own output is gone."""
        data = _read(fd)
        if not data:
            return False
        try:
            write_all(self.outputs[fd], data)
        except OSError:  # a closed pipe (`exec C yes | head -1`)
            return False
        return True

    def _end(self, fd: int) -> None:
        """Done with an output: the process writing more gets EPIPE, as if it wrote there itself."""
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        os.close(fd)
        del self.outputs[fd]

    def close(self) -> None:
        """Close what the session holds: the pty master, the stdin relay, the pipes, the selector."""
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        if self.relay is not None:
            self.relay.close()
        for fd in self.outputs:
            os.close(fd)
        self.outputs.clear()
        self.sel.close()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 20)
    except OSError:  # EIO once the pty's last user is gone, EAGAIN when drained
        return b""
