"""``rootless system service``: the Docker Engine API on a Unix socket, no resident daemon.

The listener accepts, checks that the peer is this user (``SO_PEERCRED``), and forks one process
per connection, which serves that connection's requests with the same use cases as the CLI
(``rootless.api.routes``). A process per connection keeps the container side as the CLI has it:
a single-threaded process, which may fork into a user namespace; a stream (attach, logs, events)
is just a process that blocks. With ``--time N`` the listener exits once no connection has been
open for N seconds (0: never), which suits systemd socket activation (``LISTEN_FDS``).

What connections may cost is bounded: at most ``MAX_CONNECTIONS`` processes at once (further
clients wait in the listen backlog until one ends), and a connection that sends nothing while a
request is awaited (between requests, or mid-headers) is closed after ``connection_idle`` seconds
(60, or ``--time`` when shorter); a running request (a stream, a build, a pull) is never idle. An
idle connection counts for ``--time`` from its last request, not from its close.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import stat
import sys
import time

from rootless.base.errors import RootlessError, UsageError

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context

SD_LISTEN_FDS_START = 3
MAX_CONNECTIONS = 64  # processes serving connections at once; more wait in the listen backlog
BACKLOG = 128
CONNECTION_IDLE = 60.0  # seconds a connection may send nothing while a request is awaited
IDLE_EXIT = 3  # a connection's process that closed an idle connection exits with this


def default_uri(paths) -> str:
    """``unix://$XDG_RUNTIME_DIR/rootless/docker.sock`` (beside the runtime root, private to the user)."""
    return "unix://" + os.path.join(os.path.dirname(paths.runroot), "docker.sock")


class Listener:
    """The listening socket, and whether each peer may talk to us."""

    def __init__(self, sock: socket.socket, path: str | None, tcp: bool):
        self.sock = sock
        self.path = path  # a Unix socket we made (removed at the end, if it still is ours)
        self.tcp = tcp
        self.made = None  # (st_dev, st_ino) of the socket file we bound
        self.held: socket.socket | None = None  # tcp://localhost: the port on ::1, bound so no one else has it
        if path:
            st = os.lstat(path)
            self.made = (st.st_dev, st.st_ino)

    def allowed(self, conn: socket.socket) -> bool:
        """Whether the peer is this user: ``SO_PEERCRED`` on a Unix socket, the kernel's socket
        table over loopback TCP (read right after the accept, while the client's socket is there).
        A peer that cannot be told is refused."""
        from rootless.api import peer
        if conn.family == socket.AF_UNIX:
            uid = peer.unix_peer_uid(conn)
        else:
            uid = peer.tcp_peer_uid(conn)
        return uid is not None and uid == os.getuid()

    def close(self) -> None:
        self.sock.close()
        if self.held is not None:
            self.held.close()
        if self.path:
            try:
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self.made:  # not a newer service's socket bound there since
                    os.unlink(self.path)
            except OSError:
                pass


def listen(uri: str | None, warn, paths=None) -> Listener:
    """A listener for ``uri`` (``unix:///path`` or ``tcp://127.0.0.1:PORT``; None: the default
    socket of ``paths``), or the socket systemd passed (``LISTEN_FDS``)."""
    inherited = _activated()
    if inherited is not None:
        return Listener(inherited, None, inherited.family != socket.AF_UNIX)
    if uri is None:  # our own runtime directory: one left 0755 by an older version is made private
        return _unix(default_uri(paths)[len("unix://"):], fix_parent=True)
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "unix", uri
    if scheme == "unix":
        return _unix(rest)
    if scheme == "tcp":
        return _tcp(rest, warn)
    raise UsageError(f"unsupported address {uri!r}", "use unix:///PATH, or tcp://127.0.0.1:PORT")


def _activated() -> socket.socket | None:
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def _private_parent(parent: str, fix: bool) -> None:
    """Make sure the socket's directory is a directory of ours that only we can enter (made 0700
    when missing). With ``fix`` (the default socket's, in our runtime directory) one of ours that
    is open to others is made 0700, and a symlink is refused."""
    from rootless.base.paths import makedirs_private
    try:
        makedirs_private(parent)
        st = os.lstat(parent) if fix else os.stat(parent)
    except OSError as e:
        raise RootlessError(f"cannot make the socket's directory {parent}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise RootlessError(f"{parent} is a symlink: the socket's directory must be a directory of yours",
                            f"remove the symlink {parent}, or give another socket path")
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RootlessError(f"{parent} is not a directory of yours: the socket would be reachable by others",
                            "give a socket path in a directory only you can enter")
    if st.st_mode & 0o077:
        if not fix:
            raise RootlessError(f"{parent} is not a private directory of yours: the socket would be reachable by "
                                f"others",
                                f"chmod 700 {parent}, or give a socket path in a directory only you can enter")
        os.chmod(parent, 0o700)


def _unix(path: str, fix_parent: bool = False) -> Listener:
    if not path.startswith("/"):
        raise UsageError(f"the socket path {path!r} must be absolute")
    parent = os.path.dirname(path)
    _private_parent(parent, fix_parent)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise RootlessError(f"{path} exists and is not a socket: refusing to replace it",
                                "give a socket path where nothing is, or move that file away")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise RootlessError(f"{path} is in use: another service listens there",
                                "stop it, or give another socket path")
        except OSError:
            os.unlink(path)  # left by a service that died
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise RootlessError(f"cannot listen on {path}: {e.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    return Listener(sock, path, False)


def _tcp(hostport: str, warn) -> Listener:
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise UsageError(f"refusing to listen on {host or 'every address'}: the API gives control of your "
                         "containers and files", "use a Unix socket, or tcp://127.0.0.1:PORT")
    try:
        port_n = int(port)
    except ValueError:
        raise UsageError(f"invalid port in tcp://{hostport}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port_n))
    except OSError as e:
        sock.close()
        raise RootlessError(f"cannot listen on tcp://{hostport}: {e.strerror}") from None
    sock.listen(BACKLOG)
    listener = Listener(sock, None, True)
    if host == "localhost":
        listener.held = _hold_other_loopback(sock, hostport)
    warn(f"listening on tcp://{hostport}: any program of yours can reach it (connections of other users "
         "are refused); prefer the Unix socket")
    return listener


def _hold_other_loopback(sock: socket.socket, hostport: str) -> socket.socket | None:
    """``localhost`` is also ``::1``, which clients often try first: the same port there is bound
    (not listened on, no SO_REUSEADDR, so nobody else can bind it; a client's connect is refused
    and it goes on to 127.0.0.1), else another user listening there would get our clients'
    requests and credentials. None when this machine has no IPv6 loopback."""
    port = sock.getsockname()[1]
    try:
        other = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        other.bind(("::1", port))
    except OSError as e:
        other.close()
        if e.errno == errno.EADDRINUSE:
            sock.close()
            raise RootlessError(f"cannot listen on tcp://{hostport}: port {port} of ::1 (localhost too) is taken "
                                "by another program, which would receive some of your clients' requests",
                                "use tcp://127.0.0.1:PORT, or a Unix socket") from None
        return None  # no IPv6 loopback: localhost is 127.0.0.1 alone
    return other


def warm_up(ctx: Context) -> None:
    """Import what the handlers use and settle the Context's lookups once, in the listener: each
    connection's process is a fork of it and starts warm (a cold one spends tens of ms importing)."""
    import importlib
    for name in ("rootless.api.routes", "rootless.api.containers", "rootless.api.execs", "rootless.api.system",
                 "rootless.api.volumes", "rootless.api.images", "rootless.engine.containers",
                 "rootless.runtime.launcher",
                 "rootless.runtime.child", "rootless.runtime.spec", "rootless.runtime.mountplan",
                 "rootless.runtime.network", "rootless.runtime.logread", "rootless.runtime.logfollow",
                 "rootless.runtime.logwrite", "rootless.runtime.names",
                 "rootless.runtime.security", "rootless.runtime.seccompprofile", "rootless.engine.volumes",
                 "rootless.engine.dockerview", "layers.store", "layers.overlay", "netstack.spec",
                 "netstack.slirp", "netstack.etcfiles", "rootless.runtime.cgroups", "rootless.engine.images",
                 "rootless.engine.networks", "rootless.engine.events", "rootless.runtime.events",
                 "rootless.runtime.keeper", "rootless.runtime.execute", "json", "tarfile"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for prop in ("config", "paths", "mapping", "store"):
        getattr(ctx, prop)
    try:
        ctx.overlay_method()
        ctx.slirp_features()
    except RootlessError:
        pass  # said when a container needs it


def connection_idle(idle: float) -> float:
    """Seconds a connection may wait silent for its next request (``idle``: the service's --time)."""
    return min(CONNECTION_IDLE, idle) if idle > 0 else CONNECTION_IDLE


def serve(ctx: Context, uri: str | None, idle: float) -> None:
    """Serve until interrupted, or until no connection has been open for ``idle`` seconds (0: never)."""
    listener = listen(uri, ctx.warn, ctx.paths)
    warm_up(ctx)
    ctx.warm_forker = False  # its keepers are forked from it, warm already: they share its pages
    conn_idle = connection_idle(idle)
    children: set[int] = set()
    stop = {"now": False}

    def on_signal(_s, _f):
        stop["now"] = True
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    where = listener.path or f"fd {listener.sock.fileno()}"
    print(f"rootless: API listening on {where}", file=sys.stderr, flush=True)
    last = time.monotonic()  # the last time a connection was used
    try:
        while not stop["now"]:
            last = max(last, _reap(children, conn_idle))
            timeout = None
            if idle > 0 and not children:
                timeout = max(0.0, last + idle - time.monotonic())
                if timeout == 0 and not select.select([listener.sock], [], [], 0)[0]:
                    break  # (a client already waiting in the backlog is served first)
            # At the bound, new connections wait in the backlog until a process ends (SIGCHLD wakes us).
            watch: list[socket.socket | int] = [listener.sock, wake_r] if len(children) < MAX_CONNECTIONS else [wake_r]
            try:
                ready, _, _ = select.select(watch, [], [], timeout)
            except InterruptedError:
                continue
            if wake_r in ready:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            if listener.sock in ready and _accept(ctx, listener, children, conn_idle, wake_r, wake_w):
                last = time.monotonic()
    finally:
        signal.set_wakeup_fd(-1)
        listener.close()
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _reap(children: set[int], conn_idle: float) -> float:
    """Reap the connections' processes that ended; when the latest of them was last used (its
    end, or for one closed idle, its end less the idle time), or 0.0 when none ended."""
    latest = 0.0
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.discard(pid)
            used = time.monotonic()
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == IDLE_EXIT:
                used -= conn_idle
            latest = max(latest, used)
    return latest


def _accept(ctx: Context, listener: Listener, children: set[int], conn_idle: float, *close_in_child: int) -> bool:
    """Accept a connection and fork its process; whether one was (another user's is dropped)."""
    try:
        conn, _ = listener.sock.accept()
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EINTR):
            return False
        raise
    if not listener.allowed(conn):
        conn.close()  # another user: not a word
        return False
    pid = os.fork()
    if pid:
        conn.close()
        children.add(pid)
        return True
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        for fd in close_in_child:
            os.close(fd)
        listener.sock.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        from rootless.api import routes
        if routes.serve_connection(ctx, conn, conn_idle):
            code = IDLE_EXIT
    except BaseException:  # noqa: BLE001 - a connection's end is never the service's
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)
