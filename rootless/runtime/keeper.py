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

from rootless.base.channel import Channel
from rootless.runtime import keeperclient as protocol
from rootless.runtime.subreaper import exited, process_state


class Stdio:
    """The container's stdio, created by the keeper before it forks the container."""

    def __init__(self, tty: bool, interactive: bool, attached: bool, cli_stdin: bool,
                 passthrough: tuple[int, ...] = (), shown: tuple[str, ...] = ("stdout", "stderr")):
        """``attached``: a CLI shows the output; ``cli_stdin``: the keeper relays that CLI's stdin
        into the container's stdin pipe (else, with -i, the pipe is kept open for `attach`);
        ``passthrough``: copies of the caller's stdin, stdout and stderr, which become the
        container's own (the OCI runtime face, runc's pass-through: nothing is relayed or logged);
        ``shown``: the outputs the attached CLI shows (``run -a``; all are logged)."""
        self.tty = tty
        self.shown = shown
        self.passthrough = passthrough
        self.attached = attached
        self.master = -1
        self.stdin_w = -1
        self.fds: dict[str, int] = {}  # what the keeper reads: stream name -> fd
        self._child: list[int] = []
        self.stdin_r = -1
        if tty:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.tty_keeper, self.tty_child = Channel(a), Channel(b)
        elif passthrough:
            self.relay_stdin = False
            return
        else:
            out_r, self.out_w = os.pipe()
            err_r, self.err_w = os.pipe()
            self.fds = {"stdout": out_r, "stderr": err_r}
            for fd in self.fds.values():  # the keeper's ends (the container's stay blocking): a read
                os.set_blocking(fd, False)  # of an output a sync drained must not wait for more
            self._child = [self.out_w, self.err_w]
        # With -i and no -t stdin is a pipe too: the keeper relays the attached CLI's stdin into
        # it (``relay_stdin``), or keeps it open for `attach` instead of reading EOF. The CLI's
        # own descriptors (the user's terminal, a CI runner's pipe) never reach the container.
        self.relay_stdin = interactive and cli_stdin and not tty
        if interactive and not tty:
            self.stdin_r, self.stdin_w = os.pipe()
            self._child.append(self.stdin_r)

    # -- in the container process, before exec
    def connect_child(self, interactive: bool) -> None:
        if self.passthrough:
            if not self.tty:
                for n, fd in enumerate(self.passthrough):
                    os.dup2(fd, n)
            for fd in self.passthrough:
                if fd > 2:
                    os.close(fd)
            return
        if not self.tty:
            os.dup2(self.out_w, 1)
            os.dup2(self.err_w, 2)
        if self.stdin_r >= 0:
            os.dup2(self.stdin_r, 0)
        elif not interactive and not self.tty:
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        for fd in (self.stdin_w, self.stdin_r, self.out_w if not self.tty else -1,
                   self.err_w if not self.tty else -1, *self.fds.values()):
            if fd > 2:  # the keeper's ends, and the originals of the copies above: with --init, PID 1
                os.close(fd)  # stays and would hold them (stdin would never end)

    def send_master(self, master: int) -> None:
        self.tty_child.send("tty", fds=[master])

    # -- in the keeper, after the fork
    def connect_keeper(self) -> None:
        for fd in self._child + [fd for fd in self.passthrough if fd > 2]:
            os.close(fd)
        if self.tty:
            self.tty_child.close()
            msg, fds = self.tty_keeper.recv()  # EOF if the container failed before its pty
            self.tty_keeper.close()
            if msg is not None and fds:
                self.master = fds[0]
                os.set_blocking(self.master, False)
                self.fds = {"stdout": self.master}


# The attach socket and its messages: :mod:`rootless.runtime.keeperclient`.
def listen(directory: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    protocol.short_path(directory, protocol.ATTACH_SOCKET, sock.bind)
    sock.listen(8)
    return sock


def connect_pending(directory: str) -> list[socket.socket]:
    """The keeper's side of :func:`keeperclient.register_pending`: a connection to each waiting client (each
    socket file is removed: one start serves it)."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".sock")]
    except OSError:
        return []
    out = []
    for name in names:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            protocol.short_path(directory, name, sock.connect)
            out.append(sock)
        except OSError:  # its client is gone
            sock.close()
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    return out


class Wakeup:
    """SIGCHLD as a readable pipe for the keeper's selector."""

    def __init__(self) -> None:
        import signal
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.set_wakeup_fd(self.w)

    def drain(self) -> None:
        while _read(self.r):
            pass

    def close(self) -> None:
        import signal
        signal.set_wakeup_fd(-1)
        os.close(self.r)
        os.close(self.w)


def release_terminal() -> None:
    """Hold no terminal and no pipe of the CLI's any more (fds 0, 1 and 2 become /dev/null): a
    detached keeper (``$(rootless run -d ...)`` returns), and an attached one once its CLI has
    detached or died (its reader sees the end of its output, as Docker's client's would)."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _cli_left(stdio: Stdio, relay, cli_gone) -> None:
    """The attached CLI detached, or died (``cli_gone``, called): its stdin ends for the container as
    Docker's StdinOnce would have it, and its terminal or pipes are let go (a reader sees the end)."""
    if cli_gone is not None:
        cli_gone()
    if relay is not None:
        relay.stop_reading()
        if relay.done:
            stdio.stdin_w = -1
    release_terminal()


def supervise(stdio: Stdio, ch: Channel, log, attach_sock: socket.socket | None, watch,
              wakeup: Wakeup, clients: list[socket.socket], cli_gone=None, timer=None, pid1: int = 0,
              ports=None, idle=None, resumed: bool = False) -> None:
    """Relay output until the container's last writer is gone and PID 1 has exited (a container
    that closed its outputs is still supervised: health checks, attach clients, ports), logging it
    to ``log`` (a ``logs.LogWriter``, closed here); meanwhile let ``watch`` (an ``exitwatch.ExitWatch``
    or None) handle PID 1's stops, woken by SIGCHLD. The attach clients stay in ``clients`` for
    :func:`farewell`; ``cli_gone()`` is called when the attached CLI has died (not detached).
    ``timer`` (a ``healthmonitor.Monitor`` or None): its ``tick()`` runs after every wake-up, and the
    loop sleeps at most its ``timeout()``. ``pid1``: the container's PID 1 (0: unknown), whose first
    output a ``sync`` awaits in the container's first ``FIRST_RUN_WAIT`` seconds (:func:`_synced`);
    ``ports``: the port relay (a ``netstack.relay.Relay`` or None), served here (:class:`_Ports`).
    ``idle`` (or None): after quiet (:func:`_nap`), ``idle.rest(...)`` execs the idle program
    (``runtime.hibernate``; it returns only if it could not); ``resumed``: after one."""
    terminal = {k: fd for k, fd in (("stdout", 1), ("stderr", 2)) if k in stdio.shown} if stdio.attached else {}
    sel, relay, ports = _watch_all(stdio, ch, attach_sock, wakeup, clients, ports)
    open_outputs = len(stdio.fds)
    first = _FirstOutput(0 if resumed else pid1)
    try:
        while open_outputs or not _exited(pid1, watch):
            wait = _soonest(watch, timer, ports)
            nap = _nap(idle, wait, terminal, relay, ports, first, log, watch, timer)
            events = sel.select(wait if nap is None else nap)
            if nap is not None and not events:  # quiet for ``nap`` s
                idle = _rest(idle, nap, wait, sel, attach_sock, clients, wakeup, log, ports)
                continue
            for t in (watch, timer, ports):  # PID 1's stops, the health checks, the ports' sweeps
                if t is not None:
                    t.tick()
            for key, _mask in events:
                if key.fd not in sel.get_map():  # unregistered by an earlier event of this round
                    continue
                if callable(key.data):  # SIGCHLD's wake-up (ticks ran), a new attach client, the relay
                    key.data()
                    continue
                if relay is not None and key.data is relay:
                    relay.handle(key.fd)
                    if relay.done:  # the input ended: the container reads EOF
                        stdio.stdin_w = -1
                    continue
                if key.data is None:  # a message from the attached CLI, or its end
                    msg, _fds = ch.recv()
                    if msg is None or msg["type"] == "detach":
                        sel.unregister(key.fileobj)
                        terminal = {}
                        _cli_left(stdio, relay, cli_gone if msg is None else None)
                    continue
                if key.data == "client":
                    shown = terminal  # the attached terminal now, for a sync's output
                    if not _from_client(key.fileobj, stdio, lambda c, t=shown: first.note(
                            _synced(c, sel, log, t, clients, first.pending()))):
                        sel.unregister(key.fileobj)
                        clients.remove(key.fileobj)
                        key.fileobj.close()
                    continue
                data = _read(key.fileobj)
                if data is None:  # drained meanwhile (by a sync of this round)
                    continue
                if not data:
                    sel.unregister(key.fileobj)
                    open_outputs -= 1
                    continue
                first.note()
                log.write(key.data, data)
                if key.data in terminal and not _write(terminal[key.data], data):
                    terminal = {}
                _broadcast(clients, sel, protocol.output_message(key.data, data))
    finally:
        if relay is not None:
            relay.close()
            stdio.stdin_w = -1
        ports.close()  # PID 1 has exited: its ports are closed before the selector they share
        wakeup.close()
        log.close()
        sel.close()


def _nap(idle, wait: float | None, terminal: dict, relay, ports: _Ports, first: _FirstOutput, log, watch,
         timer) -> float | None:
    """The seconds of quiet after which the keeper rests, or None: it does not now (no ``idle``,
    :func:`_restful` says no, or a timer is due before: only a timer that says it can wait in a
    rest, ``restable()`` (a health check between its probes), lets a keeper rest, and only until
    its time); never before its start is past."""
    if idle is None or not _restful(terminal, relay, ports, log):
        return None
    nap = max(idle.after, first.left())
    if wait is not None and (wait <= nap or (watch is not None and watch.timeout() is not None)
                             or ports.timeout() is not None or not getattr(timer, "restable", bool)()):
        return None
    return nap


def _restful(terminal: dict, relay, ports: _Ports, log) -> bool:
    """Whether the keeper could rest (``runtime.hibernate``): no attached CLI to serve, no stdin
    relay, a port relay that only listens, no failure of the log's (its partial lines are carried over)."""
    failed = bool(getattr(log, "error", ""))  # a writer after the rest would report the failure again
    return not (terminal or relay is not None or (ports.relay is not None and not ports.relay.restable()) or failed)


def _rest(idle, nap: float, wait: float | None, sel, attach_sock, clients: list, wakeup: Wakeup, log, ports):
    """Rest (until the timer's time, if any); None when ``idle.rest`` returned: it could not."""
    return idle.rest(*_rest_list(sel, attach_sock, clients, wakeup, log, ports), log,
                     None if wait is None else max(0.0, wait - nap))


def _rest_list(sel, attach_sock: socket.socket | None, clients: list, wakeup: Wakeup, log,
               ports: _Ports) -> tuple[list[int], dict, list[int]]:
    """For ``idle.rest``: the descriptors to wake on (the open outputs, the attach socket and its
    clients, the port relay's epoll set), the open outputs by name, and the descriptors the rest
    closes (the selector's, the wake-up pipe's, the log's: made again after it)."""
    outputs = {k.data: k.fd for k in sel.get_map().values() if k.data in ("stdout", "stderr")}
    fds = list(outputs.values()) + ([attach_sock.fileno()] if attach_sock is not None else []) \
        + [c.fileno() for c in clients] + ([ports.relay.fileno()] if ports.relay is not None else [])
    return fds, outputs, [sel.fileno(), wakeup.r, wakeup.w, *getattr(log, "fds", lambda: [])()]


def _exited(pid: int, watch) -> bool:
    """Whether the container's PID 1 (0: unknown) has exited; its status stays for the keeper's reap."""
    if not pid or (watch is not None and watch.final_status is not None):
        return True
    return exited(pid)


class _Ports:
    """The port relay (or None) in the supervise loop: its epoll descriptor in the loop's selector
    (``Relay.share``: one wait for all; readable, a round of the relay's events), its sweeps a
    timer. Should it fail, its sockets close (clients find the ports closed) and the container
    goes on, as when the relay was a process of its own and died."""

    def __init__(self, relay, sel):
        self.relay = relay
        if relay is not None:
            relay.share(sel, self.serve)

    def timeout(self) -> float | None:
        return self.relay.timeout() if self.relay is not None else None

    def serve(self) -> None:
        """The relay's loop is readable: a round of its events."""
        if self.relay is not None:
            try:
                self.relay.serve(0.0)
            except Exception:  # noqa: BLE001 - the relay's failure is never the container's end
                self.close()

    def tick(self) -> None:
        if self.relay is not None:
            try:
                self.relay.tick()
            except Exception:  # noqa: BLE001 - as in serve
                self.close()

    def close(self) -> None:
        relay, self.relay = self.relay, None
        if relay is not None:
            try:
                relay.close()
            except OSError:
                pass


def _soonest(*timers) -> float | None:
    """The shortest of the timers' timeouts (None: no timer wants a wake-up)."""
    waits = [t for t in (x.timeout() if x is not None else None for x in timers) if t is not None]
    return min(waits) if waits else None


def _watch_all(stdio: Stdio, ch: Channel, attach_sock: socket.socket | None, wakeup: Wakeup,
               clients: list[socket.socket], ports=None):
    """The selector of :func:`supervise` with every descriptor it watches registered, the relay
    of the attached CLI's stdin (or None), and the port relay ``ports`` as :class:`_Ports`."""
    sel = selectors.DefaultSelector()
    relay = None
    if stdio.relay_stdin and stdio.stdin_w >= 0:  # the attached CLI's stdin (ours: we are its fork)
        from rootless.runtime.terminal import InputRelay
        relay = InputRelay(sel, 0, stdio.stdin_w)
    for name, fd in stdio.fds.items():
        sel.register(fd, selectors.EVENT_READ, name)
    if stdio.attached:
        sel.register(ch.fileno(), selectors.EVENT_READ, None)
        if stdio.master >= 0:
            ch.send("tty", fds=[stdio.master])  # the CLI writes input and sets the window size
    if attach_sock is not None:
        sel.register(attach_sock, selectors.EVENT_READ, lambda: _accept(attach_sock, clients, sel))
    for client in clients:  # connected before the container ran (API attach and wait)
        client.setblocking(False)
        sel.register(client, selectors.EVENT_READ, "client")
    sel.register(wakeup.r, selectors.EVENT_READ, wakeup.drain)
    return sel, relay, _Ports(ports, sel)


def _accept(attach_sock: socket.socket, clients: list[socket.socket], sel) -> None:
    """A new attach client, watched from now on (and told the exit code: :func:`farewell`)."""
    client, _ = attach_sock.accept()
    client.setblocking(False)
    clients.append(client)
    sel.register(client, selectors.EVENT_READ, "client")


def farewell(clients: list[socket.socket], attach_sock: socket.socket | None, code: int | None) -> None:
    """Tell every attach client (those still queued on the socket too) the exit code, then close
    them all: ``wait`` and ``attach`` learn the code even when the record is gone (``--rm``, ``rm -f``)."""
    if attach_sock is not None:
        attach_sock.setblocking(False)
        while True:
            try:
                clients.append(attach_sock.accept()[0])
            except OSError:
                break
        attach_sock.close()
    for c in clients:
        try:
            if code is not None:
                c.setblocking(True)
                c.settimeout(1)
                c.send(protocol.exit_message(code))
        except OSError:
            pass
        c.close()
    clients.clear()


def _from_client(client: socket.socket, stdio: Stdio, on_sync=None) -> bool:
    """Input, window size, end of input or ``sync`` (``on_sync(client)``) from an attached
    client; False when it is gone."""
    try:
        msg = client.recv(protocol.MAX_MESSAGE)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if not msg:
        return False
    kind, data = protocol.parse_request(msg)
    target = stdio.master if stdio.master >= 0 else stdio.stdin_w
    if kind == "input" and target >= 0:
        _write(target, data)
    elif kind == "winsize" and stdio.master >= 0:
        import fcntl
        import termios
        try:
            fcntl.ioctl(stdio.master, termios.TIOCSWINSZ, data[:8])
        except OSError:
            pass
    elif kind == "close-stdin" and stdio.stdin_w >= 0:
        os.close(stdio.stdin_w)
        stdio.stdin_w = -1
    elif kind == "sync" and on_sync is not None:
        on_sync(client)
    return True


FIRST_RUN_WAIT = 1.0  # seconds from the start in which a sync awaits a runnable PID 1's first output


class _FirstOutput:
    """Whether the container is starting (in its first ``FIRST_RUN_WAIT`` seconds) and has written
    nothing yet: then a sync awaits PID 1's first output (:func:`_synced`)."""

    def __init__(self, pid1: int):
        import time
        self.pid1 = pid1
        self.until = time.monotonic() + FIRST_RUN_WAIT if pid1 else 0.0

    def left(self) -> float:
        """The seconds left of its first ``FIRST_RUN_WAIT`` while it has written nothing (else 0)."""
        import time
        return max(0.0, self.until - time.monotonic()) if self.until else 0.0

    def pending(self) -> tuple[int, float] | None:
        """What :func:`_synced` takes: (PID 1, until when it is starting), or None once it wrote."""
        return (self.pid1, self.until) if self.until else None

    def note(self, wrote: bool = True) -> None:
        """The container wrote (``wrote``): it is past its start."""
        if wrote:
            self.until = 0.0


def _synced(client: socket.socket, sel, log, terminal: dict, clients: list,
            first_run: tuple[int, float] | None = None) -> bool:
    """``sync``: what the container's outputs hold now goes to the log (and to the attached
    terminal and clients, as always) before the client is answered: a ``logs`` right after the
    container wrote finds it there. The ends of the outputs are left to the main loop.

    ``first_run``: (the pid of a PID 1 that has written nothing yet, the monotonic time until which
    it is starting). A ``start`` returns once the command is exec'd, when it may not have run yet
    (the scheduler chose others, its first page is read from the disk): while it is starting and
    runnable (:func:`_runnable`), its first output is awaited, so that a ``logs`` right after the
    start of ``echo`` shows the line. One that sleeps, stopped or ended has written what it wrote
    before. Whether anything was logged."""
    import select
    import time
    outputs = {k.fd: k.data for k in sel.get_map().values() if k.data in ("stdout", "stderr")}
    pid1, until = first_run if first_run is not None else (0, 0.0)
    if not (pid1 and time.monotonic() < until and _runnable(pid1)):
        until = 0.0
    logged = False
    while outputs:
        wait = 0.0 if logged else min(0.005, max(0.0, until - time.monotonic()))
        ready, _, _ = select.select(list(outputs), [], [], wait)
        if not ready:
            if logged or time.monotonic() >= until or not _runnable(pid1):
                break
            continue
        for fd in ready:
            data = _read(fd)
            if data is None:  # nothing after all: awaited again only while PID 1 starts
                if time.monotonic() >= until:
                    del outputs[fd]
                continue
            if not data:  # its end: the main loop sees it too
                del outputs[fd]
                continue
            logged = True
            log.write(outputs[fd], data)
            if outputs[fd] in terminal:
                _write(terminal[outputs[fd]], data)
            _broadcast(clients, sel, protocol.output_message(outputs[fd], data))
    try:
        client.send(protocol.synced_message())
    except OSError:
        pass
    return logged


def _runnable(pid: int) -> bool:
    """Whether ``pid`` is running or waiting to (``R``), or waiting for the disk (``D``): not
    sleeping, stopped or ended."""
    return process_state(pid) in ("R", "D")


def _broadcast(clients: list, sel, msg: bytes) -> None:
    for c in list(clients):
        try:
            c.send(msg)
        except OSError:  # gone, or too slow to keep up: detach it
            sel.unregister(c)
            clients.remove(c)
            c.close()


def _read(fd: int) -> bytes | None:
    """What ``fd`` holds: b"" at its end, None when nothing is there now (a non-blocking output)."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
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
