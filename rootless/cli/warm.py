"""Warm commands: a CLI command run by a fork of the warm forker, whose interpreter has the
command path's modules loaded already (issue 25: a ``run`` spent 20 of its 56 ms importing them).

The client (:func:`client`, the first thing ``main`` does) hands the command line, the
environment, directory, umask and its stdin, stdout and stderr to the forker of its identity
(``rootless.runtime.forker``, reached through ``rootless.base.forkconn``), forwards the signals
it gets to the forked process, and exits as that process did (the same code, or the same
signal). The forked process takes the caller's context and stdio (:func:`take_caller`) and runs
``main`` as the CLI would (``main.warm_session``). Where that cannot be (no forker yet: one is
started for the next command; turned off, in a Slurm job, a verb not listed, stdin a terminal, a
refused request) the command runs in the CLI itself, as before.

Only the short, frequent verbs are warm. Not with a terminal on stdin: a terminal's job control
(a background job reading it, the foreground process group) concerns the CLI's own process, which
the forked one is not; interactive use gains nothing measurable from 20 ms.
"""

from __future__ import annotations

import os
import sys

VERBS = frozenset({"run", "create", "start", "stop", "restart", "kill", "rm", "exec", "ps", "inspect", "port",
                   "top", "images", "rmi", "tag", "pause", "unpause", "rename", "version", "volume", "network",
                   "container", "image"})
# what a command imports: loaded by the forker, shared by every command it forks
PRELOAD = ("rootless.cli.main", "rootless.cli.fast", "rootless.cli.commands", "rootless.cli.commands.containers",
           "rootless.cli.commands.images", "rootless.cli.render", "rootless.cli.views", "rootless.engine.context",
           "rootless.engine.containers", "rootless.engine.images", "rootless.engine.attach",
           "rootless.engine.dockerview", "rootless.engine.volumes", "rootless.runtime.launcher",
           "rootless.runtime.foreground", "rootless.runtime.execute", "rootless.runtime.records", "layers.reference",
           "rootless.engine.networks", "rootless.engine.containerlist", "rootless.runtime.logs",
           "rootless.runtime.seccompprofile", "rootless.runtime.pause", "rootless.runtime.procsettings",
           "rootless.runtime.cgroups", "rootless.cli.commands.volumes", "rootless.cli.commands.networks",
           "netstack.links", "ipaddress", "binascii", "hashlib", "_strptime", "tomllib", "rootless.base.forkconn",
           __name__)
ENTRY = "rootless.cli.main:warm_session"  # what the forker runs for a warm command
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")


def client(argv: list[str]) -> int | None:
    """Run ``argv`` in a fork of the warm forker: its exit code (its signal is raised here); None
    when it runs here instead."""
    if _verb(argv) not in VERBS or not _stdio_open() or _tty_stdin():
        return None
    from rootless.base import forkconn
    if not forkconn.enabled():
        return None
    ident = forkconn.identity()
    conn = forkconn.connect(ident, "rootless.runtime.forker", PRELOAD, (ENTRY,))
    if conn is None:
        return None
    try:
        import marshal  # built in: plain data, no import (pickle's costs 2 ms)
        request = marshal.dumps(dict(forkconn.context(), entry=ENTRY, args=argv,
                                     ignored=_ignored()))
        forkconn.send(conn, ident, forkconn.SESSION, request, [0, 1, 2])
        reply = conn.recv(64)
    except OSError:  # the forker gone, or busy past the timeout: here, then
        conn.close()
        return None
    if not reply.startswith(b"pid "):
        conn.close()
        return None
    return _follow(conn, int(reply[4:]))


def _verb(argv: list[str]) -> str:
    """The command's first word, past the global options (``--root DIR``, ``--debug``)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--root" else 1
    return argv[i] if i < len(argv) else ""


def _stdio_open() -> bool:
    """All of stdin, stdout and stderr open (else the CLI's own descriptors would be taken for them:
    the CLI itself stands /dev/null in for a closed one)."""
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def _tty_stdin() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def _ignored() -> list[int]:
    """The signals this process ignores (inherited: a background job's SIGINT, nohup's SIGHUP)."""
    import _signal
    out = []
    for signum in range(1, _signal.NSIG):
        try:
            if _signal.getsignal(signum) == _signal.SIG_IGN:
                out.append(signum)
        except (OSError, ValueError):
            pass
    return out


def _follow(conn, pid: int) -> int:
    """Forward signals to the session's process until it ends; its exit code, or its signal raised."""
    import _signal

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in _FORWARDED:
        signum = getattr(_signal, name)
        if _signal.getsignal(signum) != _signal.SIG_IGN:  # ignored here: ignored there too
            _signal.signal(signum, forward)
    conn.settimeout(None)
    while True:
        try:
            end = conn.recv(64)
            break
        except InterruptedError:
            continue
    conn.close()
    word, _, value = end.partition(b" ")
    if word == b"signal":
        signum = int(value)
        _signal.signal(signum, _signal.SIG_DFL)
        _signal.raise_signal(signum)
        return 128 + signum
    if word != b"exit":
        print("rootless: error: the command's process ended without a status (the warm forker was killed?)",
              file=sys.stderr)
        return 125
    return int(value)


def take_caller(req: dict, fds: list[int]) -> None:
    """In the forked process: the caller's stdio, context and ignored signals, and Python's stdio
    objects anew over them (``main.warm_session`` then runs the command)."""
    from rootless.base import forkconn
    for n, fd in enumerate(fds[:3]):
        os.dup2(fd, n)
    for fd in fds:  # nothing it forks (a keeper) may hold the caller's stdio but through 0, 1, 2
        if fd > 2:
            os.close(fd)
    forkconn.take_context(req, "rootless")
    import signal
    for signum in req["ignored"]:
        signal.signal(signum, signal.SIG_IGN)
    sys.argv = req["argv"]
    _stdio(req["env"])


def _stdio(env: dict) -> None:
    """Python's stdio objects anew over the caller's descriptors, as its interpreter made them:
    line-buffered on a terminal, unbuffered with PYTHONUNBUFFERED, the encoding it would have."""
    import io
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding, _, errors = env.get("PYTHONIOENCODING", "").partition(":")
    for n, name in enumerate(("stdin", "stdout", "stderr")):
        old = getattr(sys, name)
        tty = _isatty(n)
        raw = io.FileIO(n, "rb" if n == 0 else "wb", closefd=False)
        buffered = io.BufferedReader(raw) if n == 0 else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(buffered, encoding=encoding or old.encoding,
                                  errors=errors or ("backslashreplace" if n == 2 else old.errors),
                                  line_buffering=n == 2 or tty or unbuffered, write_through=unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
