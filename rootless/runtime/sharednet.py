"""The shared network: one slirp4netns for all the containers of a store on the default network.

Podman's rootless-netns idea, switched instead of NATed: a *holder* (``runtime.netholder``) owns a
user namespace with the store's id map and, inside it, a network namespace with a bridge that
slirp4netns's tap is a port of. A container's keeper joins the holder's user namespace first
(:func:`join`) and, with the store's map, lives in it (a keep-id one makes its own inside it): the
container's namespaces are then the holder's user namespace's, which lets a socket opened in the
holder's network namespace put one end of a veth pair in the container's (:func:`attach`). The
container gets ``eth0`` with an address of its own in slirp4netns's network (10.0.2.100 for the
first, then the next free one), the gateway and resolver it always had (10.0.2.2, 10.0.2.3);
slirp4netns sees each as a guest of its own and serves them all. The containers reach each other
by address, as on Docker's default bridge.

What one container cost in memory was mostly its own slirp4netns (~0.35 MB private each); a
store's containers now share one. The published ports are unchanged: the keeper's relay connects
to the container's address from inside its namespace.

State, under the store's run root (``sharednet/``, guarded by its ``lock``): ``holder.json`` (the
holder's pid and start time, the bridge's index, its id map) and ``leases/IP`` (the pid and start
time of the process that holds the address: the CLI while it starts the container, then its
keeper). An address whose holder has gone is free. ``ROOTLESS_SHARED_NETWORK=0`` (and a Slurm
job) gives each container its own slirp4netns, as do slirp4netns options other than the defaults and
``port_handler=slirp4netns``; so does a failure to start the holder (a warning; a kernel that
lets no user namespace make a bridge is remembered until the run root is cleared).
"""

from __future__ import annotations

import os

from rootless.base.errors import RootlessError
from rootless.runtime import netholder
from rootless.runtime.netholder import MTU

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from netstack.slirp import Features
    from rootless.base.idmap import IdMapping
    from rootless.base.paths import Paths

ENV = "ROOTLESS_SHARED_NETWORK"
DIR = "sharednet"
IFNAME = "eth0"
# the addresses in slirp4netns's 10.0.2.0/24 given out: .100 (a container's address when it had a
# slirp4netns of its own) first; .2 (the host) and .3 (the resolver) are slirp4netns's
ORDER = tuple(range(100, 255)) + tuple(range(4, 100))


def enabled(environ=None) -> bool:
    """Off with ``ROOTLESS_SHARED_NETWORK=0``, and in a Slurm job (as the warm forker): a holder
    outlives the job step that started it, which Slurm (without a cgroup plugin) would not end."""
    env = os.environ if environ is None else environ
    return env.get(ENV, "").strip() != "0" and not env.get("SLURM_JOB_ID", "").strip()


def usable(options: dict, environ=None) -> bool:
    """Whether a container with these slirp4netns options joins the shared network."""
    if not enabled(environ):
        return False
    return (not options.get("allow_host_loopback") and options.get("port_handler", "builtin") == "builtin"
            and options.get("mtu", MTU) == MTU and not options.get("enable_ipv6") and not options.get("cidr"))


def directory(paths: Paths) -> str:
    return os.path.join(paths.runroot, DIR)


class Lease:
    """An address on the shared network and the holder that serves it; ``nl`` or ``joiner`` (the
    keeper's, not carried over a fork request): an rtnetlink socket in the bridge's namespace, or
    its helper in the holder's namespaces (:func:`join`)."""

    def __init__(self, where: str, holder: int, holder_start: str, bridge: int, outer: IdMapping, ip: str):
        self.where, self.holder, self.holder_start = where, holder, holder_start
        self.bridge, self.outer, self.ip = bridge, outer, ip
        self.joiner: _Joiner | None = None
        self.nl: socket.socket | None = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("joiner", "nl")}

    def __setstate__(self, st):
        self.__dict__.update(st, joiner=None, nl=None)

    @property
    def path(self) -> str:
        return os.path.join(self.where, "leases", self.ip)


def lease(paths: Paths, mapping: IdMapping, features: Features, warn) -> Lease | None:
    """An address for a container starting now (held by this process until its keeper takes it),
    the holder started if there is none; None when the holder cannot start (the container gets
    a slirp4netns of its own; ``warn`` says why)."""
    from rootless.base.locking import locked
    where = directory(paths)
    os.makedirs(os.path.join(where, "leases"), 0o700, exist_ok=True)
    unusable = os.path.join(where, "unusable")
    if os.path.exists(unusable):  # said once (until the run root is cleared: a reboot)
        return None
    with locked(os.path.join(where, "lock")):
        holder = _holder(where)
        if holder is None:
            try:
                holder = netholder.start(where, mapping, features, os.path.join(paths.root, "libexec"))
            except (RootlessError, OSError) as e:
                message = e.message if isinstance(e, RootlessError) else f"{e.strerror or e}"
                warn(f"no shared network ({message}): each container gets a slirp4netns of its own")
                if netholder.NO_BRIDGE in message:  # not to be tried again (a slirp4netns that fails might be fixed)
                    from rootless.base.atomic import write_bytes
                    write_bytes(unusable, message.encode() + b"\n", 0o600, sync=False)
                return None
        try:
            ip = _allocate(where)
        except RootlessError as e:
            warn(f"{e.message}: this container gets a slirp4netns of its own")
            return None
    return _lease_of(where, holder, ip)


def _lease_of(where: str, holder: dict, ip: str) -> Lease:
    from rootless.base.idmap import IdMapping, Range
    mode, uids, gids = holder["mapping"]
    outer = IdMapping(mode, tuple(Range(*r) for r in uids), tuple(Range(*r) for r in gids))
    return Lease(where, holder["pid"], holder["start"], holder["bridge"], outer, ip)


def user_namespace(paths: Paths) -> Lease | None:
    """For a container off the shared network (``none``, ``host``, a slirp4netns of its own), the
    running holder's user namespace to live in (no address: ``ip`` is ""), or None. Joining it
    spares the setuid helpers' run (newuidmap/newgidmap) a start otherwise waits for; its keeper
    falls back to them should the holder be gone by then."""
    if not enabled():
        return None
    where = directory(paths)
    holder = _holder(where)
    return _lease_of(where, holder, "") if holder is not None else None


def _holder(where: str) -> dict | None:
    from rootless.base.atomic import read_json
    from rootless.runtime import records
    try:
        holder = read_json(os.path.join(where, "holder.json"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not records.alive(holder.get("pid", 0), holder.get("start", "")):
        return None
    return holder


def _allocate(where: str) -> str:
    """The first address of ``ORDER`` that no live process holds, leased to this one (under the lock)."""
    leases = os.path.join(where, "leases")
    taken = set(os.listdir(leases))
    for last in ORDER:
        ip = f"10.0.2.{last}"
        if ip in taken and netholder.held(os.path.join(leases, ip)):
            continue
        _write_lease(os.path.join(leases, ip))
        return ip
    raise RootlessError(f"the shared network has no free address ({len(ORDER)} containers are on it)")


def _write_lease(path: str) -> None:
    from rootless.base.atomic import write_bytes
    from rootless.runtime import state
    write_bytes(path, f"{os.getpid()} {state.pid_start_time(os.getpid())}\n".encode(), 0o600, sync=False)


def release(lease: Lease) -> None:
    """The CLI's side once the keeper has started (or failed to): the address is freed if no
    keeper took it."""
    if not lease.ip:
        return
    try:
        with open(lease.path) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid == os.getpid():
        try:
            os.unlink(lease.path)
        except OSError:
            pass


def prelude(net, mapping: IdMapping):
    """What a keeper does before it makes its user namespace (``userns.fork_into_userns``'s
    ``prelude``), or None: on the shared network (a ``network.NetPlan`` with a lease), :func:`join`."""
    if net is None or net.shared is None:
        return None
    shared = net.shared
    if not shared.ip:
        return lambda: join_user_namespace(shared, mapping)
    return lambda: join(shared, mapping)


def join_user_namespace(lease: Lease, mapping: IdMapping):
    """In the keeper of a container off the shared network: live in the holder's user namespace
    (``userns.JOINED``) if the container has the store's map and the holder still runs; else
    None (the keeper makes its own, mapped by the setuid helpers, as ever)."""
    from rootless.base import syscalls, userns
    from rootless.runtime import records
    if (mapping.uids, mapping.gids) != (lease.outer.uids, lease.outer.gids):
        return None
    try:
        fd = os.open(f"/proc/{lease.holder}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not records.alive(lease.holder, lease.holder_start):
            return None
        syscalls.setns(fd, syscalls.CLONE_NEWUSER)
    finally:
        os.close(fd)
    return userns.JOINED


def join(lease: Lease, mapping: IdMapping):
    """In the keeper, before it makes its user namespace: take the address over and join the
    holder's user and network namespaces. A container with the store's own map (the usual one)
    lives in the holder's user namespace, as a Podman container in its pause process's: the keeper
    opens ``lease.nl`` in the bridge's namespace now, for :func:`attach`, and makes no user
    namespace (``userns.JOINED``). Another map (``--userns=keep-id``) makes one inside it; only a
    process of the holder's may write its maps and put a veth's end in the bridge's namespace: a
    fork of the keeper made now does both (:class:`_Joiner`); the returned function writes the maps
    (``userns.become_root``'s ``own_maps``)."""
    from rootless.base import syscalls, userns
    from rootless.runtime import records
    _write_lease(lease.path)
    fds = []
    try:
        for kind in ("user", "net"):
            fds.append(os.open(f"/proc/{lease.holder}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
        if not records.alive(lease.holder, lease.holder_start):
            raise RootlessError("the shared network's holder has gone", "run the container again")
        syscalls.setns(fds[0], syscalls.CLONE_NEWUSER)
        syscalls.setns(fds[1], syscalls.CLONE_NEWNET)
    finally:
        for fd in fds:
            os.close(fd)
    if (mapping.uids, mapping.gids) == (lease.outer.uids, lease.outer.gids):
        from netstack import netlink
        lease.nl = netlink.route_socket()
        return userns.JOINED
    lease.joiner = _Joiner(lease)
    return lease.joiner.write_maps


class _Joiner:
    """A child of the keeper in the holder's namespaces (forked before the keeper makes its own):
    asked in turn, it writes the keeper's id maps, then makes the veth pair whose ``eth0`` it puts
    in the keeper's network namespace, and exits."""

    def __init__(self, lease: Lease):
        import socket
        keeper = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            code = 1
            try:
                _join_for(keeper, lease, theirs)
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        self.sock = ours

    def _ask(self, what: str, request) -> None:
        import pickle
        self.sock.send(pickle.dumps(request))
        answer = self.sock.recv(4096).decode(errors="replace")
        if answer != "ok":
            self.close()
            raise RootlessError(f"cannot {what} on the shared network: {answer or 'its helper has gone'}",
                                "set ROOTLESS_SHARED_NETWORK=0 for a slirp4netns of the container's own")

    def write_maps(self, mapping: IdMapping) -> None:
        self._ask("write the id maps", mapping)

    def veth(self, mac: str | None) -> None:
        self._ask("connect the container", ("veth", mac))
        self.close()

    def close(self) -> None:
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _join_for(keeper: int, lease: Lease, sock) -> None:
    """The joiner's side: each request answered ``ok`` or with what went wrong."""
    import pickle

    from netstack import netlink
    from rootless.base import idmap
    for step in ("maps", "veth"):
        data = sock.recv(4096)
        if not data:
            return
        try:
            request = pickle.loads(data)
            if step == "maps":
                idmap.write_nested(keeper, idmap.nested(request, lease.outer))
            else:
                with netlink.route_socket() as nl:
                    _veth(nl, f"/proc/{keeper}/ns/net", lease.bridge, request[1])
        except (RootlessError, OSError) as e:
            sock.send((e.message if isinstance(e, RootlessError) else str(e)).encode())
            return
        sock.send(b"ok")


def _veth(nl, netns: str, bridge: int, mac: str | None) -> None:
    """A veth pair from the bridge (``nl``'s namespace) to ``eth0`` in the namespace at ``netns``."""
    from netstack import netlink
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        netlink.create_veth(nl, f"rl{os.urandom(4).hex()}", IFNAME, fd, MTU, master=bridge, peer_mac=mac)
    finally:
        os.close(fd)


def attach(lease: Lease, mac: str | None) -> str:
    """In the keeper, in the container's new network namespace: a veth pair from the holder's
    bridge to ``eth0`` here (made with ``lease.nl``, or by the joiner), with the lease's address and the default route;
    eth0's MAC address."""
    import socket

    from netstack import netlink, slirp
    if lease.nl is not None:
        nl, lease.nl = lease.nl, None
        with nl:
            _veth(nl, "/proc/self/ns/net", lease.bridge, mac)
    else:
        assert lease.joiner is not None
        joiner, lease.joiner = lease.joiner, None
        joiner.veth(mac)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
        netlink.set_address(ctl, IFNAME, lease.ip, "255.255.255.0")
        netlink.set_up(ctl, IFNAME)
        with netlink.route_socket() as nl:
            netlink.add_default_route(nl, slirp.GATEWAY)
        return netlink.hardware_address(ctl, IFNAME)
