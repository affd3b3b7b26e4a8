"""A keeper with nothing to do sleeps as a tiny program and wakes up as Python when it must.

An idle keeper (a detached container that writes nothing, no attached CLI) is a Python
interpreter doing nothing; its memory was most of what a container cost. After ``after`` quiet
seconds (``ROOTLESS_KEEPER_IDLE``, default 1; 0 turns resting off) the keeper *rests*
(:func:`rest`): it pickles what it needs to go on into a memfd, blocks the signals it handles and
opens a signalfd for them, and execs :mod:`rootless.runtime.idlewait` **in its own process**. The
container stays its child (its exit waits, unreaped, for the Python that follows); every
descriptor it holds stays open (outputs, the attach socket and its clients, the published ports'
listening sockets and their epoll set, slirp4netns' exit pipe, the namespaces it keeps); the
process keeps its pid, start time, session and subreaper role. The program waits until an
output has something (or ends), a client connects or writes, or a handled signal is pending
(SIGCHLD: the container's end), then execs the same Python again, which :func:`resume` s: the
state is unpickled, the signal handlers set again and only then unblocked (a pending signal is
delivered to them), and the keeper goes on where it stopped.

How long a keeper waits before it rests grows four-fold (up to a minute) each time it is woken
soon after resting (a container that writes every few seconds does not pay for a Python start
each time), and goes back to ``after`` after a long rest (:class:`Pace`).
"""

from __future__ import annotations

import os
import signal
import sys
import time

ENV = "ROOTLESS_KEEPER_IDLE"
DEFAULT_AFTER = 1.0  # seconds of quiet before a keeper rests
LONGEST_AFTER = 60.0
SOON = 30  # a rest shorter than SOON waits makes the next wait 4x longer
# the resumed Python finds its modules where the keeper did (its sys.path, user site and .pth
# entries included: ``-S`` does not redo them), and nothing of the environment changes that
_BOOT = "import sys; sys.path[:] = {path!r}; from rootless.runtime.hibernate import resume; resume(*sys.argv[1:])"


def after_setting(environ=None) -> float | None:
    """Seconds of quiet before a keeper rests (``ROOTLESS_KEEPER_IDLE``), or None: never."""
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not raw:
        return DEFAULT_AFTER
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_AFTER
    return value if value > 0 else None


class Pace:
    """How long the keeper waits before it rests: ``base``, four times longer after each rest
    that was woken soon (within ``SOON`` waits), ``base`` again after a long one; a rest that
    ended at its own time (a health check's next probe) changes nothing."""

    def __init__(self, base: float):
        self.base = self.after = base
        self.rested_at = 0.0  # monotonic time of the last rest (0: none since the last wake-up)
        self.until = 0.0  # when that rest was to end by itself (a timer's time; 0: never)

    def resting(self, timeout: float | None = None) -> None:
        self.rested_at = time.monotonic()
        self.until = self.rested_at + timeout if timeout is not None else 0.0

    def woke(self) -> None:
        """After a rest: a wake-up by the rest's own end (a timer) says nothing of the container."""
        if self.rested_at and not (self.until and time.monotonic() >= self.until):
            slept = time.monotonic() - self.rested_at
            self.after = self.base if slept >= SOON * self.after else min(self.after * 4, LONGEST_AFTER)
        self.rested_at = 0.0


def rest(program: str, state, entry: str, watch: list[int], drop: list[int], ready=None, pid1: int = 0,
         timeout: float | None = None, title: str | None = None) -> None:
    """Exec the idle program ``program`` in this process, to wake up when one of ``watch`` is
    readable (or a handled signal pending), then run ``entry`` (``module:function``) as
    ``function(state, awake)``; it calls ``awake()`` once its signal handlers are set, and never
    returns. Every open descriptor stays open across both execs but those in ``drop`` (the
    selector's, the wake-up pipe's, the log's). ``ready()`` (or None) is asked once the handled
    signals are blocked: False (the container has ended meanwhile) keeps the keeper awake.
    Returns only when it did not rest, with everything as it was. ``pid1``: the container's PID 1,
    killed should the keeper fail to resume (then the container ends with it, as when its keeper is
    killed, instead of running on unsupervised). ``timeout``: seconds after which it wakes anyway
    (a timer of the keeper's: a health check's next probe), None: never. ``title``: the program's
    argv[0] (``ps``'s command line while it rests), the keeper's name by default."""
    handled = {s for s in signal.valid_signals() if callable(signal.getsignal(s))} | {signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    opened: list[int] = []
    held: set[int] = set()
    stdin = -1
    try:
        from rootless.base import syscalls
        sfd = syscalls.signalfd(handled)
        opened.append(sfd)
        if signal.getitimer(signal.ITIMER_REAL)[0] or (ready is not None and not ready()):
            raise InterruptedError  # a stop's deadline runs (its SIGALRM has no handler yet after a rest)
        held = _open_descriptors() - set(drop) - {0, 1, 2}
        for fd in held:
            os.set_inheritable(fd, True)
        payload = dict(state=state, entry=entry, mask=old_mask, held=held, signals=sfd, title=_title())
        state_fd = _memfd("rootless-keeper-state", _dump(payload))
        opened.append(state_fd)
        os.set_inheritable(state_fd, True)
        from rootless.runtime import idlewait
        polls = _memfd("rootless-keeper-wait", idlewait.pollfds([*watch, sfd], timeout))
        opened.append(polls)
        stdin = os.dup(0)
        os.dup2(polls, 0)  # the program's: its wait list
        os.execve(program, [title or idlewait.NAME, sys.executable, "-I", "-S", "-c", _BOOT.format(path=sys.path),
                            str(state_fd), str(pid1)], os.environ)
    except Exception:  # noqa: BLE001 - whatever stopped the rest (a state that cannot be pickled), it stays awake
        pass
    if stdin >= 0:
        os.dup2(stdin, 0, inheritable=True)
        os.close(stdin)
    for fd in opened:
        os.close(fd)
    for fd in held:
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def resume(state_fd: str, pid1: str = "0") -> None:
    """The keeper's Python again (the idle program's exec): its state back, then its entry. A
    state that cannot be taken back (the code changed under a resting keeper) ends the container."""
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    try:
        fd = int(state_fd)
        data = bytearray()
        while chunk := os.pread(fd, 1 << 20, len(data)):
            data += chunk
        os.close(fd)
        payload = _load(bytes(data))
    except BaseException:
        if int(pid1) > 0:
            os.kill(int(pid1), signal.SIGKILL)
        raise
    for fd in payload["held"]:
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass
    os.close(payload["signals"])  # what is pending stays pending until ``awake``
    from rootless.base import forkconn
    forkconn.title(*payload["title"])
    import importlib
    module, _, name = payload["entry"].partition(":")
    mask = payload["mask"]
    getattr(importlib.import_module(module), name)(
        payload["state"], lambda: signal.pthread_sigmask(signal.SIG_SETMASK, mask))
    os._exit(0)


def nothing_to_log(keeper: int) -> bool:
    """Whether the keeper ``keeper`` rests with nothing in its container's output pipes: what the
    container wrote is in its log already (a keeper rests with no partial line; output wakes it),
    so a ``logs`` need not wake it to ask. Read from outside: the idle program's wait list (its
    stdin), each pipe in it opened through ``/proc`` and asked how much it holds; checked between
    two looks at the program's name (a keeper woken meanwhile is no longer the program). A pty, or
    anything that cannot be read, says no."""
    import fcntl
    import stat
    import struct
    import termios

    from rootless.runtime import idlewait
    try:
        if _name(keeper) != idlewait.NAME:
            return False
        with open(f"/proc/{keeper}/fd/0", "rb") as f:
            waits = f.read(4096)
        waits = waits[16:]  # after the timespec
        for fd, _events, _revents in struct.iter_unpack("<ihh", waits[:len(waits) // 8 * 8]):
            path = f"/proc/{keeper}/fd/{fd}"
            mode = os.stat(path).st_mode
            if stat.S_ISCHR(mode):  # a pty: not to be opened from here
                return False
            if not stat.S_ISFIFO(mode):  # the attach socket, clients, the relay's epoll, the signalfd
                continue
            pipe = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                held = struct.unpack("i", fcntl.ioctl(pipe, termios.FIONREAD, b"\0\0\0\0"))[0]
            finally:
                os.close(pipe)
            if held:
                return False
        return _name(keeper) == idlewait.NAME
    except OSError:
        return False


def _name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def _open_descriptors() -> set[int]:
    out = set()
    for name in os.listdir("/proc/self/fd"):  # the listing's own descriptor is closed by now
        try:
            os.get_inheritable(int(name))
        except OSError:
            continue
        out.add(int(name))
    return out


def _title() -> tuple[str, str]:
    """This process's name and command line, for ``forkconn.title`` after the execs."""
    try:
        with open("/proc/self/comm") as f:
            name = f.read().strip()
        with open("/proc/self/cmdline", "rb") as f:
            text = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "rootless", "rootless keeper"
    return name, text


def _memfd(name: str, data: bytes) -> int:
    from rootless.base.atomic import write_all
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        write_all(fd, data)
    except OSError:
        os.close(fd)
        raise
    return fd


def _dump(payload) -> bytes:
    """``payload`` pickled; a socket in it is kept as its descriptor (open across the execs)."""
    import io
    import pickle
    import select
    import socket

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, socket.socket):
                return ("socket", obj.fileno(), obj.family, obj.type, obj.proto)
            if isinstance(obj, select.epoll):  # its registrations stay with it
                return ("epoll", obj.fileno(), 0, 0, 0)
            return None

    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(payload)
    return buf.getvalue()


def _load(data: bytes):
    import io
    import pickle
    import socket

    made: dict = {}  # one object per descriptor, as before the rest (``sock is self.sock`` holds)

    class _Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            if pid not in made:
                made[pid] = self._make(pid)
            return made[pid]

        def _make(self, pid):
            kind, fd, family, type_, proto = pid
            if kind == "epoll":
                import select
                return select.epoll.fromfd(fd)
            if kind != "socket":
                raise pickle.UnpicklingError(f"unknown object {kind!r}")
            if fd < 0:  # closed before the rest
                sock = socket.socket(family, type_, proto)
                sock.close()
                return sock
            return socket.socket(family, type_, proto, fileno=fd)

    return _Unpickler(io.BytesIO(data)).load()
