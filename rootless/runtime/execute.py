"""``rootless exec``: a new process in a running container.

The CLI forks a helper that joins the container's namespaces through
``/proc/PID/ns`` (the user namespace first: it grants the rights to join the
others; then mount, uts, ipc, network, cgroup and pid) and forks the process
itself, which becomes a member of the container's pid namespace, takes the
container's environment and the user's identity, and execs. With ``-t`` its
pty comes from the container's devpts and the CLI relays it; without, its stdio
are pipes the CLI relays (stdin only with ``-i``, else /dev/null): no descriptor
of the caller's terminal, pipes or files goes in, so a process left behind reads
nothing the user types after exec returned.
"""

from __future__ import annotations

import os
import signal

from rootless.base import syscalls, userns
from rootless.base.channel import Channel
from rootless.base.errors import Conflict, RootlessError
from rootless.runtime import child, identity
from rootless.runtime.terminal import FORWARDED

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.runtime import Context
    from rootless.runtime.state import ContainerRecord

# Joined in this order: the user namespace first, pid last (it applies to children only).
NAMESPACES = (("user", syscalls.CLONE_NEWUSER), ("mnt", syscalls.CLONE_NEWNS), ("uts", syscalls.CLONE_NEWUTS),
              ("ipc", syscalls.CLONE_NEWIPC), ("net", syscalls.CLONE_NEWNET), ("cgroup", syscalls.CLONE_NEWCGROUP),
              ("pid", syscalls.CLONE_NEWPID))


def open_namespaces(pid: int, only: tuple[int, ...] | None = None) -> list[tuple[int, int]]:
    """Open the container's namespace files now, so a pid reused later cannot redirect us."""
    fds = []
    own = {name: os.stat(f"/proc/self/ns/{name}").st_ino for name, _ in NAMESPACES}
    try:
        for name, flag in NAMESPACES:
            if only is not None and flag not in only:
                continue
            path = f"/proc/{pid}/ns/{name}"
            if os.stat(path).st_ino == own[name]:
                continue  # shared with us (--network host): nothing to join
            fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag))
    except OSError as e:
        for fd, _ in fds:
            os.close(fd)
        raise RootlessError(f"cannot open the namespaces of the container (pid {pid}): {e.strerror}") from None
    return fds


def join(ns: list[tuple[int, int]]) -> None:
    """Enter the namespaces opened by ``open_namespaces`` (in their order) as root of the first."""
    for fd, flag in ns:
        syscalls.setns(fd, flag)
        os.close(fd)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def run(ctx: Context, rec: ContainerRecord, argv: list[str], env: list[str], user: str | None, workdir: str | None,
        tty: bool, interactive: bool, detach: bool, single_uid: bool, winsize: bytes | None,
        seccomp: bytes | None = None, exec_id: str | None = None) -> int | None:
    """``seccomp``: the container's seccomp program (its profile's), loaded before the exec.
    Warnings (here, and the process's setup's) go to ``ctx.warn``. Docker's exec events: an
    ``exec_create`` unless ``exec_id`` names an instance that said it (the API's), ``exec_start``,
    then ``exec_die`` with its exit code when the process ends, said by the helper (which stays out
    of the container's namespaces: it outlives an ``exec -d``, or a CLI that was killed), and
    ``exec_detach`` when the detach keys leave it running."""
    if rec["state"].get("status") != "running":
        raise Conflict(f"container {rec['id'][:12]} is not running", "start it with `rootless start`",
                       exit_code=1)
    spec = rec["spec"]
    from rootless.runtime import events
    if exec_id is None:
        exec_id = events.new_exec_id()
        events.container(ctx.paths, events.exec_action("exec_create", argv), spec, execID=exec_id)
    events.container(ctx.paths, events.exec_action("exec_start", argv), spec, execID=exec_id)

    def died(code: int) -> None:
        events.container(ctx.paths, "exec_die", spec, execID=exec_id, exitCode=code)

    def detached() -> None:
        events.container(ctx.paths, "exec_detach", spec, execID=exec_id)
    from rootless.runtime.terminal import hold_std_fds
    hold_std_fds()  # first: no descriptor made here may take the number of a closed stdio
    ns = open_namespaces(rec["state"]["pid"])
    from rootless.runtime.spec import merge_env
    full_env = merge_env(list(spec.get("env", [])), env)

    where = rec["state"].get("cgroup")  # the container's limits cover what exec starts too
    rlimits: tuple[tuple[int, int, int], ...] = ()
    if spec.get("ulimits"):  # --ulimit: every exec's too, as Docker's
        from rootless.runtime.procsettings import rlimits as to_rlimits
        rlimits = to_rlimits(spec["ulimits"])
    pipes = _Pipes(interactive) if not (tty or detach) else None

    def helper_main(ch: Channel) -> int:
        if where:
            ch.expect("placed")
        # No descriptor of the caller's terminal or pipes goes in: a process left behind would read
        # what the user types after exec returned. Without -t the process's stdio are pipes that the
        # CLI relays (as Docker does); with -t it gets a pty of its own; `exec -d`'s output goes
        # nowhere, as in Docker.
        if pipes is not None:
            pipes.connect_child()
        else:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
        if detach:  # the caller's session is let go too
            os.setsid()
        return _watched(ch, died, [fd for fd, _ in ns], lambda: _helper(
            ns, ch, argv, full_env, user if user is not None else spec.get("user", ""),
            workdir or spec.get("workdir", "/"), tty, interactive, single_uid, winsize,
            bool(spec.get("no_new_privs")), spec.get("caps"), seccomp,
            () if single_uid else tuple(spec.get("group_add") or ()), rlimits))

    try:
        helper, parent_end = userns.fork_child(helper_main, "exec")
    finally:
        if pipes is not None:
            pipes.connect_parent()
    for fd, _ in ns:
        os.close(fd)
    if where:
        from rootless.runtime import cgroups
        if not cgroups.attach(where, helper):
            ctx.warn("the exec'd process could not join the container's cgroup: its limits do not cover it")
        parent_end.send("placed")
    return _parent(helper, parent_end, tty, interactive, detach, pipes, ctx.warn, detached)


def _watched(ch: Channel, died: Callable[[int], None], ns_fds: list[int], body: Callable[[], int]) -> int:
    """``body`` (the helper that joins the container's namespaces) in a child; this process stays
    outside them, waits for it and says ``died(code)``: nothing in the container can reach it. It
    lets go of the namespaces (``ns_fds``) at once: an exec must not keep a stopped container's alive."""
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            code = body()
        except BaseException as e:  # noqa: BLE001 - back to the caller, as fork_child's child
            ch.send_error(e, "exec")
            code = getattr(e, "exit_code", 125)
        finally:
            os._exit(code)
    for fd in ns_fds:
        os.close(fd)
    for sig in FORWARDED:  # after the fork: an ignored signal would stay ignored in the exec'd process
        signal.signal(sig, lambda _s, _f: None)  # the CLI's signals reach the process, not this waiter
    code = userns.reap(pid)
    died(code)
    return code


class _Pipes:
    """The stdio of an exec'd process without -t: pipes for stdout and stderr (kept apart), and
    for stdin with -i (else /dev/null)."""

    def __init__(self, interactive: bool):
        self.out_r, self.out_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)
        self.in_r, self.in_w = os.pipe2(os.O_CLOEXEC) if interactive else (-1, -1)
        import fcntl

        from rootless.runtime.terminal import F_SETPIPE_SZ, RELAY_CHUNK
        try:  # fewer, larger copies (best effort: a user's pipe quota may refuse it)
            fcntl.fcntl(self.out_w, F_SETPIPE_SZ, RELAY_CHUNK)
        except OSError:
            pass

    def connect_child(self) -> None:
        """In the helper: its stdio (and so the process's) become the pipes' container ends."""
        if self.in_r < 0:
            self.in_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        for fd, target in ((self.in_r, 0), (self.out_w, 1), (self.err_w, 2)):
            os.dup2(fd, target)  # dup2 clears close-on-exec on the copy
        for fd in (self.in_r, self.in_w, self.out_r, self.out_w, self.err_r, self.err_w):
            if fd > 2:
                os.close(fd)

    def connect_parent(self) -> None:
        """In the CLI: only its own ends stay open, so the outputs end when the process's do."""
        for fd in (self.in_r, self.out_w, self.err_w):
            if fd >= 0:
                os.close(fd)
        self.in_r = self.out_w = self.err_w = -1


def _helper(ns, ch: Channel, argv, env, user, workdir, tty, interactive, single_uid, winsize,
            no_new_privs: bool = False, caps=None, seccomp: bytes | None = None,
            group_add: tuple[str, ...] = (), rlimits: tuple[tuple[int, int, int], ...] = ()) -> int:
    """``group_add``: the container's ``--group-add``, added to the exec'd user's groups as Docker
    adds them to every exec (none with a single-uid map: the start said so once); ``rlimits``: the
    container's ``--ulimit`` (resource, soft, hard), which its PID 1 could take."""
    # Everything the process needs is imported now: inside the container's mount namespace this
    # installation's files are out of sight.
    import fcntl  # noqa: F401
    import termios  # noqa: F401

    from rootless.base import proc
    from rootless.runtime import users  # noqa: F401
    if rlimits:
        import resource
        identity.Step.at("the container's rlimits")
        for kind, soft, hard in rlimits:
            resource.setrlimit(kind, (soft, hard))
    identity.Step.at("join the container's namespaces")
    join(ns)
    pid = os.fork()
    if pid == 0:  # in the container's pid namespace now
        code = 125
        try:
            os.setsid()
            _stdio(ch, tty, interactive, winsize)
            full_env = identity.take_identity(user, env, workdir, single_uid, ch, no_new_privs, caps, seccomp,
                                           group_add)
            from rootless.base import proc
            exe = proc.find_executable(argv[0], full_env.get("PATH", ""))
            identity.exec_command(exe, tuple(argv), full_env)
        except BaseException as e:  # noqa: BLE001
            ch.send_error(e, identity.Step.name)
            code = getattr(e, "exit_code", 125)
        finally:
            os._exit(code)
    ch.send("pid", pid=pid)
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _f: child.kill_quietly(pid, s))
    _, status = os.waitpid(pid, 0)
    return userns.exit_code(status)


def _stdio(ch: Channel, tty: bool, interactive: bool, winsize: bytes | None) -> None:
    if tty:
        master = identity.open_terminal(winsize)
        ch.send("tty", fds=[master])
        os.close(master)
    elif not interactive:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


def _parent(helper: int, ch: Channel, tty: bool, interactive: bool, detach: bool,
            pipes: _Pipes | None = None, warn: Callable[[str], None] | None = None,
            detached: Callable[[], None] | None = None) -> int | None:
    from rootless.runtime.foreground import DETACHED, ENDED, Session
    from rootless.runtime.terminal import Forwarder
    fwd = Forwarder()
    fwd.install()
    outputs: dict[int, int] = {}  # our end of a pipe -> where its bytes go (our stdout or stderr)
    stdin_pipe = -1
    if pipes is not None:
        outputs = {pipes.out_r: 1, pipes.err_r: 2}
        stdin_pipe, pipes.in_w = pipes.in_w, -1  # the session's now
    # -it: the end of the input ends the session, as Docker's daemon then closes an exec's terminal
    # output and its CLI returns (0: the process was still running). Our end of the pty closes with
    # it, so the process gets its terminal's hang-up (SIGHUP); Docker's goes on, with nobody to reach it.
    session = Session(ch, fwd, interactive=interactive, eof_ends=tty and interactive, show_pty=True,
                      outputs=outputs, stdin_pipe=stdin_pipe, warn=warn)
    try:
        how = session.run(tty and interactive, lambda _pid: detach)
        if how == DETACHED and detached is not None:
            detached()
        if how != ENDED:
            return None
        code = userns.reap(helper)
    finally:
        fwd.restore()
        ch.close()
        session.close()
    if session.error is not None:
        error = session.error
        raise RootlessError(error["message"], error.get("hint"), error.get("exit_code"))
    return code
