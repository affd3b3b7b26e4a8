"""The keeper's second job: supervise a running container (as conmon does for podman).

It holds the container's stdio (pipes, or the pty master with ``-t``), writes
every byte to the container's log (Docker's json-file format) and, while a CLI
is attached (foreground ``run``, ``start -a``), also to that CLI's terminal;
it hands the pty to the attached CLI for input and window size, stops
forwarding when the CLI detaches or dies, and returns the container's wait
status once its output has ended.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket

from rootless.channel import Channel


class Stdio:
    """The container's stdio, created by the keeper before it forks the container."""

    def __init__(self, tty: bool, interactive: bool, attached: bool):
        self.tty = tty
        self.attached = attached
        self.master = -1
        self.stdin_w = -1
        self.fds: dict[str, int] = {}  # what the keeper reads: stream name -> fd
        self._child: list[int] = []
        self.stdin_r = -1
        if tty:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.tty_keeper, self.tty_child = Channel(a), Channel(b)
        else:
            out_r, self.out_w = os.pipe()
            err_r, self.err_w = os.pipe()
            self.fds = {"stdout": out_r, "stderr": err_r}
            self._child = [self.out_w, self.err_w]
        if interactive and not attached:
            # Detached with -i: stdin stays open (nothing writes yet) instead of reading EOF.
            self.stdin_r, self.stdin_w = os.pipe()
            self._child.append(self.stdin_r)

    # -- in the container process, before exec
    def connect_child(self, interactive: bool) -> None:
        if not self.tty:
            os.dup2(self.out_w, 1)
            os.dup2(self.err_w, 2)
        if self.stdin_r >= 0:
            os.dup2(self.stdin_r, 0)
        elif not interactive and not self.tty:
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)

    def send_master(self, master: int) -> None:
        self.tty_child.send("tty", fds=[master])

    # -- in the keeper, after the fork
    def connect_keeper(self) -> None:
        for fd in self._child:
            os.close(fd)
        if self.tty:
            self.tty_child.close()
            msg, fds = self.tty_keeper.recv()  # EOF if the container failed before its pty
            self.tty_keeper.close()
            if msg is not None and fds:
                self.master = fds[0]
                self.fds = {"stdout": self.master}


def supervise(stdio: Stdio, ch: Channel, log_path: str) -> None:
    """Relay output until the container's last writer is gone."""
    from rootless.logs import LogWriter

    log = LogWriter(log_path)
    terminal = {"stdout": 1, "stderr": 2} if stdio.attached else {}
    sel = selectors.DefaultSelector()
    for name, fd in stdio.fds.items():
        sel.register(fd, selectors.EVENT_READ, name)
    if stdio.attached:
        sel.register(ch.fileno(), selectors.EVENT_READ, None)
        if stdio.master >= 0:
            ch.send("tty", fds=[stdio.master])  # the CLI writes input and sets the window size
    open_outputs = len(stdio.fds)
    try:
        while open_outputs:
            for key, _ in sel.select():
                if key.data is None:  # a message from the attached CLI, or its end
                    msg, _fds = ch.recv()
                    if msg is None or msg["type"] == "detach":
                        sel.unregister(key.fileobj)
                        terminal = {}
                    continue
                data = _read(key.fileobj)
                if not data:
                    sel.unregister(key.fileobj)
                    open_outputs -= 1
                    continue
                log.write(key.data, data)
                if key.data in terminal and not _write(terminal[key.data], data):
                    terminal = {}
    finally:
        log.close()
        sel.close()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError as e:
        if e.errno == errno.EIO:  # the pty's last slave closed
            return b""
        raise


def _write(fd: int, data: bytes) -> bool:
    """Write to the attached terminal; False once it is gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        return False
    return True
