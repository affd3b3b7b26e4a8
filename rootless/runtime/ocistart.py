"""What the keeper and PID 1 do for a container of the OCI runtime face (``rootless oci``)
beyond ``run``'s, from the plan's :class:`~rootless.runtime.ocispec.OciProcess`: the wait for
``start`` (``created``), the console socket, the rlimits, umask and OOM score (:func:`prepare`,
which ``run``'s ``--ulimit`` and ``--oom-score-adj`` go through too; the sysctls of both faces:
``runtime.procsettings``)."""

from __future__ import annotations

import os
import resource
import select
import signal
import socket

from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.runtime.launchplan import LaunchPlan
    from rootless.runtime.ocispec import OciProcess

TIOCGPTN = 0x80045430  # the pty's number (not in Python's termios)
# the signals a created container (PID 1 waiting for ``start``) ends on, as runc's would
_ENDING = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGALRM, signal.SIGPIPE)


def make_fifo(path: str) -> None:
    os.mkfifo(path, 0o600)


def say_ready(gate: int) -> None:
    """PID 1: set up, its command found; now it waits for ``start`` (``await_start``)."""
    os.write(gate, b"r")


def _await_ready(gate: int, pidfd: int) -> bool:
    """The keeper: until PID 1 says it is ready (True) or ends, having failed (its error went to ``create``)."""
    while True:
        try:
            ready, _, _ = select.select([gate, pidfd], [], [])
        except InterruptedError:
            continue
        if gate in ready:
            try:
                return os.read(gate, 1) == b"r"
            except OSError:
                return False
        return False


def await_start(plan: LaunchPlan, pid: int, keeper_start: str, tell: Callable[..., None], gate: int) -> bool:
    """The keeper: once PID 1 is set up and waiting (``say_ready`` on the ``gate``, a socket), record
    ``created``, say so to ``create``, then wait for ``start`` (a byte in the fifo) or the end of PID 1
    (failed, or killed or deleted meanwhile): True if started."""
    from rootless.runtime import state
    assert plan.oci is not None
    fifo = os.open(plan.oci.start_fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)  # never EOF while we hold it
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        os.close(fifo)
        return False
    try:
        if not _await_ready(gate, pidfd):
            return False
        state.update_state(plan.paths, plan.spec.id, status="created", pid=pid,
                           pid_start=state.pid_start_time(pid, zombie_ok=True), keeper=os.getpid(),
                           keeper_start=keeper_start)
        tell("created", pid=pid)
        while True:
            try:
                ready, _, _ = select.select([fifo, pidfd], [], [])
            except InterruptedError:
                continue
            if pidfd in ready:
                return False
            if fifo in ready:
                try:
                    if os.read(fifo, 1):
                        return True
                except BlockingIOError:
                    continue
    finally:
        os.close(pidfd)
        os.close(fifo)
        try:
            os.unlink(plan.oci.start_fifo)
        except OSError:
            pass


def signal_start(path: str) -> None:
    """``start``'s side: the byte the keeper waits for."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RootlessError("cannot start a container that has already been started or has stopped") from None
    except OSError as e:  # ENXIO: no keeper holds it any more
        raise RootlessError(f"cannot start the container: its keeper is gone ({e.strerror})",
                            "delete it and create it again") from None
    try:
        os.write(fd, b"s")
    finally:
        os.close(fd)


def send_console(path: str, master: int) -> None:
    """The pty master to the caller's console socket (SCM_RIGHTS, with the pty's name as runc sends)."""
    import fcntl
    import struct
    try:
        name = f"/dev/pts/{struct.unpack('I', fcntl.ioctl(master, TIOCGPTN, bytes(4)))[0]}"
    except (OSError, AttributeError):
        name = "/dev/ptmx"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        socket.send_fds(sock, [name.encode()], [master])
    except OSError as e:
        raise RootlessError(f"cannot send the terminal to the console socket {path}: {e.strerror}",
                            "give --console-socket the path of a listening unix socket") from None
    finally:
        sock.close()


def end_on_signals() -> None:
    """PID 1 while it waits for ``start``: the usual signals end it (exec resets them)."""
    for sig in _ENDING:
        signal.signal(sig, lambda s, _f: os._exit(128 + s))


def _limit(value: int) -> int:
    return resource.RLIM_INFINITY if value >= 2 ** 63 else value


def prepare(proc: OciProcess) -> None:
    """PID 1 just before it takes its identity: rlimits, OOM score, umask."""
    for kind, soft, hard in proc.rlimits:
        try:
            resource.setrlimit(kind, (_limit(soft), _limit(hard)))
        except (OSError, ValueError) as e:
            name = next((n for n in dir(resource) if n.startswith("RLIMIT_") and getattr(resource, n) == kind), kind)
            raise RootlessError(f"cannot set the rlimit {name} to {soft}/{hard}: {e}",
                                "a rootless process cannot raise a hard limit above its own: lower it") from None
    if proc.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc.oom_score_adj))
        except OSError as e:
            raise RootlessError(f"cannot set the OOM score adjustment {proc.oom_score_adj}: {e.strerror}",
                                "a rootless process can only raise its OOM score") from None
    if proc.umask is not None:
        os.umask(proc.umask)
