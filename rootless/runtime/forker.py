"""The warm forker: detached containers' keepers forked from one process, so that they share its pages.

An idle keeper's memory is mostly the interpreter's objects (its modules' code, classes and
constants), the same in every keeper. Forked by each CLI, every keeper holds a private copy once
its CLI has exited (7-8 MB each). Forked from one warm process instead, the keepers share those
pages copy-on-write, with it and with each other, for as long as they live, whether or not the
forker still does (issue 25's "fork it from a warm parent").

- Who: a detached start (``run -d``, ``start``, a restart) of a CLI without a Slurm job (a job's
  processes end with it; nothing of ours may linger on a node) and not ``ROOTLESS_FORKER=0``.
  The API server forks its keepers itself: they share its pages already.
- Where: one forker per *identity*, the part of a process's state a keeper inherits from
  whoever forks it and that a request cannot carry: ids and groups, namespaces, cgroup, resource
  limits, capabilities and security labels, the interpreter and the code's place
  (:func:`identity`). Its socket is ``forker-KEY.sock`` in the user's runtime directory
  (``$XDG_RUNTIME_DIR/rootless``, else the private one); the forker answers only its own uid and a
  request of its identity.
- A request (``SOCK_SEQPACKET``) carries the keeper's channel end, the caller's environment,
  working directory, umask and command line, and the pickled id mapping and launch plan, whose
  sockets (the published ports, bound by the CLI) travel as descriptors. The forker forks twice
  and answers the keeper's pid: the keeper is nobody's child, as one whose CLI has gone. It takes
  the caller's environment, directory, umask and title, unpickles the plan and goes on as
  :func:`rootless.base.userns.fork_into_userns`'s child would; the CLI writes its id maps, as ever.
- When there is no forker the CLI forks the keeper itself and starts one for the next start (a
  fresh interpreter, nothing of a CLI's caches in it). Any failure before the keeper's pid is
  answered is the same: the CLI forks it itself. The forker exits after ``IDLE`` seconds without a
  request (``ROOTLESS_FORKER_IDLE``), and at once when a file of the code it runs has changed.
"""

from __future__ import annotations

import os
import socket
import stat
import sys

IDLE = 60.0
# what a keeper imports (the plan's classes among them): each module imported here is shared
PRELOAD = ("rootless.runtime.child", "rootless.runtime.keeper", "rootless.runtime.logwrite",
           "rootless.runtime.healthmonitor", "rootless.runtime.network", "netstack.relay", "netstack.slirp",
           "netstack.slirp_api", "netstack.clientaddr", "netstack.netlink", "netstack.etcfiles", "netstack.ports",
           "netstack.loopback", "netstack.spec", "layers.overlay", "layers.store", "pickle", "prctl")
_MAX = 1 << 20  # a request's size (plans are a few kB)
_STEP = "user namespace"

_lock = -1  # the forker's lock: one forker per identity


# ---- the caller's side ------------------------------------------------------------------------
def fork_keeper(mapping, plan) -> tuple[int, object] | None:
    """Have the warm forker fork the keeper of ``plan``: its pid and the parent's end of its
    channel (for ``userns.adopt``); None when there is no forker of this process's identity (one
    is started for the next start) or it did not take the request: the caller forks it itself."""
    if os.environ.get("ROOTLESS_FORKER") == "0" or os.environ.get("SLURM_JOB_ID"):  # see above
        return None
    ident = identity()
    path = socket_path(ident)
    if path is None:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        _start(path)
        return None
    if _peer_uid(conn) != os.getuid():
        conn.close()
        return None
    from rootless.base.channel import Channel
    parent_end, child_end = Channel.pair()
    try:
        with conn:
            data, fds = _pack(ident, mapping, plan)
            conn.settimeout(10)
            conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _ints([child_end.fileno(), *fds]))])
            reply = conn.recv(64)
    except Exception:  # noqa: BLE001 - unpicklable, refused, gone: the CLI forks it itself
        reply = b""
    finally:
        child_end.close()
    if not reply.startswith(b"pid "):
        parent_end.close()
        return None
    return int(reply[4:]), parent_end


def identity() -> str:
    """What a keeper inherits from the process that forks it and a request cannot carry."""
    parts = [f"{os.getuid()} {os.getgid()} {sorted(os.getgroups())}", sys.executable, _code_root(),
             f"{sys.getfilesystemencoding()} {sys.getfilesystemencodeerrors()} {sys.flags.utf8_mode}"]
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


def socket_path(ident: str) -> str | None:
    """The forker's socket for ``ident``, in the user's private directory (``/tmp/rootless-run-UID``:
    one for every runtime directory and store); None where that is not this user's alone."""
    import zlib

    from rootless.base import paths
    base = paths.private_runtime_dir({})
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


def _peer_uid(conn: socket.socket) -> int:
    import struct
    try:
        return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
    except OSError:
        return -1


def _start(path: str) -> None:
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
            boot = f"import sys; sys.path[:] = {search!r}; from {__name__} import serve; serve({path!r})"
            env = {k: v for k, v in os.environ.items()  # its locale, no more: a keeper takes its caller's
                   if k in ("PATH", "HOME", "LANG", "LANGUAGE", "ROOTLESS_FORKER_IDLE") or k.startswith("LC_")}
            os.posix_spawn(sys.executable, [sys.executable, "-I", "-c", boot], env)
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _pack(ident: str, mapping, plan) -> tuple[bytes, list[int]]:
    """The request: the identity, then the pickled rest; sockets become indexes into the fds that
    follow the channel's."""
    import _pickle  # the C pickler, without pickle.py's import
    import io

    fds: list[int] = []

    class _Pickler(_pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, socket.socket):
                fds.append(obj.fileno())
                return ("socket", len(fds), obj.family, obj.type, obj.proto)
            return None

    umask = os.umask(0o22)
    os.umask(umask)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(
        {"env": dict(os.environ), "cwd": cwd, "umask": umask, "argv": sys.argv, "mapping": mapping, "plan": plan})
    head = ident.encode()
    return len(head).to_bytes(4, "big") + head + buf.getvalue(), fds


def _ints(fds: list[int]):
    import array
    return array.array("i", fds)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return "-"


def _code_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- the forker -------------------------------------------------------------------------------
def serve(path: str) -> None:
    """Preload, then fork keepers for requests until ``IDLE`` seconds pass without one."""
    import fcntl
    import gc
    import importlib

    global _lock
    _lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another forker of this identity runs or starts
    _title("rootless-forker", f"rootless forker {path}")
    ident = identity()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # imported by the keeper that needs it (python-prctl's absence is said there)
    stamp = _stamp()
    gc.collect()
    gc.freeze()  # the collector never writes to what the keepers share
    idle = float(os.environ.get("ROOTLESS_FORKER_IDLE") or IDLE)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    srv.bind(path)
    srv.listen(64)
    srv.settimeout(idle)
    mine = os.stat(path).st_ino
    try:
        while True:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                return
            with conn:
                if not _serve_one(conn, srv, ident, stamp):
                    return
    finally:
        try:
            if os.stat(path).st_ino == mine:
                os.unlink(path)
        except OSError:
            pass


def _serve_one(conn: socket.socket, srv: socket.socket, ident: str, stamp: dict[str, int]) -> bool:
    """One request; False when the forker must go (its code changed)."""
    conn.settimeout(10)
    uid = _peer_uid(conn)
    try:
        data, anc, _flags, _ = conn.recvmsg(_MAX, socket.CMSG_SPACE(64 * 4), socket.MSG_CMSG_CLOEXEC)
    except OSError:
        return True
    fds = _received(anc)
    try:
        if uid != os.getuid():
            return True
        n = int.from_bytes(data[:4], "big")
        if data[4:4 + n] != ident.encode() or not fds:
            conn.send(b"no: identity")
            return True
        if _stamp() != stamp:
            conn.send(b"no: the code changed")
            return False
        _fork(conn, srv, data[4 + n:], fds)
        return True
    except OSError:
        return True
    finally:
        for fd in fds:
            os.close(fd)


def _received(anc) -> list[int]:
    import array
    fds = array.array("i")
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    return list(fds)


def _fork(conn: socket.socket, srv: socket.socket, payload: bytes, fds: list[int]) -> None:
    """Fork twice: the middle process answers the keeper's pid and exits at once."""
    pid = os.fork()
    if pid == 0:
        try:
            srv.close()
            os.close(_lock)  # a keeper must not keep the next forker from starting
            keeper = os.fork()
            if keeper == 0:
                conn.close()
                _keeper(payload, fds)
            conn.send(b"pid %d" % keeper)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _keeper(payload: bytes, fds: list[int]) -> None:
    """In the keeper: take the caller's context, then go on as ``fork_into_userns``'s child."""
    from rootless.base import userns
    from rootless.base.channel import Channel
    ch = Channel(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fds[0]))
    try:
        req = _unpack(payload, fds)
        os.environ.clear()
        os.environ.update(req["env"])
        os.umask(req["umask"])
        try:
            os.chdir(req["cwd"])
        except OSError:
            os.chdir("/")
        from rootless.base import timing
        timing.FILE = req["env"].get("ROOTLESS_TIMING")
        _title("rootless", " ".join(req["argv"]))
        mapping, plan = req["mapping"], req["plan"]
    except BaseException as e:  # noqa: BLE001 - it goes back to the CLI
        ch.send_error(e, "the warm forker")
        os._exit(125)

    def enter(c: Channel) -> int | None:
        from rootless.runtime import child
        userns.become_root(c, mapping)
        return child.sandbox(plan, c)

    userns.child_main(enter, ch, _STEP)


def _unpack(payload: bytes, fds: list[int]) -> dict:
    import io
    import pickle

    class _Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            kind, index, family, type_, proto = pid
            if kind != "socket":
                raise pickle.UnpicklingError(f"unknown object {kind!r}")
            return socket.socket(family, type_, proto, fileno=fds[index])

    return _Unpickler(io.BytesIO(payload)).load()


def _stamp() -> dict[str, int]:
    """The files of the code this forker has loaded, and their modification times: a keeper it
    forks must not run a module older than its file (what it imports later comes from the files,
    as a CLI's later imports do)."""
    out: dict[str, int] = {}
    root = os.path.join(_code_root(), "")
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(root):
            try:
                out[path] = os.stat(path).st_mtime_ns
            except OSError:
                out[path] = -1
    return out


def _title(name: str, title: str) -> None:
    try:
        import prctl
        prctl.set_name(name)
        prctl.set_proctitle(title)
    except (ImportError, OSError):
        pass
