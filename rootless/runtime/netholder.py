"""The shared network's holder (``runtime.sharednet``): a user namespace with the store's id map,
a network namespace in it with a bridge, and slirp4netns, whose tap is a port of the bridge.

:func:`start` (a CLI, under the shared network's lock) forks it through ``userns.fork_into_userns``
(the CLI writes the id maps, as for a container); the child forks the holder and leaves, so that
the holder is nobody's child. The holder forks slirp4netns's spawner while it is in the host's
network namespace (slirp4netns's sockets must be there), unshares its network namespace, makes
the bridge, starts slirp4netns against it without ``--configure`` (the tap carries no address:
the containers have theirs), puts the tap on the bridge, says ``ready`` and rests as the idle
program (``runtime.hibernate``: a few kB). It wakes every ``ROOTLESS_NETSTACK_IDLE`` seconds
(default 60) and when slirp4netns ends; once no live process holds an address, or slirp4netns is
gone, it removes its record and exits; slirp4netns, whose exit pipe it held, ends with it.
"""

from __future__ import annotations

import os

from rootless.base.errors import RootlessError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netstack.slirp import Features
    from rootless.base.channel import Channel
    from rootless.base.idmap import IdMapping

ENV = "ROOTLESS_NETSTACK_IDLE"
DEFAULT_IDLE = 60.0
TITLE = "rootless-netstack"
BRIDGE = "rootless0"
MTU = 65520
NO_BRIDGE = "this kernel lets no user namespace make a bridge"


def idle_setting(environ=None) -> float:
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_IDLE
    except ValueError:
        return DEFAULT_IDLE
    return value if value > 0 else DEFAULT_IDLE


def start(where: str, mapping: IdMapping, features: Features, libexec: str) -> dict:
    """Start the holder (the caller holds the shared network's lock); its record, written.
    ``libexec``: where the idle program is (``idlewait.install``)."""
    from rootless.base import userns
    from rootless.base.atomic import write_json
    settings = {"where": where, "idle": idle_setting(), "libexec": libexec}
    pid, ch = userns.fork_into_userns(mapping, lambda c: _detach(c, features, settings))
    try:
        msg = ch.expect("ready")
    finally:
        ch.close()
        userns.reap(pid)
    holder = {"pid": msg["pid"], "start": msg["start"], "bridge": msg["bridge"], "slirp": msg["slirp"],
              "mapping": [mapping.mode, mapping.uids, mapping.gids]}
    write_json(os.path.join(where, "holder.json"), holder, 0o600, sync=False)
    return holder


def _detach(ch: Channel, features: Features, settings: dict) -> int:
    """The first child, root of the holder's user namespace: fork the holder, leave."""
    if os.fork() == 0:
        code = 125
        try:
            _holder(ch, features, settings)
            code = 0
        except BaseException as e:  # noqa: BLE001 - it goes back to the CLI
            ch.send_error(e, "start the shared network")
        finally:
            os._exit(code)
    return 0


def _holder(ch: Channel, features: Features, settings: dict) -> None:
    import signal
    import socket

    from netstack import netlink, slirp
    from rootless.base import syscalls
    from rootless.runtime import state
    os.setsid()
    for sig in signal.valid_signals():  # none of the CLI's handlers (its forwarding) nor its mask
        if callable(signal.getsignal(sig)):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    keep = ch.fileno()  # nothing else of the CLI's: its locks (the shared network's, held now) among them
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    from rootless.base import forkconn
    where = settings["where"]
    forkconn.title(TITLE, f"{TITLE} {where}")
    proc = slirp.Slirp(where)  # its spawner stays in the host's network namespace
    syscalls.unshare(syscalls.CLONE_NEWNET)
    with netlink.route_socket() as nl:
        try:
            netlink.create_bridge(nl, BRIDGE, MTU)
        except OSError as e:
            raise RootlessError(f"{NO_BRIDGE}: {e.strerror}") from None
        bridge = socket.if_nametoindex(BRIDGE)
        netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fds = proc.fds()
        proc.start(slirp.argv(features, f"/proc/{os.getpid()}/fd/{netns}", fds["ready"], fds["exit"], fds["api"],
                              {"mtu": MTU}, None, configure=False))
        proc.wait_ready()
        os.close(netns)
        netlink.join_bridge(nl, slirp.TAP, bridge)
    from rootless.runtime import idlewait
    idlewait.install(settings["libexec"])  # now: later looks only read it (the store may be going)
    ch.send("ready", pid=os.getpid(), start=state.pid_start_time(os.getpid()), bridge=bridge, slirp=proc.pid)
    ch.close()
    _keep(dict(settings, slirp=proc.pid, proc=proc), lambda: None)


def resumed(held: dict, awake) -> None:
    """The holder after a rest (``hibernate.resume``'s entry)."""
    _keep(held, awake)


def _keep(held: dict, awake) -> None:
    """Rest until slirp4netns ends or nobody holds an address any more; then leave."""
    import time

    from rootless.runtime import hibernate, idlewait
    awake()
    while not _done(held["where"], _slirp_runs(held["slirp"])):
        # never written again here: a store being removed (its last container gone) stays removed;
        # without the file the holder waits as Python until it leaves
        program = idlewait.install(held["libexec"], create=False)
        if program is not None:
            hibernate.rest(program, held, f"{__name__}:resumed", [], [], timeout=held["idle"], title=TITLE)
        time.sleep(held["idle"])  # no idle program on this machine (or it could not rest): a Python wait


def held(path: str) -> bool:
    from rootless.runtime import records
    try:
        with open(path) as f:
            pid, start = f.read().split()[:2]
        return records.alive(int(pid), start)
    except (OSError, ValueError):
        return False


def live_leases(where: str) -> int:
    """How many addresses live processes hold."""
    leases = os.path.join(where, "leases")
    try:
        names = os.listdir(leases)
    except OSError:
        return 0
    return sum(held(os.path.join(leases, n)) for n in names)


def _slirp_runs(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == 0
    except ChildProcessError:
        return False


def _done(where: str, serving: bool) -> bool:
    """Under the lock: slirp4netns has gone, or no live process holds an address; then the record
    goes (the next start makes a new holder) and True."""
    from rootless.base.locking import locked
    try:
        with locked(os.path.join(where, "lock"), timeout=5.0):
            if serving and live_leases(where):
                return False
            try:
                os.unlink(os.path.join(where, "holder.json"))
            except FileNotFoundError:
                pass
            return True
    except RootlessError:  # the lock held for seconds: asked again at the next wake-up
        return not serving
    except OSError:  # the run root removed under it (a reset): nobody can lease from it any more
        return True
