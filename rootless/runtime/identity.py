"""A process's last steps before its command, inside the container's root: the user's identity,
capabilities, seccomp, the working directory, a terminal of the container's own devpts, and the
exec itself. Shared by the container's PID 1 (``runtime.child.container``) and ``exec``
(``runtime.execute``); ``Step`` names the step in progress for the error both send back."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import termios

from rootless.base import syscalls
from rootless.base.atomic import read_text
from rootless.base.channel import Channel
from rootless.base.errors import CommandNotExecutable, CommandNotFound, RootlessError
from rootless.base.seccomp import load_bpf  # imported now: the container's root replaces the host's
from rootless.runtime import users
from rootless.runtime.security import (  # every other capability leaves the bounding set
    ALL_CAPS,
    DEFAULT_CAPS,
)


class Step:
    """Names the step in progress so a failure says where it happened."""

    name = "container setup"

    @classmethod
    def at(cls, name: str) -> None:
        cls.name = name


def take_identity(user_spec: str, env_list, workdir: str, single_uid: bool, ch: Channel,
                  no_new_privs: bool = False, caps=None, seccomp: bytes | None = None,
                  group_add: tuple[str, ...] = (), ambient: tuple[str, ...] = ()) -> dict[str, str]:
    """Inside the container's root: resolve the user in its /etc/passwd and /etc/group, keep
    Docker's default capabilities only, set no_new_privs (unless told not to: a build's RUN
    steps run setuid programs, such as ``sudo``, as Docker's do), become the user, enter
    ``workdir``. The process environment (with HOME from passwd unless set). ``group_add``
    (``--group-add``): more supplementary groups, names in /etc/group or gids. ``ambient`` (the
    OCI face's, within ``caps``): capabilities a user other than root keeps through its exec."""
    Step.at("resolve the user")
    user = users.resolve(user_spec, read_text("/etc/passwd"), read_text("/etc/group"))
    if group_add:
        user = users.with_groups(user, group_add, read_text("/etc/group"))
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env_list)
    env.setdefault("HOME", user.home)

    Step.at("capabilities")
    wanted = set(DEFAULT_CAPS if caps is None else caps)
    keep = {n for n, c in enumerate(ALL_CAPS) if c in wanted}  # ALL_CAPS is in the kernel's numbering
    last = int(read_text("/proc/sys/kernel/cap_last_cap") or 40)
    for cap in range(last + 1):
        if cap not in keep:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)
            except OSError:
                pass
    if no_new_privs:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp:  # the profile's BPF program; still root of the user namespace: no no_new_privs needed
        Step.at("seccomp")
        load_bpf(seccomp)

    Step.at("set the user's identity")
    only = (os.getuid(), os.getgid())  # a single-uid map's one user: root, or yours with keep-id
    if single_uid and (user.uid, user.gid) != only:
        who = "root of the container" if only == (0, 0) else f"uid {only[0]}"
        ch.send("warning", message=f"user {user_spec!r} (uid {user.uid}) does not exist in a single-uid user "
                f"namespace: running as {who} instead (configure /etc/subuid to fix)")
        user = users.User(only[0], only[1], (only[1],), user.home)
    if single_uid and group_add:
        ch.send("warning", message="--group-add needs subordinate ids (/etc/subgid): a single-uid user namespace "
                "cannot set supplementary groups, the container runs without them")
    ambient_mask = sum(1 << ALL_CAPS.index(c) for c in ambient) if user.uid != 0 else 0
    try:
        if not single_uid:
            os.setgroups(list(user.groups))
        os.setresgid(user.gid, user.gid, user.gid)
        if ambient_mask:
            syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)  # the permitted set outlives the uid switch
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        groups = f", groups {' '.join(map(str, user.groups))}" if group_add else ""
        raise RootlessError(f"user {user_spec!r} (uid {user.uid}, gid {user.gid}{groups}) is not mapped in the user "
                            "namespace", "use a user whose ids are below the size of your /etc/subuid range") from None
    if ambient_mask:
        _raise_ambient(ambient_mask)
    try:
        os.chdir(workdir)
    except OSError as e:
        raise CommandNotExecutable(f"cannot enter the working directory {workdir}: {e.strerror}") from None
    return env


def _raise_ambient(mask: int) -> None:
    """After the switch to a user other than root (with PR_SET_KEEPCAPS): only these capabilities
    stay, permitted and inheritable, and go in the ambient set, which its exec keeps."""
    Step.at("ambient capabilities")
    syscalls.capset(mask, mask, mask)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
    for cap in range(mask.bit_length()):
        if mask >> cap & 1:
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)


def open_terminal(winsize: bytes | None) -> int:
    """A pty from the container's own devpts (/dev/ptmx) as this session's terminal and stdio;
    the master, for the caller to hand over and close."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    if winsize:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    return master


def _reset_signals() -> None:
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def exec_command(exe: str, argv: tuple[str, ...], env: dict[str, str]) -> None:
    _reset_signals()
    _cloexec_beyond_stdio()
    try:
        os.execve(exe, list(argv), env)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise CommandNotFound(f'exec "{argv[0]}": no such file or directory (missing interpreter?)') from None
        if e.errno == errno.ENOEXEC:
            raise CommandNotExecutable(f'exec "{argv[0]}": exec format error') from None
        raise CommandNotExecutable(f'exec "{argv[0]}": {e.strerror}') from None


def _cloexec_beyond_stdio() -> None:
    """No descriptor but stdin, stdout and stderr crosses into the container's command: not the
    CLI's (a shell's open files, a CI runner's pipes), not this runtime's. Marked close-on-exec
    rather than closed, so that a failed exec can still be reported on the channel."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
            except OSError:
                pass  # the directory listing's own descriptor, closed since
