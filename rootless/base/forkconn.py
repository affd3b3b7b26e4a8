"""The warm forker's address and requests, the caller's side (``rootless.runtime.forker`` serves them).

Light on purpose: a warm CLI command's client (``rootless.cli.warm``) imports this before anything
else, so it uses ``_socket`` and ``marshal``-ready data, never ``socket.py``, ``array`` or ``pickle``.
One forker serves one *identity* (:func:`identity`); its socket is in the user's private
directory (:func:`socket_path`); :func:`connect` starts one when there is none.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

KEEPER, SESSION = b"keeper", b"session"  # the kinds of request


def enabled() -> bool:
    """Not turned off, and not in a Slurm job: a job's processes end with it, nothing of ours may
    linger on a node."""
    return os.environ.get("ROOTLESS_FORKER") != "0" and not os.environ.get("SLURM_JOB_ID")


def connect(ident: str, server: str, preload: tuple[str, ...] = (), entries: tuple[str, ...] = ()) -> Any:
    """A connection to the forker of ``ident`` (its peer checked to be this user's process in this
    process's namespaces: not one a container put in its place); None when there is none, and
    then one is started (``server``'s ``serve``, importing ``preload`` too, running
    sessions of ``entries``) for the next caller."""
    import _socket
    path = socket_path(ident)
    if path is None:
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        _start(path, server, preload, entries)
        return None
    pid, uid = peer(conn)
    if uid != os.getuid() or not same_namespaces(pid):
        conn.close()
        return None
    return conn


def send(conn: Any, ident: str, kind: bytes, request: bytes, fds: list[int]) -> None:
    """The request: the identity, its kind, then its data (a keeper's pickled, a session's
    marshalled), with ``fds``."""
    import _socket
    head = ident.encode()
    data = len(head).to_bytes(4, "big") + head + kind + b"\n" + request
    conn.settimeout(10)
    conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights(fds))])


def rights(fds: list[int]) -> bytes:
    """``SCM_RIGHTS`` data: the descriptors as C ints (without ``array``, whose import costs 1.5 ms)."""
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def identity() -> str:
    """What a process inherits from the one that forks it and a request cannot carry."""
    parts = [f"{os.getuid()} {os.getgid()} {sorted(os.getgroups())}", sys.executable, code_root(),
             f"{sys.getfilesystemencoding()} {sys.getfilesystemencodeerrors()} {sys.flags.utf8_mode}",
             " ".join(f"{k}={os.environ.get(k, '')}" for k in ("LANG", "LC_ALL", "LC_CTYPE"))]  # stdio's encoding
    for ns in ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup"):
        try:
            parts.append(os.readlink(f"/proc/self/ns/{ns}"))
        except OSError:
            parts.append("-")
    for name in ("cgroup", "limits", "oom_score_adj", "attr/current"):
        parts.append(_read(f"/proc/self/{name}"))
    parts += [line for line in _read("/proc/self/status").splitlines()
              if line.startswith(("Cap", "NoNewPrivs", "Seccomp:", "Cpus_allowed_list", "Mems_allowed_list"))]
    parts.append(str(os.getpriority(os.PRIO_PROCESS, 0)))
    return "\n".join(parts)


def private_dir() -> str:
    """The user's private runtime directory outside a job (``paths.private_runtime_dir``)."""
    return f"/tmp/rootless-run-{os.getuid()}"


def socket_path(ident: str) -> str | None:
    """The forker's socket for ``ident``, in the user's private directory (``/tmp/rootless-run-UID``:
    one for every runtime directory and store); None where that is not this user's alone."""
    import zlib
    base = private_dir()
    try:
        os.mkdir(base, 0o700)
    except OSError:
        pass
    try:
        st = os.lstat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    raw = ident.encode()
    return os.path.join(base, f"forker-{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}.sock")


def peer(conn: Any) -> tuple[int, int]:
    """The connected process's pid and uid (as this process's namespaces see them); -1s if unknown."""
    import _socket
    try:
        cred = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        return -1, -1
    return int.from_bytes(cred[:4], sys.byteorder, signed=True), int.from_bytes(cred[4:8], sys.byteorder)


def same_namespaces(pid: int) -> bool:
    """``pid`` shares this process's user, mount, network and pid namespaces (a container's
    process does not, even one whose uid is the user's: keep-id, a single-uid map); False when
    that cannot be read (a process that is not dumpable)."""
    try:
        return all(os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")
                   for ns in ("user", "mnt", "net", "pid"))
    except OSError:
        return False


def _start(path: str, server: str, preload: tuple[str, ...], entries: tuple[str, ...]) -> None:
    """Start a forker for ``path`` in the background (in a new session, nobody's child)."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        try:
            os.setsid()
            os.chdir("/")  # holds no directory busy; and no module of the caller's directory is imported
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            search = [p for p in sys.path if os.path.isabs(p)]  # what this CLI imports from, no more
            boot = (f"import sys; sys.path[:] = {search!r}; from {server} import serve; "
                    f"serve({path!r}, {tuple(preload)!r}, {tuple(entries)!r})")
            env = {k: v for k, v in os.environ.items()  # its locale, no more: what it forks takes its caller's
                   if k in ("LANG", "LANGUAGE", "ROOTLESS_FORKER_IDLE") or k.startswith("LC_")}
            os.posix_spawn(sys.executable, [sys.executable, "-I", "-c", boot], env)
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def context() -> dict:
    """What a request carries of the caller's process: environment, directory, umask, command line."""
    umask = os.umask(0o22)
    os.umask(umask)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    return {"env": dict(os.environ), "cwd": cwd, "umask": umask, "argv": list(sys.argv)}


def take_context(req: dict, name: str) -> None:
    """In the forked process: the caller's environment, directory, umask and title."""
    os.environ.clear()
    os.environ.update(req["env"])
    os.umask(req["umask"])
    try:
        os.chdir(req["cwd"])
    except OSError:
        os.chdir("/")
    from rootless.base import timing
    timing.FILE = req["env"].get("ROOTLESS_TIMING")
    timing.marks.clear()
    title(name, " ".join(req["argv"]))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return "-"


def code_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def title(name: str, text: str) -> None:
    try:
        import prctl
        prctl.set_name(name)
        prctl.set_proctitle(text)
    except (ImportError, OSError):
        pass
