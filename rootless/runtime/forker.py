"""The warm forker: one process per user and *identity* with the keeper's and the CLI's modules
loaded, from which detached keepers and warm commands are forked (issue 25).

An idle keeper's memory is mostly the interpreter's objects, the same in every keeper: forked by
its CLI, each keeps a private copy once the CLI has exited; forked from the forker, the keepers
share those pages copy-on-write, with it and with each other, for as long as they live. A warm
command (``rootless.cli.warm``) skips the interpreter's start and the imports of its CLI.

- Where and who: ``rootless.base.forkconn`` (the caller's side): one forker per identity (what a
  forked process inherits and a request cannot carry), its socket in the user's private
  directory; both ends check that the peer is the user's process in the same namespaces. Off
  with ``ROOTLESS_FORKER=0`` and in a Slurm job.
- A *keeper* request (:func:`fork_keeper`: a detached start's launcher) carries the keeper's
  channel end, the caller's context and the pickled id mapping and launch plan, whose sockets
  (published ports, bound by the CLI) travel as descriptors. The keepers' own forker (forked
  before the commands' modules were loaded: :func:`_keeper_zygote`) forks twice and answers the
  keeper's pid: the keeper is nobody's child, as one whose CLI has gone; it takes the
  caller's context and goes on as ``userns.fork_into_userns``'s child would (the CLI writes its
  id maps, as ever).
- A *session* request (a warm command) names its entry, one of those the forker's starter named;
  the forker forks its process directly, keeps it in its loop by a pidfd, answers its pid, then
  ``exit N`` or ``signal N``; should the caller's connection close first, it SIGKILLs the
  process, as the caller's own death would have ended it.
- Where there is no forker the caller does the work itself and starts one for the next time (a
  fresh interpreter: nothing of a CLI's caches in it); any refusal or failure before a pid is
  answered is the same. The forker exits after ``IDLE`` seconds without a request and without a
  session running (``ROOTLESS_FORKER_IDLE``), and refuses and leaves when the file of a module it
  loaded has changed.
"""

from __future__ import annotations

import os
import sys

from rootless.base import forkconn as fc
from rootless.base.channel import received_fds

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

IDLE = 60.0
# what a keeper imports (the plan's classes among them): each module imported here is shared
PRELOAD = ("rootless.runtime.child", "rootless.runtime.keeper", "rootless.runtime.logwrite",
           "rootless.runtime.healthmonitor", "rootless.runtime.network", "netstack.relay", "netstack.slirp",
           "netstack.slirp_api", "netstack.clientaddr", "netstack.netlink", "netstack.etcfiles", "netstack.ports",
           "netstack.loopback", "netstack.spec", "rootless.runtime.sharednet", "layers.overlay", "layers.store",
           "pickle", "prctl")
_MAX = 1 << 20  # a request's size (plans are a few kB)
_STEP = "user namespace"

_lock = -1  # the forker's lock: one forker per identity


# ---- the caller's side ----------------------------------------------------------------------
def fork_keeper(mapping, plan) -> tuple[int, object] | None:
    """Have the warm forker fork the keeper of ``plan``: its pid and the parent's end of its
    channel (for ``userns.adopt``); None when there is no forker of this process's identity (one
    is started for the next start) or it did not take the request: the caller forks it itself."""
    if not fc.enabled():
        return None
    ident = fc.identity()
    conn = fc.connect(ident, __name__)
    if conn is None:
        return None
    from rootless.base.channel import Channel
    parent_end, child_end = Channel.pair()
    try:
        request, fds = _pack_keeper(mapping, plan)
        fc.send(conn, ident, fc.KEEPER, request, [child_end.fileno(), *fds])
        reply = conn.recv(64)
    except Exception:  # noqa: BLE001 - unpicklable, refused, gone: the CLI forks it itself
        reply = b""
    finally:
        child_end.close()
        conn.close()
    if not reply.startswith(b"pid "):
        parent_end.close()
        return None
    return int(reply[4:]), parent_end


def _pack_keeper(mapping, plan) -> tuple[bytes, list[int]]:
    """The keeper's request: sockets become indexes into the fds that follow the channel's."""
    import _pickle  # the C pickler, without pickle.py's import
    import io
    import socket

    fds: list[int] = []

    class _Pickler(_pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, socket.socket):
                fds.append(obj.fileno())
                return ("socket", len(fds), obj.family, obj.type, obj.proto)
            return None

    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(dict(fc.context(), mapping=mapping, plan=plan))
    return buf.getvalue(), fds


# ---- the forker -------------------------------------------------------------------------------
class _Sessions:
    """The sessions running, each watched by its process's pidfd and its caller's connection."""

    def __init__(self) -> None:
        import select
        self.poll = select.poll()
        self.by_pidfd: dict[int, tuple[Any, int]] = {}  # pidfd -> (connection, pid)
        self.by_conn: dict[int, int] = {}  # connection's fd -> pidfd

    def add(self, conn, pid: int) -> None:
        import select
        pidfd = os.pidfd_open(pid)
        self.by_pidfd[pidfd] = (conn, pid)
        self.by_conn[conn.fileno()] = pidfd
        self.poll.register(pidfd, select.POLLIN)
        self.poll.register(conn.fileno(), select.POLLIN)

    def fds(self) -> list[int]:
        return [*self.by_pidfd, *self.by_conn]

    def ended(self, pidfd: int) -> None:
        """Its process ended: its status to the caller (``exit N`` or ``signal N``)."""
        conn, pid = self.by_pidfd.pop(pidfd)
        if self.by_conn.pop(conn.fileno(), None) is not None:  # not already gone
            self.poll.unregister(conn.fileno())
        self.poll.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            conn.send(b"signal %d" % -code if code < 0 else b"exit %d" % code)
        except OSError:
            pass
        conn.close()

    def caller_gone(self, conn_fd: int) -> None:
        """Its caller died: so does it, as a CLI's own work would have (its status then goes nowhere)."""
        pidfd = self.by_conn.pop(conn_fd)
        self.poll.unregister(conn_fd)
        try:
            os.kill(self.by_pidfd[pidfd][1], 9)
        except ProcessLookupError:
            pass


def serve(path: str, preload: tuple[str, ...] = (), entries: tuple[str, ...] = ()) -> None:
    """Preload, then fork keepers and sessions for requests until ``IDLE`` seconds pass without one
    and without a session running."""
    import fcntl
    import gc
    import importlib
    import select
    import socket

    global _lock
    _lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another forker of this identity runs or starts
    fc.title("rootless-forker", f"rootless forker {path}")
    ident = fc.identity()
    zygote = None
    for names in (PRELOAD, preload):
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # imported by the process that needs it (python-prctl's absence is said there)
        gc.collect()
        gc.freeze()  # the collector never writes to what the forked processes share
        if names is PRELOAD:  # the keepers' own forker, before the commands' modules
            zygote = _keeper_zygote(path)
    stamp = _stamp()
    idle = float(os.environ.get("ROOTLESS_FORKER_IDLE") or IDLE)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    srv.bind(path)
    srv.listen(64)
    mine = os.stat(path).st_ino
    sessions = _Sessions()
    sessions.poll.register(srv.fileno(), select.POLLIN)
    listening = True
    try:
        while listening or sessions.by_pidfd:
            events = sessions.poll.poll(None if sessions.by_pidfd else idle * 1000)
            if not events:
                return
            for fd, _ in events:
                if fd in sessions.by_pidfd:
                    sessions.ended(fd)
                elif fd in sessions.by_conn:
                    sessions.caller_gone(fd)
                elif fd == srv.fileno() and listening and not _accept(srv, ident, stamp, sessions, entries, zygote):
                    listening = False  # its code changed: no more requests; the sessions end first
                    sessions.poll.unregister(srv.fileno())
                    _unlink(path, mine)
    finally:
        _unlink(path, mine)


def _unlink(path: str, mine: int) -> None:
    try:
        if os.stat(path).st_ino == mine:
            os.unlink(path)
    except OSError:
        pass


def _accept(srv, ident: str, stamp: dict[str, int], sessions: _Sessions, entries: tuple[str, ...] = (),
            zygote=None) -> bool:
    """One request; False when the forker must go (its code changed)."""
    import socket
    try:
        conn, _ = srv.accept()
    except OSError:
        return True
    conn.settimeout(10)
    pid, uid = fc.peer(conn)
    try:
        data, anc, _flags, _ = conn.recvmsg(_MAX, socket.CMSG_SPACE(64 * 4), socket.MSG_CMSG_CLOEXEC)
    except OSError:
        conn.close()
        return True
    fds = received_fds(anc)
    session = False
    try:
        # the user's own processes, on this side of every namespace: a container's process (its
        # root the user, with keep-id or a single-uid map, and the forker's directory bound in)
        # could otherwise have the user's commands run, or a plan of its own unpickled, out here
        if uid != os.getuid() or not fc.same_namespaces(pid):
            conn.send(b"no: not this user's, or not from here")
            return True
        n = int.from_bytes(data[:4], "big")
        kind, _, request = data[4 + n:].partition(b"\n")
        if data[4:4 + n] != ident.encode() or not fds or kind not in (fc.KEEPER, fc.SESSION):
            conn.send(b"no: identity")
            return True
        if kind == fc.SESSION and not entries:  # started for keepers only: the next caller starts one for both
            conn.send(b"no: no session entry")
            return False
        if _stamp() != stamp:
            conn.send(b"no: the code changed")
            return False
        held = [srv.fileno(), _lock, *sessions.fds(), *([zygote.fileno()] if zygote is not None else [])]
        if kind == fc.KEEPER and zygote is not None:  # the caller's connection too: it answers
            zygote.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fc.rights([conn.fileno(), *fds]))])
        elif kind == fc.KEEPER:
            _fork_keeper(conn, held, request, fds)
        else:
            pid = os.fork()
            if pid == 0:
                _session(conn, held, request, fds, entries)
            conn.send(b"pid %d" % pid)
            sessions.add(conn, pid)
            session = True
        return True
    except OSError:
        return True
    finally:
        for fd in fds:
            os.close(fd)
        if not session:
            conn.close()


def _keeper_zygote(path: str):
    """Fork the keepers' own forker, made before the commands' modules are imported: a keeper then
    inherits the keeper's heap alone (one that outlives the forker keeps all it inherited). It gets
    the keeper requests (with their callers' connections) over a socket pair, and leaves when the
    forker's end closes. The forker's end, or None if it could not be made (keepers are forked by
    the forker then)."""
    import socket
    try:
        mine, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:
        try:
            mine.close()
            os.close(_lock)
            fc.title("rootless-forker", f"rootless forker keepers {path}")
            while True:
                data, anc, _flags, _ = its.recvmsg(_MAX, socket.CMSG_SPACE(64 * 4), socket.MSG_CMSG_CLOEXEC)
                fds = received_fds(anc)
                if not data or not fds:
                    break
                conn = socket.socket(fileno=fds[0])
                try:
                    _fork_keeper(conn, [its.fileno()], data, fds[1:])
                except OSError:
                    pass
                finally:
                    conn.close()
                    for fd in fds[1:]:
                        os.close(fd)
        finally:
            os._exit(0)
    its.close()
    return mine


def _close(fds: list[int]) -> None:
    """In a forked process: the forker's own descriptors (its socket, its lock, the sessions')."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _fork_keeper(conn, held: list[int], request: bytes, fds: list[int]) -> None:
    """Fork twice: the middle process forks the keeper (nobody's child once it exits) and answers its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            _close(held)  # the lock among them: a keeper must not keep the next forker from starting
            child = os.fork()
            if child == 0:
                conn.close()
                _keeper(request, fds)
            conn.send(b"pid %d" % child)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _keeper(payload: bytes, fds: list[int]) -> None:
    """In the keeper: take the caller's context, then go on as ``fork_into_userns``'s child."""
    import socket

    from rootless.base import userns
    from rootless.base.channel import Channel
    ch = Channel(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fds[0]))
    try:
        req = _unpack(payload, fds)
        fc.take_context(req, "rootless")
        mapping, plan = req["mapping"], req["plan"]
    except BaseException as e:  # noqa: BLE001 - it goes back to the CLI
        ch.send_error(e, "the warm forker")
        os._exit(125)

    def enter(c: Channel) -> int | None:
        from rootless.runtime import child, sharednet
        prelude = sharednet.prelude(plan.net, mapping)
        userns.become_root(c, mapping, prelude() if prelude is not None else None)
        return child.sandbox(plan, c)

    userns.child_main(enter, ch, _STEP)


def _session(conn, held: list[int], payload: bytes, fds: list[int], entries: tuple[str, ...]) -> None:
    """In a session's process (the forker's child, which reports its end): the request's entry,
    ``module:function``, one of those its starter named (``entries``), given the request
    (marshalled plain data) and the fds."""
    import importlib
    import marshal
    code = 125
    try:
        conn.close()
        _close(held)
        req = marshal.loads(payload)
        if req["entry"] not in entries:
            return
        module, _, name = req["entry"].partition(":")
        code = getattr(importlib.import_module(module), name)(req, fds) or 0
    finally:
        os._exit(code)


def _unpack(payload: bytes, fds: list[int]) -> dict:
    import io
    import pickle
    import socket

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
    root = os.path.join(fc.code_root(), "")
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(root):
            try:
                out[path] = os.stat(path).st_mtime_ns
            except OSError:
                out[path] = -1
    return out


