"""The in-namespace side of a container, top to bottom.

Two processes, both already root of the container's user namespace:

``sandbox`` (the keeper) unshares the other namespaces, mounts the root
filesystem, forks the container process, waits for it, then unmounts and
cleans up. ``container`` (PID 1 of the new pid namespace) applies the mount
plan, pivots into the root, takes on the user's identity and execs the
command. Failures travel back to the parent over the channel as typed errors.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from layers.overlay import mount_rootfs, unmount_rootfs
from rootless.base import proc, syscalls, timing, userns
from rootless.base.channel import Channel
from rootless.base.clock import now_iso
from rootless.base.errors import RootlessError, from_oserror
from rootless.base.syscalls import (
    MS_REC,
)
from rootless.runtime import (
    events,
    execpipe,
    exitwatch,
    keeper,
    keepernet,
    logwrite,
    mountops,
    restart,
    state,
    subreaper,
)
from rootless.runtime.identity import Step, exec_command, open_terminal, take_identity
from rootless.runtime.launchplan import LaunchPlan
from rootless.runtime.spec import ContainerSpec
from rootless.runtime.terminal import FORWARDED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootless.runtime.hibernate import Pace


# ---- the keeper -----------------------------------------------------------------
def sandbox(plan: LaunchPlan, ch: Channel) -> int:
    """The keeper, as a flat sequence of phases; each names its steps (``Step.at``) for the errors."""
    os.setsid()  # the terminal's signals reach the CLI only; it forwards them
    passthrough = _hold_stdio() if plan.passthrough else ()  # the OCI face's: the caller's, for PID 1
    if not plan.attached:
        keeper.release_terminal()
    k = _Keeper(plan, ch)
    k.passthrough = passthrough

    def start_and_keep() -> None:
        k.enter_namespaces()
        k.mount_root()
        try:
            k.connect_network()
            k.listen()
            pid, stdio = k.fork_container()
            watch, wakeup = k.record_start(pid, stdio)
            k.supervise(pid, stdio, watch, wakeup)
            k.reap(pid, watch)
        finally:
            k.close_down()
    return _to_the_end(k, start_and_keep)


def resumed(state: dict, awake) -> None:
    """The keeper after a rest (``runtime.hibernate``): its handlers set again, the signals that
    came meanwhile taken (``awake``), then it goes on supervising where it stopped."""
    k, pid, stdio = state["keeper"], state["pid"], state["stdio"]

    def keep() -> None:
        try:
            k.forward_signals(pid)
            wakeup = keeper.Wakeup()
            awake()
            k.supervise(pid, stdio, None, wakeup, resumed=True)
            k.reap(pid, None)
        except BaseException:  # (code changed under a resting keeper): the container ends with it, recorded
            kill_quietly(pid, signal.SIGKILL)
            raise
        finally:
            k.close_down()
    userns.child_main(lambda _ch: _to_the_end(k, keep), k.ch, "keeper")


def _to_the_end(k: _Keeper, body) -> int:
    """Run the keeper's ``body``; whatever happens, wind down (the record, the clients, the CLI)."""
    try:
        body()
        k.finished = True
        return k.code
    except OSError as e:
        err = from_oserror(Step.name, e)
        k.error = err.message
        raise err from None
    except RootlessError as e:
        k.error = e.message
        raise
    finally:
        k.wind_down()


class _Keeper:
    """What the keeper's phases share: the plan, the channel to the parent, the helpers it started,
    the attach clients, and the outcome (``code``, ``error``; ``finished``: the container ran to its end)."""

    def __init__(self, plan: LaunchPlan, ch: Channel):
        self.plan, self.ch = plan, ch
        self.helpers = keepernet.Helpers()
        self.attach_sock: socket.socket | None = None
        self.clients: list = []  # attach clients (attach, wait): told the exit code at the end
        self.orphaned: list = []  # a tied container whose CLI has gone (a killed build): it goes too
        self.netns: int | None = None  # a descriptor of the network namespace, for slirp4netns until it is ready
        self.link_listeners: list = []
        self.link_ns: list[int] = []  # the link namespace's descriptor: its addresses live while it is open
        self.mac = ""
        self.gate_w = -1  # with slirp4netns: opened (a byte) once the network is ready; PID 1 waits on it
        self.code, self.error, self.finished = 125, "", False
        # --pid host: ends the container's other processes with PID 1 (runtime.subreaper)
        self.end_watch: subreaper.EndWatch | None = None
        self.probe_cgroup: int | None = None  # the container's cgroup.procs, for its health probes
        self.passthrough: tuple[int, ...] = ()  # the caller's stdio (the OCI face), PID 1's
        self.quiet = False  # the CLI has left (an OCI `create`): messages only if it still listens
        self.pace: Pace | None = None  # when it rests (``hibernate.Pace``), made by ``_rest``
        self.log_partial: dict = {}  # the log's partial lines at a rest, for the writer after it
        self.health_carried: dict | None = None  # the health monitor's state at a rest, for the one after it

    def enter_namespaces(self) -> None:
        """Unshare (or join) the namespaces but the pid one; the network's first helpers start here."""
        from rootless.runtime import network
        net, lease = self.plan.net, network.shared_address(self.plan.net)
        if net.kind == "slirp4netns" and lease is None:
            Step.at("fork the slirp4netns spawner")  # now: it must stay in the host's network namespace
            from netstack.slirp import Slirp
            self.helpers.slirp = Slirp(self.plan.run_dir)
            _mark(self.ch, "slirp-spawner")
        # now: the cgroup namespace hides the container's cgroup from the keeper (cgroup v2 only)
        if self.plan.spec.healthcheck and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            from rootless.runtime import cgroups
            self.probe_cgroup = cgroups.open_own_procs(self.plan.spec.id)
        Step.at("unshare namespaces")
        flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWCGROUP
        if uts_host(self.plan.spec):
            flags &= ~syscalls.CLONE_NEWUTS
        asked = self.plan.spec.asked or {}  # --ipc host; the OCI face's config without an IPC or cgroup namespace
        if ipc_host(self.plan.spec):
            flags &= ~syscalls.CLONE_NEWIPC
        if asked.get("CgroupnsMode") == "host":
            flags &= ~syscalls.CLONE_NEWCGROUP
        if net.kind in ("slirp4netns", "none"):
            flags |= syscalls.CLONE_NEWNET
        syscalls.unshare(flags)
        if lease is not None:
            Step.at(f"join the shared network as {lease.ip}")
            from rootless.runtime import sharednet
            self.mac = sharednet.attach(lease, net.mac)
        if self.helpers.slirp:  # first: slirp4netns takes longer to start than the rest up to the container's fork
            Step.at("start slirp4netns")
            self.netns = keepernet.start_slirp(self.helpers.slirp, net)
            _mark(self.ch, "slirp")
        if net.kind == "container":
            Step.at("join the network namespace of the other container")
            assert net.join_fds is not None  # network.prepare opens them for a container: network
            syscalls.setns(net.join_fds[1], syscalls.CLONE_NEWNET)
        Step.at("make / private")
        syscalls.mount(None, "/", None, MS_REC | syscalls.MS_PRIVATE)
        if flags & syscalls.CLONE_NEWNET:
            Step.at("bring up lo")
            from netstack import loopback
            loopback.bring_up()
        if net.links or net.dns is not None:  # a network member's DNS server adds links later
            Step.at("set up the link namespace")
            from netstack import links
            self.link_listeners = links.setup(net.links, hold=self.link_ns)  # kept open for the container's life
        sysctl = self.plan.oci.sysctl if self.plan.oci is not None else tuple((self.plan.spec.sysctls or {}).items())
        if sysctl:
            Step.at("sysctl")
            from rootless.runtime import procsettings
            procsettings.write_sysctls(sysctl)

    def mount_root(self) -> None:
        Step.at(f"mount the root filesystem ({self.plan.rootfs.method})")
        os.makedirs(self.plan.rootfs.merged, exist_ok=True)
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)  # fuse-overlayfs daemonizes: it stays ours to reap
        mount_rootfs(self.plan.rootfs)
        _mark(self.ch, "mounted")

    def connect_network(self) -> None:
        """The relay for the published ports and the links, served by the supervise loop (slirp4netns
        is awaited later: ``open_gate``)."""
        net = self.plan.net
        if net.bound or net.door or self.link_listeners or net.dns is not None:
            Step.at("set up the port relay")
            self.helpers.relay = keepernet.start_relay(self.plan, self.link_listeners, self.link_ns,
                                                       lambda m: _send_quietly(self.ch, "warning", message=m), Step.at)

    def listen(self) -> None:
        Step.at("listen on the attach socket")
        self.attach_sock = keeper.listen(self.plan.run_dir)
        self.clients += keeper.connect_pending(self.plan.paths.pending(self.plan.spec.id))

    def fork_container(self) -> tuple[int, keeper.Stdio]:
        """PID 1 of a new pid namespace, and the keeper's ends of its stdio."""
        plan = self.plan
        helpers = None
        if subreaper.pid_host(plan.spec):  # the host's: the keeper's children so far are its helpers
            helpers = subreaper.helpers_of(os.getpid())
        else:  # after the mount: fuse-overlayfs must not become PID 1 of the new pid namespace
            Step.at("unshare the pid namespace")
            syscalls.unshare(syscalls.CLONE_NEWPID)
        stdio = keeper.Stdio(plan.spec.tty, plan.spec.interactive, plan.attached, plan.attached and plan.stdin,
                             self.passthrough, plan.outputs)
        self.exec_r, exec_w = execpipe.open_pipe()  # closed by the command's exec (execpipe)
        gate_r = -1
        # the container sets up while slirp4netns starts, or until an OCI `start`; its command waits (open_gate)
        if plan.oci is not None and plan.oci.start_fifo:
            # both ways: PID 1 says it is ready (its command found, its identity taken), the keeper opens
            gate_r, self.gate_w = (s.detach() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
        elif self.helpers.slirp:
            gate_r, self.gate_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(self.exec_r)
            if gate_r >= 0:
                os.close(self.gate_w)
            self.helpers.forget_relay()  # the host's sockets stay the keeper's
            _container_entry(plan, self.ch, stdio, exec_w, gate_r)
        os.close(exec_w)
        if gate_r >= 0:
            os.close(gate_r)
        _mark(self.ch, "container-forked")
        if plan.oci is not None and plan.oci.pid_file:  # the OCI face's --pid-file, before create or run returns
            from rootless.base.atomic import write_bytes
            write_bytes(plan.oci.pid_file, str(pid).encode())
        if helpers is not None:
            self.end_watch = subreaper.EndWatch(pid, helpers)
        stdio.connect_keeper()
        if plan.oci is not None and plan.oci.console_socket and stdio.master >= 0:
            Step.at("send the terminal to the console socket")
            from rootless.runtime import ocistart
            ocistart.send_console(plan.oci.console_socket, stdio.master)
            os.close(stdio.master)
            stdio.master, stdio.fds = -1, {}
        return pid, stdio

    def record_start(self, pid: int, stdio: keeper.Stdio) -> tuple:
        """The container runs: recorded, announced, told to the CLI; the CLI's signals go to it."""
        plan, spec, ch = self.plan, self.plan.spec, self.ch
        # Only now: until PID 1 has handed over its pty, nothing here would resume its stops;
        # and only after SIGCHLD wakes the keeper, so that no stop goes unnoticed.
        wakeup = keeper.Wakeup()
        start = _start_time(pid)
        # first: the CLI settles the cgroups meanwhile; PID 1 may already run (no gate): a CLI gone by
        # now (killed, --sig-proxy=false's Ctrl-C) leaves it running, as Docker's client would
        _send_quietly(self.ch, "pid", pid=pid, start=start)
        self.open_gate(pid)  # PID 1 has set up meanwhile; ptrace below: its exit on a failure is no stop
        watch = None if spec.init else exitwatch.ExitWatch(pid)
        # A start returns once the command runs (Docker's); a failed exec's error went to the CLI.
        self.error = execpipe.await_exec(self.exec_r, watch)
        if self.error:
            return watch, wakeup
        if self.end_watch is not None:
            self.end_watch.note_namespace()
        from rootless.runtime import network
        state.update_state(plan.paths, spec.id, status="running", pid=pid, pid_start=start,
                           keeper=os.getpid(), keeper_start=_start_time(os.getpid()),
                           started_at=now_iso(), exit_code=0, error="", log_error="", restarted_by_hand=False,
                           net=network.state_fields(plan.net, self.mac), health=_initial_health(spec.healthcheck))
        events.container(plan.paths, "start", spec)
        _send_quietly(self.ch, "running")  # as "pid": a CLI gone meanwhile changes nothing for the container
        _mark(ch, "forked")
        self.forward_signals(pid)
        return watch, wakeup

    def forward_signals(self, pid: int) -> None:
        """The signals the keeper gets go to PID 1; SIGTERM stops it (:func:`stop_on_term`)."""
        for sig in FORWARDED:
            signal.signal(sig, lambda s, _f: kill_quietly(pid, s))
        signal.signal(signal.SIGTERM, stop_on_term(pid, self.plan.spec.stop_timeout))

    def close_down(self) -> None:
        """After PID 1's end (or a failure on the way): the gate, the relay and the root go."""
        self.close_gate()
        self.helpers.stop_relay()
        unmount_rootfs(self.plan.rootfs)

    def open_gate(self, pid: int) -> None:
        """slirp4netns ready, its ports forwarded: the container's command may run. PID 1 has set up
        (mounts, pivot, stdio) while slirp4netns started, and waits on the gate just before it takes
        its identity, so its first packet finds the tap configured. On a failure, it goes unexecuted.
        An OCI container's (``create``) is opened by ``start`` (``ocistart.await_start``)."""
        if self.gate_w < 0:
            return
        try:
            if self.helpers.slirp is not None:
                from netstack import netlink, slirp_api  # noqa: F401 - now, not once slirp4netns is ready
                Step.at("wait for slirp4netns")
                self.helpers.slirp.wait_ready()
                if self.netns is not None:
                    os.close(self.netns)
                    self.netns = None
                keepernet.slirp_forward(self.helpers.slirp, self.plan.net, Step.at)
                _mark(self.ch, "net-ready")
            if self.plan.oci is not None and self.plan.oci.start_fifo:
                Step.at("wait for start")
                from rootless.runtime import ocistart
                if ocistart.await_start(self.plan, pid, _start_time(os.getpid()), self.tell, self.gate_w):
                    self.quiet = True  # `create` has returned
            # SIGPIPE ignored meanwhile: a keeper started by the restart monitor has it at its default
            pipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            try:
                os.write(self.gate_w, b"g")
            except BrokenPipeError:
                pass  # PID 1 failed before the gate: its error comes through the exec pipe
            finally:
                signal.signal(signal.SIGPIPE, pipe)
            if self.helpers.slirp is not None:
                self.mac = keepernet.tap_mac()  # for the record only: read once the command may run
        except BaseException:
            self.close_gate()
            kill_quietly(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            raise
        finally:
            self.close_gate()

    def close_gate(self) -> None:
        """PID 1 leaves at once if the gate closes unopened (a failed start)."""
        if self.gate_w >= 0:
            os.close(self.gate_w)
            self.gate_w = -1

    def tell(self, kind: str, **fields) -> None:
        """A message to the CLI (a tied container's may be gone already: supervise() ends it)."""
        if self.plan.tied or self.quiet:
            return _send_quietly(self.ch, kind, **fields)
        self.ch.send(kind, **fields)

    def supervise(self, pid: int, stdio: keeper.Stdio, watch, wakeup, resumed: bool = False) -> None:
        """Relay the container's stdio into its log and to the attached clients until it ends
        (``resumed``: after a rest)."""
        plan = self.plan

        def cli_gone() -> None:
            self.orphaned.append(True)
            kill_quietly(pid, signal.SIGKILL)  # PID 1: its pid namespace ends (with --pid host, EndWatch)
        log = logwrite.open_writer(plan.paths.container_log(plan.spec.id), plan.spec.log,
                                   on_error=lambda msg: _log_failed(plan, self.ch, msg), owner=plan.log_owner)
        if self.log_partial:  # after a rest
            log.take_partial(self.log_partial)
            self.log_partial = {}
        monitor = None
        if plan.spec.healthcheck:  # the health modules only for a container that has one
            from rootless.runtime import healthmonitor
            monitor = healthmonitor.keeper_monitor(plan.spec.healthcheck, plan.paths, plan.spec.id,
                                                   plan.rootfs.merged, pid,
                                                   lambda argv: _probe_exec(plan, argv, self.probe_cgroup))
        if monitor is not None and self.health_carried is not None:  # after a rest
            monitor.take(self.health_carried)
            self.health_carried = None
        if self.end_watch is not None and monitor is not None:  # its probe's status is the monitor's
            probing = monitor

            def probe_pids() -> tuple[int, ...]:
                return (probing.probe.pid,) if probing.probe is not None else ()
            self.end_watch.waited = probe_pids
        try:
            keeper.supervise(stdio, self.ch, log, self.attach_sock, watch, wakeup, self.clients,
                             cli_gone if plan.tied else None, subreaper.combined(monitor, self.end_watch), pid1=pid,
                             ports=self.helpers.relay, idle=self._rest(pid, stdio, monitor), resumed=resumed)
        finally:
            if monitor is not None:
                monitor.stop()

    def _rest(self, pid: int, stdio: keeper.Stdio, monitor=None):
        """How this keeper rests when idle (``runtime.hibernate``), or None: a detached container's
        keeper with no other processes to end (--pid host) and not of the OCI face, where the idle
        program exists for this machine and ``ROOTLESS_KEEPER_IDLE`` allows (the supervise loop
        rests only when it is quiet: ``keeper._nap``); ``monitor``: its health checks, carried over."""
        plan = self.plan
        if plan.attached or plan.tied or plan.oci is not None or plan.passthrough or self.end_watch is not None:
            return None
        from rootless.runtime import hibernate, idlewait
        if self.pace is None:
            after = hibernate.after_setting()
            if after is None:
                return None
            self.pace = hibernate.Pace(after)
        program = idlewait.install(os.path.join(plan.paths.root, "libexec"))
        if program is None:
            return None
        return _Rest(self, self.pace, pid, stdio, program, monitor)

    def reap(self, pid: int, watch) -> None:
        """The container's exit code; a hint when it left daemons behind."""
        if watch:
            watch.finish()  # PID 1 may wait in its exit stop
        status = watch.final_status if watch and watch.final_status is not None else _wait(pid)
        self.code = userns.exit_code(status)
        if self.end_watch is not None:  # no pid namespace ends the rest with PID 1
            self.end_watch.end()
        _mark(self.ch, "exited")
        if self.code == 0 and watch and watch.left_children:
            self.error = state.DAEMON_HINT

    def wind_down(self) -> None:
        """Whatever happened: helpers stopped, the record final, the clients told, the CLI released."""
        plan, spec, helpers, code = self.plan, self.plan.spec, self.helpers, self.code
        helpers.stop_relay()
        if plan.net.handler == "slirp4netns" and plan.net.bound:
            helpers.stop_slirp()  # it holds the host ports: free when the CLI returns
        if self.orphaned:  # nobody is left to remove it: as with --rm
            plan = plan._replace(spec=spec._replace(remove=True), remove_dirs=(plan.paths.container(spec.id),))
        _finish(plan, code, self.error, ran=self.finished)
        keeper.farewell(self.clients, self.attach_sock, code if self.finished else None)
        if self.finished:
            # The record is final and the ports free: an attached CLI returns now, without waiting
            # for slirp4netns, whose exit (the kernel unregistering its tap) takes tens of ms.
            _send_quietly(self.ch, "finished", code=code)
            if plan.attached:
                keeper.release_terminal()  # nor does a caller reading the CLI's output wait for us
        helpers.stop_slirp()
        _reap_helpers()


class _Rest:
    """``keeper.supervise``'s ``idle``: the keeper, its container and stdio to go on with after a
    rest; ``after``: the seconds of quiet before it rests (its ``Pace``)."""

    def __init__(self, k: _Keeper, pace: Pace, pid: int, stdio: keeper.Stdio, program: str, monitor=None):
        self.k, self.pace, self.pid, self.stdio, self.program = k, pace, pid, stdio, program
        self.monitor = monitor
        pace.woke()
        self.after = pace.after

    def rest(self, fds: list[int], outputs: dict, drop: list[int], log, timeout: float | None = None) -> None:
        """Rest until one of ``fds`` is readable (or ``timeout`` seconds), the partial lines of
        ``log`` and the health monitor's state carried over; returns only if it could not."""
        import copy

        from rootless.runtime import hibernate
        stdio = copy.copy(self.stdio)
        stdio.fds = outputs  # those still open
        self.pace.resting(timeout)
        self.k.log_partial = getattr(log, "partial", dict)()
        self.k.health_carried = self.monitor.carried() if self.monitor is not None else None
        hibernate.rest(self.program, {"keeper": self.k, "pid": self.pid, "stdio": stdio},
                       "rootless.runtime.child:resumed", fds, drop, lambda: not subreaper.exited(self.pid), self.pid,
                       timeout)
        self.pace.rested_at = 0.0
        self.k.log_partial, self.k.health_carried = {}, None


def _initial_health(hc: dict | None) -> dict | None:
    """``State.Health`` at the start (``runtime.health``'s, imported only for a healthcheck)."""
    if not hc:
        return None
    from rootless.runtime import health
    return health.initial(hc)


def _probe_exec(plan: LaunchPlan, argv: list[str], cgroup_procs: int | None = None) -> None:
    """A healthcheck probe, in the container's namespaces (``runtime.healthmonitor``) and cgroup
    (``cgroup_procs``, where it has one: its limits cover the probe, as Docker's): the container's
    user, capabilities, seccomp program and ``--group-add`` groups, as ``exec`` takes them, then
    exec ``argv``."""
    if cgroup_procs is not None:
        from rootless.runtime import cgroups
        cgroups.join_by(cgroup_procs)
    spec = plan.spec
    quiet, _other = Channel.pair()  # a single-uid map's warning was given at the start
    env = take_identity(spec.user, spec.env, spec.workdir, plan.single_uid, quiet, spec.no_new_privs, spec.caps,
                        plan.seccomp, () if plan.single_uid else tuple(getattr(spec, "group_add", None) or ()))
    exec_command(proc.find_executable(argv[0], env.get("PATH", "")), tuple(argv), env)


def _send_quietly(ch: Channel, kind: str, **fields) -> None:
    try:
        ch.send(kind, **fields)
    except OSError:
        pass  # the CLI has gone (a detached run): nobody to tell


def _reap_helpers(timeout: float = 2.0) -> None:
    """Wait for the helpers left to the keeper (fuse-overlayfs ends once unmounted): no zombie."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.005)


def _log_failed(plan: LaunchPlan, ch: Channel, message: str) -> None:
    """The container's log could not be written (a full disk): the container goes on, its output
    is dropped; say so once, to the attached CLI (a warning on the channel, which its Context
    shows) and in the record (``state.log_error``), each only if it can be written."""
    if plan.attached:
        _send_quietly(ch, "warning", message=message)
    try:
        state.update_state(plan.paths, plan.spec.id, log_error=message)
    except (OSError, RootlessError):
        pass


def _finish(plan: LaunchPlan, code: int, error: str, ran: bool = False) -> None:
    """Remove the runtime files (and the container with --rm), then record the exit: a ``start``
    right after ``stop`` returns makes the runtime directory anew, and it must stay its own."""
    # ``die`` is written before anyone can see the end: while the exit is recorded (under the
    # container's lock: ``stop``/``rm`` take it before their own events), or, with --rm, before
    # the record goes.
    if plan.spec.remove and _restarted_by_hand(plan):  # kept for the start that follows
        plan = plan._replace(spec=plan.spec._replace(remove=False), remove_dirs=())
    if plan.spec.remove:
        events.container(plan.paths, "die", plan.spec, exitCode=code)
    _cleanup(plan)
    if not plan.spec.remove:
        rec = None
        try:
            # its restart policy says whether it is restarting rather than exited (``ran``: it got to run)
            again = restart.exit_fields(state.read(plan.paths, plan.spec.id), code) if ran else {}
            rec = state.update_state(plan.paths, plan.spec.id, status=again.pop("status", "exited"), pid=0,
                                     exit_code=code, error=error, finished_at=now_iso(), keeper=0, net={},
                                     oom_killed=_oom_killed(plan), **again,
                                     then=lambda r: events.container(plan.paths, "die", r["spec"], exitCode=code))
        except (OSError, RootlessError):
            pass
        if rec is None:  # removed meanwhile (rm -f)
            events.container(plan.paths, "die", plan.spec, exitCode=code)
    if plan.remove_dirs:  # --rm: the container and its anonymous volumes are gone
        events.container(plan.paths, "destroy", plan.spec)
        for m in plan.spec.mounts or ():
            if m.get("anonymous"):
                events.append(plan.paths, "volume", "destroy", m["name"], {"driver": "local"})


def _restarted_by_hand(plan: LaunchPlan) -> bool:
    """Whether ``restart`` stopped this ``--rm`` container to start it again (not to be removed)."""
    try:
        rec = state.read(plan.paths, plan.spec.id)
    except (OSError, RootlessError):
        return False
    return bool(rec is not None and rec["state"].get("restarted_by_hand"))


def _oom_killed(plan: LaunchPlan) -> bool:
    """Whether the kernel's OOM killer struck in the container's cgroup (its ``memory.events``;
    the CLI recorded where the cgroup is when it placed the keeper)."""
    if not getattr(plan.spec, "limits", None):
        return False
    from rootless.runtime import cgroups
    rec = state.read(plan.paths, plan.spec.id)
    where = rec["state"].get("cgroup") if rec is not None else None
    return cgroups.oom_kills(where) > 0 if where else False


def _cleanup(plan: LaunchPlan) -> None:
    from layers.store import remove_trees
    doomed = [plan.run_dir]
    for d in plan.remove_dirs:  # --rm: out of every listing at once (a record half removed would read as damaged)
        aside = os.path.join(os.path.dirname(d), f".del-{os.path.basename(d)}")
        try:
            os.rename(d, aside)
            doomed.append(aside)
        except OSError:
            doomed.append(d)
    try:
        remove_trees([d for d in doomed if os.path.lexists(d)])
    except OSError:
        pass


def _mark(ch: Channel, name: str) -> None:
    if timing.FILE:
        ch.send("mark", name=name, t=time.monotonic())


def _wait(pid: int) -> int:
    while True:
        wpid, status = os.waitpid(-1, 0)
        if wpid == pid:
            return status


def stop_on_term(pid: int, stop_timeout: int | None):
    """The keeper's SIGTERM handler. Nothing of rootless signals the keeper itself: a SIGTERM to it
    comes from whatever ends a whole process tree (Slurm's scancel or time limit, a unit stopped,
    a shutdown), and SIGKILL follows (Slurm's KillWait). It is a ``stop``: SIGTERM to PID 1, then
    SIGKILL after the container's stop timeout (default 10 s; negative: never), so the container
    ends while the keeper can still unmount and remove what it must (``--rm``)."""
    def handle(_sig: int, _frame) -> None:
        kill_quietly(pid, signal.SIGTERM)
        timeout = 10 if stop_timeout is None else stop_timeout
        if timeout == 0:
            kill_quietly(pid, signal.SIGKILL)
        elif timeout > 0 and signal.getitimer(signal.ITIMER_REAL)[0] == 0:  # the first SIGTERM's deadline holds
            signal.signal(signal.SIGALRM, lambda _s, _f: kill_quietly(pid, signal.SIGKILL))
            signal.setitimer(signal.ITIMER_REAL, timeout)
    return handle


def kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _start_time(pid: int) -> str:
    return state.pid_start_time(pid, zombie_ok=True)  # our own child: it may have exited already


# ---- PID 1 of the container -------------------------------------------------------
def _container_entry(plan: LaunchPlan, ch: Channel, stdio: keeper.Stdio, exec_w: int, gate_r: int = -1) -> None:
    code = 125  # the error goes to the CLI first, then its message to the keeper (execpipe)
    try:
        container(plan, ch, stdio, exec_w, gate_r)
    except RootlessError as e:
        ch.send_error(e)
        execpipe.exec_failed(exec_w, e.message)
        code = e.exit_code
    except OSError as e:
        ch.send_error(err := from_oserror(Step.name, e))
        execpipe.exec_failed(exec_w, err.message)
    except BaseException as e:  # noqa: BLE001
        ch.send_error(e, Step.name)
        execpipe.exec_failed(exec_w, f"{Step.name}: {e}")
    finally:
        os._exit(code)


def _hold_stdio() -> tuple[int, ...]:
    """Copies of the caller's stdin, stdout and stderr (close-on-exec; /dev/null for a closed one)."""
    out = []
    for fd in (0, 1, 2):
        try:
            out.append(os.dup(fd))
        except OSError:
            out.append(os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC))
    return tuple(out)


def container(plan: LaunchPlan, ch: Channel, stdio: keeper.Stdio, exec_w: int = -1, gate_r: int = -1) -> None:
    spec = plan.spec
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
    if spec.init:  # its process title (python-prctl), imported while the host's files are in reach
        import prctl  # noqa: F401
    settings = plan.oci
    if settings is None and (spec.ulimits or spec.oom_score_adj is not None):  # --ulimit, --oom-score-adj
        from rootless.runtime import procsettings
        from rootless.runtime.ocispec import OciProcess
        settings = OciProcess(rlimits=procsettings.rlimits(spec.ulimits), oom_score_adj=spec.oom_score_adj)
    if settings is not None:  # likewise
        from rootless.runtime import ocistart  # noqa: F401
    Step.at("unshare the container's mount namespace")
    syscalls.unshare(syscalls.CLONE_NEWNS)  # pivot_root must not move the keeper's root

    root = plan.rootfs.merged
    owner = mountops.owner(root, spec) if any(op.data == "U" for op in plan.mounts) else None
    view = None
    if any(op.kind == "volume" for op in plan.mounts):
        Step.at("a view of the image for the volumes")
        view = mountops.image_view(root, plan.run_dir)
    for op in plan.mounts:
        Step.at(f"{op.kind} {op.target}")
        mountops.apply_op(root, op, owner, view)
    if view is not None:
        syscalls.umount2(view, syscalls.MNT_DETACH)

    Step.at("pivot_root")
    os.chdir(root)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")

    if not uts_host(spec):
        Step.at("sethostname")
        socket.sethostname(spec.hostname)
        if spec.domainname:
            Step.at("setdomainname")
            syscalls.setdomainname(spec.domainname)

    Step.at("set up stdio")
    _stdio(spec, stdio, plan.winsize)

    Step.at(f"working directory {spec.workdir}")
    os.makedirs(spec.workdir, exist_ok=True)
    if spec.read_only:
        Step.at("make the root filesystem read-only")
        mountops.remount_ro("/")  # volumes, tmpfs, /dev, /proc are mounts of their own: they stay as they are

    if plan.oci is not None:
        # the OCI face: all but the exec before `start`, as runc's, so that `create` fails on a command
        # that cannot run (not found, not executable, a user or working directory it cannot take)
        from rootless.runtime import ocistart
        if gate_r >= 0:
            ocistart.end_on_signals()  # a created container ends on kill's signal, as runc's
        Step.at("process settings")
        ocistart.prepare(plan.oci)
        env, exe = _identity_and_command(plan, ch)
        if gate_r >= 0:
            Step.at("wait for start")
            ocistart.say_ready(gate_r)  # `create` returns
            if not _read_gate(gate_r):
                os._exit(125)  # deleted before `start`
    else:
        if gate_r >= 0:
            Step.at("wait for the network")
            if not _read_gate(gate_r):
                os._exit(125)  # the keeper failed to start the network and reports it
        if settings is not None:  # --ulimit, --oom-score-adj: as the OCI face's
            from rootless.runtime import ocistart
            Step.at("process settings")
            ocistart.prepare(settings)
        env, exe = _identity_and_command(plan, ch)
    _mark(ch, "exec")
    if spec.init:
        _init_reaper(exe, spec, env, ch, exec_w)
    exec_command(exe, spec.argv, env)


def _identity_and_command(plan: LaunchPlan, ch: Channel) -> tuple[dict[str, str], str]:
    """The user, capabilities and working directory taken; the command found in the container's PATH."""
    spec = plan.spec
    env = take_identity(spec.user, spec.env, spec.workdir, plan.single_uid, ch, spec.no_new_privs, spec.caps,
                        plan.seccomp, tuple(getattr(spec, "group_add", None) or ()),
                        plan.oci.ambient if plan.oci is not None else ())
    Step.at("find the command")
    return env, proc.find_executable(spec.argv[0], env.get("PATH", ""))


def _read_gate(gate_r: int) -> bool:
    """PID 1 waits for the keeper's word that the network is ready: True, or False if the gate closed."""
    data = os.read(gate_r, 1)
    os.close(gate_r)
    return bool(data)


def uts_host(spec) -> bool:
    """``--uts host`` (``UTSMode: host``): the host's UTS namespace, its host name."""
    return ((getattr(spec, "asked", None) or {}).get("UTSMode") or "") == "host"


def ipc_host(spec) -> bool:
    """``--ipc host`` (``IpcMode: host``): the host's IPC namespace (its /dev/shm is bound: mountplan)."""
    return ((getattr(spec, "asked", None) or {}).get("IpcMode") or "") == "host"


def _stdio(spec: ContainerSpec, stdio: keeper.Stdio, winsize: bytes | None) -> None:
    os.setsid()
    if spec.tty:
        master = open_terminal(winsize)
        stdio.send_master(master)  # the keeper logs the terminal's output
        os.close(master)
    stdio.connect_child(spec.interactive)


def _init_reaper(exe: str, spec: ContainerSpec, env: dict[str, str], ch: Channel, exec_w: int = -1) -> None:
    """``--init``: stay PID 1, run the command as a child (its exec ends the keeper's wait),
    forward signals, reap zombies."""
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        if spec.tty:
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            os.tcsetpgrp(0, os.getpid())
        exec_command(exe, spec.argv, env)
    if exec_w >= 0:
        os.close(exec_w)
    ch.close()
    import prctl
    prctl.set_name("rootless-init")
    prctl.set_proctitle("rootless-init")
    for sig in FORWARDED + (signal.SIGWINCH,):
        signal.signal(sig, lambda s, _f: kill_quietly(pid, s))
    status = _wait(pid)
    os._exit(userns.exit_code(status))
