"""Container use cases, their life: create, start, run, exec, logs, stop, kill, rm, wait, restart,
rename, prune. Each takes the Context; none prints. A container's files (commit, export, cp,
mount) are ``rootless.engine.containerfs``'s; its resources (stats, update)
``rootless.engine.containerstats``'s.

A container's keeper (``rootless.runtime.child.sandbox``) records its running and exited states
itself, so a record stays right when the CLI that started it is gone; ``rootless.runtime.records``
reconciles a record whose keeper died without recording (killed, or the machine rebooted).
"""

from __future__ import annotations

import os
import signal
import time

from rootless.base import config
from rootless.base.errors import (
    Conflict,
    ContainerNotFound,
    HostError,
    RootlessError,
    UsageError,
)
from rootless.engine import images
from rootless.runtime import events, records, state
from rootless.runtime.records import all_current, current, is_running, lookup  # noqa: F401 - the CLI's look-ups

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord


# ---- create / start / run -------------------------------------------------------------------
def create(ctx: Context, opts) -> ContainerRecord:
    """A container record and its writable layer, from an image and the run options."""
    from rootless.runtime import logs
    log = logs.log_config(opts.log_driver, opts.log_opts, config.log_defaults(ctx.config))  # before a pull
    from rootless.engine import networks
    opts = networks.resolve(ctx, opts)  # --network NAME of a user-defined network; unknown: said now
    if opts.endpoint:
        networks.check_endpoint(ctx, opts)  # Docker's refusals, before anything is made
    if opts.limits:
        from rootless.runtime import cgroups
        cgroups.check(cgroups.detect(), opts.limits)  # a limit this host cannot hold: refused, not ignored
    image = images.ensure_image(ctx, opts.image, opts.pull, images.RegistryOptions(tls_verify=opts.tls_verify,
                                                                                      platform=opts.platform,
                                                                                      quiet=opts.quiet))
    image_config = ctx.store.config(image)
    ctx.store.unpack_layers(images.layer_refs(image))
    from rootless.engine import volumes
    mounts = volumes.mounts_for(ctx, opts, (image_config.get("config") or {}).get("Volumes"))
    env_texts = {path: _read_env_file(path) for path in opts.env_files}
    opts = _resolve_network_refs(ctx, opts)
    if opts.network.partition(":")[0] in ("slirp4netns", "bridge", "default", "private", ""):
        ctx.slirp_features()  # no slirp4netns: say so before a container is made
    method = ctx.overlay_method()
    if opts.userns == "keep-id" and ctx.mapping.mode == "subid":
        method = _keep_id_method(ctx)
    image_name = opts.image or images.familiar_name(image)  # as given, like Docker's Config.Image
    cidfile = _open_cidfile(opts.cidfile) if opts.cidfile else None
    try:
        rec = _create_record(ctx, opts, image, image_config, image_name, env_texts, log, mounts, method)
    except BaseException:
        if cidfile is not None:
            os.close(cidfile)
            os.unlink(opts.cidfile)
        raise
    if opts.endpoint:
        rec = networks.set_endpoint(ctx, rec, opts.networks[0][0], opts.endpoint)
    if cidfile is not None:
        try:
            os.write(cidfile, rec["id"].encode())
        finally:
            os.close(cidfile)
    events.container(ctx.paths, "create", rec["spec"])
    return rec


def _read_env_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"open {path}: {str(e.strerror or e).lower()}") from None


def _open_cidfile(path: str) -> int:
    """``--cidfile``: made empty before the container (Docker's CLI: a file already there is
    refused, as another container's), filled once the container is."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise UsageError(f"container ID file found, make sure the other container isn't running or delete {path}")\
            from None
    except OSError as e:
        raise UsageError(f"failed to create the container ID file: open {path}: {str(e.strerror or e).lower()}") \
            from None


def _create_record(ctx: Context, opts, image: dict, image_config: dict, image_name: str, env_texts: dict,
                   log: dict, mounts, method: str) -> ContainerRecord:
    from rootless.runtime import names, spec
    taken: set[str] = set()  # the store is scanned (under its lock) by state.create; again only on a clash
    for attempt in range(5):
        cid = names.new_id()
        if attempt and not opts.name:
            taken = {r.get("name") for r in state.all_records(ctx.paths)}
        name = opts.name or names.generate(taken)
        cspec = _shared_hostname(ctx, spec.build(opts, cid, name, image, image_config, image_name,
                                                 dict(os.environ), env_texts, log, mounts))
        check_user(ctx, cspec.user)
        if isinstance(cspec.seccomp, dict):
            seccomp_program(ctx, cspec._asdict())  # a profile libseccomp refuses: said now, no container made
        try:
            return state.create(ctx.paths, cspec, method, generated_name=not opts.name)
        except Conflict:
            if opts.name:
                raise
            continue
    raise RootlessError("could not generate a unique container name")  # pragma: no cover


def _resolve_network_refs(ctx: Context, opts):
    """``--link NAME`` and ``--network container:NAME`` name existing containers: keep their ids."""
    from netstack import spec as netspec
    links = []
    for text in opts.links:
        link = netspec.parse_link(text)
        try:
            target = lookup(ctx, link.name)
        except RootlessError:
            raise UsageError(f"could not get container for {link.name}", "--link names an existing container") from None
        links.append(f"{target['id']}:{link.alias}")
    network = opts.network
    mode = netspec.parse_network(network)
    if mode.kind == "container":
        try:
            target = lookup(ctx, mode.container)
        except RootlessError:
            raise ContainerNotFound(f"No such container: {mode.container}",  # Docker: 404, and 125 for run
                                    "--network container:NAME names an existing container", exit_code=125) from None
        network = f"container:{target['id']}"
    return opts._replace(links=tuple(links), network=network)


def _shared_hostname(ctx: Context, cspec):
    """``container:``: the same network, the same host name as the other container."""
    from rootless.runtime.spec import merge_env
    if not cspec.network.startswith("container:"):
        return cspec
    hostname = lookup(ctx, cspec.network.partition(":")[2])["spec"].get("hostname") or cspec.hostname
    env = [e for e in cspec.env if not e.startswith("HOSTNAME=")]
    return cspec._replace(hostname=hostname, env=tuple(merge_env([f"HOSTNAME={hostname}"], env)))


def start(ctx: Context, rec: ContainerRecord, attached: bool, detach_keys: bytes = b"\x10\x11", stdin: bool = True,
          tied: bool = False, auto: bool = False, outputs: tuple[str, ...] = ("stdout", "stderr"),
          sig_proxy: bool = True) -> int | None:
    """Start a created or exited container; attached: its exit code; detached: None once running.
    ``tied`` (a build's RUN step): it dies with the attached CLI (``launchplan.LaunchPlan``).
    ``auto``: a restart made by the container's restart policy (``engine.restarts``), not the user's.
    ``outputs``: those the attached CLI shows (``run -a``); ``sig_proxy``: Docker's --sig-proxy."""
    from rootless.base import timing
    from rootless.runtime import launcher
    from rootless.runtime.terminal import hold_std_fds
    hold_std_fds()  # before any port or socket is made: none may take the number of a closed stdin
    if rec.get("corrupt"):
        raise RootlessError(f"cannot start container {rec['id'][:12]}: {state.DAMAGED}")
    if is_running(rec):
        raise Conflict(f"container {rec['name']} is already running")
    policy = rec["spec"].get("restart")
    if policy and not auto:
        from rootless.engine import restarts
        if rec["state"].get("status") == "restarting":
            raise Conflict(f"container {rec['name']} is restarting", "wait until it runs, or stop it first")
        restarts.started_by_hand(ctx, rec)
    if rec["state"].get("mounted_by"):
        from rootless.engine.containerfs import unmount
        unmount(ctx, rec)  # one writer of the writable layer at a time
    if ctx.mapping.warning:
        ctx.warn(ctx.mapping.warning)
    remove = rec["spec"].get("remove")
    try:
        plan = _launch_plan(ctx, rec, attached)._replace(stdin=stdin, tied=tied, outputs=outputs, sig_proxy=sig_proxy)
        timing.mark("launch")
        code = launcher.run(ctx, plan, container_mapping(ctx, rec["spec"]), detach_keys)
    except BaseException:
        if remove:
            records.remove_container_files(ctx, rec["id"])  # a failed start of a --rm container leaves nothing
            records.remove_runtime(ctx.paths.run_dir(rec["id"]))
        raise
    finally:
        if remove and attached and not _restarted(ctx, rec["id"]):
            records.remove_container_files(ctx, rec["id"])  # the keeper removed them; a failed start may not have
    timing.mark("reaped")
    if policy and not auto:
        from rootless.engine import restarts
        restarts.watch(ctx, rec["id"], _restart)
    return code


def _restarted(ctx: Context, cid: str) -> bool:
    """Whether a ``--rm`` container whose attached start has ended is being started again by
    ``restart`` (marked until its next start records it running) or runs again already."""
    cur = state.read(ctx.paths, cid)
    return cur is not None and bool(cur["state"].get("restarted_by_hand") or cur["state"].get("status") == "running")


def stopped(ctx: Context, filters) -> list[ContainerRecord]:
    """``start --all``: the created and exited containers the filters choose, the oldest first.
    Asked by restart policy (a reboot's ``--filter restart-policy=unless-stopped``), one stopped by
    hand with ``unless-stopped`` is left stopped, as Docker's daemon leaves it."""
    from rootless.engine import containerlist
    by_policy = any(f.startswith("restart-policy=") for f in filters)
    recs = containerlist.list_containers(ctx, containerlist.ListOptions(all=True, filters=tuple(filters)))
    return [r for r in reversed(recs) if r["state"]["status"] in ("created", "exited")
            and not (by_policy and r["state"].get("manually_stopped")
                     and (r["spec"].get("restart") or {}).get("Name") == "unless-stopped")]


def _restart(ctx: Context, rec: ContainerRecord) -> None:
    """A start by the container's restart policy (in its restart monitor)."""
    start(ctx, rec, attached=False, auto=True)


def set_restart_policy(ctx: Context, rec: ContainerRecord, text: str) -> None:
    """``update --restart``: the new policy is the record's at once; a running container gets a
    restart monitor if it had none."""
    from rootless.runtime import restart
    policy = restart.parse(text)
    if rec.get("corrupt"):
        raise RootlessError(f"cannot update container {rec['id'][:12]}: {state.DAMAGED}")
    restart.check(policy, bool(rec["spec"].get("remove")))
    state.update_spec(ctx.paths, rec["id"], restart=policy)
    if policy and is_running(rec) and not restart.monitor_alive(ctx.paths, rec["id"]):
        from rootless.engine import restarts
        restarts.watch(ctx, rec["id"], _restart)


def _keep_id_method(ctx: Context) -> str:
    """keep-id shifts the ids of the store's files: only fuse-overlayfs can show them unshifted."""
    from layers import overlay
    if not overlay.probe(ctx.paths, ctx.userns_call).fuse_ok:
        raise HostError("--userns=keep-id needs fuse-overlayfs, which does not work here",
                        "install fuse-overlayfs and make /dev/fuse usable (see `rootless info`)")
    return "fuse"


def container_mapping(ctx: Context, spec: dict):
    """The container's id map: the store's, or with ``--userns=keep-id`` the user's ids kept."""
    if spec.get("userns") != "keep-id":
        return ctx.mapping
    from rootless.base import idmap
    return idmap.keep_id(ctx.mapping, os.getuid(), os.getgid())


def _keep_id_rootfs(ctx: Context, rec: ContainerRecord, plan):
    """keep-id with subordinate ids: fuse-overlayfs shows the store's files under their image ids."""
    if rec["spec"].get("userns") != "keep-id" or ctx.mapping.mode != "subid":
        return plan
    from rootless.base import idmap
    return plan._replace(id_shift=(idmap.fuse_shift(ctx.mapping, os.getuid()),
                                   idmap.fuse_shift(ctx.mapping, os.getgid(), gids=True)))


def _keep_id_account(run_dir: str) -> tuple[str, str, str, str]:
    """keep-id: the user's passwd and group lines (added where the image lacks the ids)."""
    import grp
    import pwd
    uid, gid = os.getuid(), os.getgid()
    try:
        me = pwd.getpwuid(uid)
        name, home = me.pw_name, me.pw_dir
    except KeyError:
        name, home = f"user{uid}", "/"
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = name
    return (f"{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh", f"{group}:x:{gid}:",
            os.path.join(run_dir, "passwd"), os.path.join(run_dir, "group"))


def _launch_plan(ctx: Context, rec: ContainerRecord, attached: bool):
    from netstack import etcfiles
    from rootless.engine import volumes
    from rootless.runtime import launchplan, mountplan, network, terminal
    from rootless.runtime.spec import ContainerSpec, merge_env
    cspec = ContainerSpec.from_json(rec["spec"])
    cid = cspec.id
    run_dir = ctx.paths.run_dir(cid)
    os.makedirs(run_dir, 0o700, exist_ok=True)
    net = network.prepare(ctx, cspec)
    try:
        etc_files = etcfiles.write(run_dir, network.etc_files(ctx, cspec, net))
    except BaseException:
        network.close(net)
        raise
    if net.links:
        cspec = cspec._replace(env=tuple(merge_env(network.link_env(cspec, net), list(cspec.env))))
    apt_sandbox = None
    if emulates_root(ctx, rec["spec"]):  # written beside the /etc files, the same way
        apt_sandbox = etcfiles.write(run_dir, {mountplan.APT_SANDBOX_CONF: mountplan.APT_SANDBOX_TEXT})[
            mountplan.APT_SANDBOX_CONF]
    return launchplan.LaunchPlan(
        spec=cspec, rootfs=_keep_id_rootfs(ctx, rec, _start_rootfs(ctx, rec)), net=net,
        mounts=tuple(mountplan.plan(etc_files, own_netns=net.kind != "host", devices=_devices(cspec),
                                    privileged=cspec.privileged, apt_sandbox=apt_sandbox,
                                    account=_keep_id_account(run_dir) if cspec.userns == "keep-id" else None,
                                    pts_gid=5 if ctx.mapping.mode == "subid" else None,
                                    pid_host=(cspec.asked or {}).get("PidMode") == "host",
                                    ipc_host=(cspec.asked or {}).get("IpcMode") == "host", shm_size=cspec.shm_size,
                                    volumes=tuple(volumes.plan_entry(ctx, m) for m in cspec.mounts))),
        run_dir=run_dir, paths=ctx.paths,
        # --rm: the container and its anonymous volumes (Docker's rule) go when it ends
        remove_dirs=((ctx.paths.container(cid),) + tuple(ctx.paths.volume(m["name"]) for m in cspec.mounts
                                                         if m.get("anonymous")) if cspec.remove else ()),
        winsize=terminal.terminal_size() if cspec.tty and attached else None,
        single_uid=ctx.mapping.mode == "single",
        attached=attached,
        seccomp=seccomp_program(ctx, rec["spec"]),
        log_owner=(os.getuid(), os.getgid()) if cspec.userns == "keep-id" and ctx.mapping.mode == "subid" else None,
    )


def _start_rootfs(ctx: Context, rec: ContainerRecord):
    """The root filesystem a start mounts. A ``--rm`` container's writable layer is deleted when
    it ends: mounted ``volatile``, its unmount syncs nothing (it waited for the whole filesystem
    of the store to be written back). Only a start's mount: the kernel refuses to mount again a
    layer once mounted volatile (``cp`` into a created container mounts it before the start)."""
    plan = records.rootfs_plan(ctx, rec)
    return plan._replace(volatile=True) if rec["spec"].get("remove") else plan


def _devices(cspec) -> tuple:
    """``--device`` nodes, and with ``--privileged`` the host devices this user may open (now:
    the node's permissions may have changed since ``create``)."""
    if not cspec.privileged:
        return tuple(tuple(d) for d in cspec.devices)
    from rootless.runtime import mountplan, security
    skip = set(mountplan.DEV_NODES) | set(mountplan.DEV_LINKS) | {"pts", "shm", "mqueue", "console"}
    return security.host_devices(skip=skip) + tuple(tuple(d) for d in cspec.devices)


def run(ctx: Context, opts, detach: bool, detach_keys: bytes = b"\x10\x11",
        attach: tuple[str, ...] = (), sig_proxy: bool = True) -> int | str | None:
    """``run``: the exit code (foreground; None when the detach keys left it running) or the
    container id (detached). ``attach``: ``-a``'s streams (none given: all, stdin with ``-i``)."""
    from rootless.base import timing
    timing.mark("engine")
    rec = create(ctx, opts)
    code = start(ctx, rec, attached=not detach, detach_keys=detach_keys, stdin=not attach or "stdin" in attach,
                 outputs=tuple(s for s in ("stdout", "stderr") if not attach or s in attach), sig_proxy=sig_proxy)
    timing.mark("done")
    timing.dump()
    return rec["id"] if detach else code


# ---- exec / logs ------------------------------------------------------------------------------
def check_user(ctx: Context, user: str | None) -> None:
    """A numeric ``-u`` that no process could have here is refused before anything starts (in a
    single-uid map the container runs as root, with a warning, whatever the user)."""
    from rootless.runtime import users
    subid = ctx.mapping.mode == "subid"
    users.check(user or "", sum(r.count for r in ctx.mapping.uids) if subid else None,
                sum(r.count for r in ctx.mapping.gids) if subid else None)


def exec_in(ctx: Context, rec: ContainerRecord, argv: list[str], env_args: list[str], user: str | None,
            workdir: str | None, tty: bool, interactive: bool, detach: bool,
            exec_id: str | None = None, env_files: list[str] | None = None, privileged: bool = False) -> int | None:
    """``exec``: a process in the running container; its exit code (None: detached). Docker's exec
    events come with it; ``exec_id``: the API's instance, whose ``exec_create`` was said
    (:func:`exec_created`); ``env_files``: ``--env-file``'s, before ``-e``'s; ``privileged``:
    every capability for the process (Docker's ``exec --privileged``; its seccomp program stays)."""
    from rootless.runtime import execute, terminal
    from rootless.runtime.spec import merge_env_arg, parse_env_file
    check_not_paused(rec)
    check_user(ctx, user)
    host_env = dict(os.environ)
    extra = []
    for path in env_files or ():
        extra += parse_env_file(_read_env_file(path), path, host_env)
    extra += [e for arg in env_args for e in merge_env_arg(arg, host_env)]
    if privileged:
        from rootless.runtime.security import ALL_CAPS
        rec = {**rec, "spec": {**rec["spec"], "caps": list(ALL_CAPS)}}
    return execute.run(ctx, rec, list(argv), extra, user, workdir, tty, interactive, detach,
                       ctx.mapping.mode == "single", terminal.terminal_size() if tty else None,
                       seccomp_program(ctx, rec["spec"]), exec_id)


def exec_created(ctx: Context, rec: ContainerRecord, argv: list[str]) -> str:
    """The API's exec instance made: its id, with Docker's ``exec_create`` event."""
    from rootless.runtime import events
    eid = events.new_exec_id()
    events.container(ctx.paths, events.exec_action("exec_create", argv), rec["spec"], execID=eid)
    return eid


def exec_detached(ctx: Context, rec: ContainerRecord, exec_id: str) -> None:
    """Docker's ``exec_detach`` event: the API client's detach keys left the exec running."""
    from rootless.runtime import events
    events.container(ctx.paths, "exec_detach", rec["spec"], execID=exec_id)


def seccomp_program(ctx: Context, spec: dict) -> bytes | None:
    """The BPF program of a container's seccomp profile and root emulation (None: neither),
    compiled once per profile and capabilities and kept in the runtime directory."""
    from rootless.runtime import seccompprofile
    setting = False if spec.get("privileged") else spec.get("seccomp", True)
    return seccompprofile.program(setting, spec.get("caps"), ctx.paths.runroot, emulates_root(ctx, spec))


def emulates_root(ctx: Context, spec: dict) -> bool:
    """Root emulation: asked for, or (auto) in a single-uid user namespace."""
    mode = spec.get("root_emulation") or "auto"
    return mode == "on" or (mode == "auto" and ctx.mapping.mode == "single")


def log_entries(ctx: Context, rec: ContainerRecord, follow: bool, tail: int | None, since: str | None,
                until: str | None):
    """``logs``: the entries of the container's log in blocks (``runtime.logs.LogBlock``: the
    texts of entries that share stream and time, as bytes), rotated files included (an iterator
    of lists of them that waits for more while the container runs, with ``follow``);
    ``since``/``until`` as Docker takes them. A container removed meanwhile ends the iterator,
    as in Docker."""
    from rootless.runtime import logs
    from rootless.runtime.logwrite import storage_format
    driver = (rec["spec"].get("log") or {}).get("driver", "json-file")
    if driver == "none":
        raise RootlessError("configured logging driver does not support reading",
                            f"container {rec['name']} was created with --log-driver none", exit_code=1)
    now = time.time_ns()
    try:
        since_ns = logs.parse_since(since, now) if since else None
        until_ns = logs.parse_since(until, now) if until else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    path = ctx.paths.container_log(rec["id"])
    if is_running(rec):
        _sync_log(ctx, rec)
    if follow:
        return logs.follow_blocks(path, lambda: _still_running(ctx, rec["id"]), since_ns=since_ns, tail=tail,
                                  until_ns=until_ns, fmt=storage_format(driver))
    return logs.read_blocks(path, tail=tail, since_ns=since_ns, until_ns=until_ns, fmt=storage_format(driver))


def log_details(rec: ContainerRecord) -> bytes:
    """What ``logs --details`` shows before each of this container's lines (Docker's attributes)."""
    from rootless.runtime.logwrite import detail_attrs
    spec = rec["spec"]
    return detail_attrs(spec.get("log"), spec.get("labels") or {}, list(spec.get("env") or ()))


def _sync_log(ctx: Context, rec: ContainerRecord) -> None:
    """What a running container has written is logged before it is read: its keeper drains the
    container's outputs into the log when asked (else a ``logs`` right after a quick container's
    output could find the bytes still in the pipe). A resting keeper whose pipes are empty has
    logged it all: it is not woken to say so."""
    from rootless.runtime import hibernate, keeperclient
    if rec["state"].get("keeper") and hibernate.nothing_to_log(rec["state"]["keeper"]):
        return
    try:
        link = keeperclient.connect(ctx.paths.run_dir(rec["id"]))
    except OSError:
        return
    try:
        link.sync()
    finally:
        link.close()


def _still_running(ctx: Context, cid: str) -> bool:
    try:
        return is_running(lookup(ctx, cid))
    except ContainerNotFound:  # removed (rm -f): nothing more will come
        return False


def daemon_hint(ctx: Context, rec: ContainerRecord) -> str | None:
    """The hint for a container whose main process left daemons behind (its log ends early)."""
    try:
        error = lookup(ctx, rec["id"])["state"].get("error")
    except ContainerNotFound:
        return None
    return state.DAEMON_HINT if error == state.DAEMON_HINT else None


# ---- stop / kill / wait / rm ------------------------------------------------------------------
def kill(ctx: Context, rec: ContainerRecord, sig: str | int = "KILL") -> None:
    if rec["state"].get("status") == "restarting":  # Docker's: its policy ends, no process to signal
        from rootless.engine import restarts
        rec = restarts.cancel(ctx, rec)
        if not is_running(rec):
            return
    if not is_running(rec):
        raise Conflict(f"cannot kill container {rec['name']}: it is not running")
    from rootless.runtime.procsettings import signal_number
    signum = signal_number(sig)
    if rec["spec"].get("restart"):
        from rootless.engine import restarts
        restarts.note_stopped(ctx, rec)  # a restart policy ends with a stop by hand (Docker's rule)
    events.container(ctx.paths, "kill", rec["spec"], signal=signum)  # before the die it may cause
    try:
        os.kill(rec["state"]["pid"], signum)
    except ProcessLookupError:
        pass
    if signum == signal.SIGKILL:  # Docker answers once SIGKILL took effect: the container is dead
        _wait_killed(ctx, rec)


def _wait_killed(ctx: Context, rec: ContainerRecord, timeout: float = 10) -> None:
    """Until the keeper recorded the end of a SIGKILLed container (its exit code, ``die``)."""
    rec = wait(ctx, rec, timeout)
    if not is_running(rec):
        _settled(ctx, rec["id"])


# ---- pause / unpause --------------------------------------------------------------------------
def check_not_paused(rec: ContainerRecord) -> None:
    """``exec`` into a paused container is refused, as Docker does; so is one into a container in
    its restart back-off (running, to Docker, but with no process to join)."""
    if rec["state"].get("status") == "restarting":
        raise Conflict(f"Container {rec['id']} is restarting, wait until the container is running",
                       f"`rootless stop {rec['name']}` ends its restart policy", exit_code=1)
    from rootless.runtime.pause import is_paused
    if is_paused(dict(rec["state"])):
        raise Conflict(f"Container {rec['id']} is paused, unpause the container before exec",
                       f"rootless unpause {rec['name']}")


def pause(ctx: Context, rec: ContainerRecord) -> None:
    """``pause``: every process of the running container stops (``rootless.runtime.pause``)."""
    _pausing(ctx, rec, True)


def unpause(ctx: Context, rec: ContainerRecord) -> None:
    _pausing(ctx, rec, False)


def _pausing(ctx: Context, rec: ContainerRecord, paused: bool) -> None:
    from rootless.base import atomic, locking
    from rootless.runtime import pause as pausing
    with locking.locked(ctx.paths.container_lock(rec["id"])):
        rec = current(ctx, state.lookup(ctx.paths, rec["id"]))
        st = dict(rec["state"])
        if not is_running(rec):
            raise Conflict(f"Container {rec['id']} is not running")
        if pausing.is_paused(st) == paused:
            raise Conflict(f"Container {rec['id']} is {'already paused' if paused else 'not paused'}")
        if paused:
            rec["state"]["pause_method"] = pausing.pause(st)
            rec["state"]["paused"] = rec["state"]["pid"]
        else:
            pausing.unpause(st)
            rec["state"]["paused"] = 0
        atomic.write_json(ctx.paths.container_record(rec["id"]), rec)
    events.container(ctx.paths, "pause" if paused else "unpause", rec["spec"])


def wait(ctx: Context, rec: ContainerRecord, timeout: float | None = None) -> ContainerRecord:
    """Block until the container is no longer running; its record (status "removed" if it went
    meanwhile, with its exit code: what the keeper said, else 137 for a container that was running)."""
    if timeout is None and is_running(rec):
        code = _exit_from_keeper(ctx, rec)
        if code is not None:
            try:
                return current(ctx, state.lookup(ctx.paths, rec["id"]))
            except ContainerNotFound:
                return {**rec, "state": {**rec["state"], "status": "removed", "exit_code": code}}
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            rec = current(ctx, state.lookup(ctx.paths, rec["id"]))
        except ContainerNotFound:  # removed (rm -f, --rm) before its end was seen
            st = rec["state"]
            code = st.get("exit_code", 0) if st.get("status") == "exited" else records.UNKNOWN_EXIT
            return {**rec, "state": {**st, "status": "removed", "exit_code": code}}
        if not is_running(rec):
            return rec
        if deadline is not None and time.monotonic() >= deadline:
            return rec
        records.wait_for_pid(rec["state"].get("keeper", 0), delay)
        delay = min(delay * 2, 0.1)


def wait_exit(ctx: Context, rec: ContainerRecord) -> ContainerRecord:
    """Docker's ``wait`` (condition ``not-running``, the CLI's): as :func:`wait`, but a container in
    its restart back-off counts as running (Docker's ``State.Running`` is true while it restarts):
    what ends the wait is its next exit, the next run's (whether the policy restarts it again or
    gives up) or the back-off's end by ``stop``/``kill`` (the last exit's code)."""
    if rec["state"].get("status") == "restarting":
        rec = _out_of_back_off(ctx, rec)
    return wait(ctx, rec)


def _out_of_back_off(ctx: Context, rec: ContainerRecord) -> ContainerRecord:
    """The record once it is no longer in this back-off: running again, exited, removed, or
    restarting after another run (a quick run may begin and end between two looks)."""
    mark = (rec["state"].get("finished_at"), rec["state"].get("restart_count"))
    delay = 0.005
    while True:
        try:
            now = current(ctx, state.lookup(ctx.paths, rec["id"]))
        except ContainerNotFound:  # rm -f: the wait gives the last exit's code
            return {**rec, "state": {**rec["state"], "status": "exited"}}
        st = now["state"]
        if st.get("status") != "restarting" or (st.get("finished_at"), st.get("restart_count")) != mark:
            return now
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _exit_from_keeper(ctx: Context, rec: ContainerRecord) -> int | None:
    """The exit code the keeper tells its attach clients at the end (None: it could not be asked,
    or it ended without saying)."""
    from rootless.runtime import keeperclient
    try:
        link = keeperclient.connect(ctx.paths.run_dir(rec["id"]))
    except OSError:
        return None
    try:
        return link.exit_code()
    except (OSError, ValueError):
        return None
    finally:
        link.close()


def stop(ctx: Context, rec: ContainerRecord, timeout: float | None = None, signal_: str | None = None) -> None:
    """The image's STOPSIGNAL (default SIGTERM; ``signal_``: another, ``stop -s``), ``timeout``
    seconds (default: the container's ``--stop-timeout``, else 10), then SIGKILL."""
    if rec["state"].get("status") == "restarting":
        from rootless.engine import restarts
        rec = restarts.cancel(ctx, rec)  # out of its back-off: exited, or running if it was just started
    if not is_running(rec):
        return
    spec = rec.get("spec", {})
    kill(ctx, rec, signal_ or spec.get("stop_signal") or "TERM")
    _resume_to_stop(ctx, rec)
    if timeout is None:
        timeout = 10 if spec.get("stop_timeout") is None else spec["stop_timeout"]
    rec = wait(ctx, rec, timeout)
    if is_running(rec):
        kill(ctx, rec, "KILL")
        wait(ctx, rec)
    _settled(ctx, rec["id"])
    events.container(ctx.paths, "stop", rec["spec"])


def _resume_to_stop(ctx: Context, rec: ContainerRecord) -> None:
    """A paused container goes on after its stop signal, so that it can act on it."""
    from rootless.runtime.pause import is_paused
    if is_paused(dict(rec["state"])):
        try:
            unpause(ctx, rec)
        except RootlessError:  # it ended meanwhile
            pass


def _settled(ctx: Context, cid: str) -> None:
    """Wait until a change of the container's state in progress is complete: the keeper records
    the exit and writes ``die`` under the container's lock, so an event written after this comes
    after that ``die`` in the log."""
    from rootless.base import locking
    try:
        with locking.locked(ctx.paths.container_lock(cid), timeout=5):
            pass
    except (OSError, RootlessError):  # gone (--rm), or a stuck holder: no order to keep
        pass


def remove(ctx: Context, rec: ContainerRecord, force: bool, volumes: bool = False) -> None:
    """``rm``: the container, and with ``volumes`` (``-v``) its anonymous volumes."""
    # a damaged record says nothing: its keeper, if one runs, is found by its attach socket
    keeper = records.keeper_of(ctx, rec["id"]) if rec.get("corrupt") else 0
    restarting = rec["state"].get("status") == "restarting"
    if (keeper or is_running(rec) or restarting) and not force:
        raise Conflict(f"you cannot remove a {'restarting' if restarting else 'running'} container {rec['id']}. "
                       "Stop the container before attempting removal or force remove")
    if restarting:
        from rootless.engine import restarts
        rec = restarts.cancel(ctx, rec)
    if keeper:
        records.kill_keeper_tree(keeper)
    if rec["state"].get("mounted_by"):
        from rootless.engine.containerfs import unmount
        unmount(ctx, rec)
    if is_running(rec):
        kill(ctx, rec, "KILL")
        wait(ctx, rec)
    from rootless.base import locking
    _settled(ctx, rec["id"])
    with locking.locked(ctx.paths.containers_lock):
        here = os.path.isdir(ctx.paths.container(rec["id"]))  # not if its keeper removed it (--rm)
        records.remove_container_files(ctx, rec["id"])
    records.remove_runtime(ctx.paths.run_dir(rec["id"]))
    if here:
        events.container(ctx.paths, "destroy", dict(rec.get("spec") or {}, id=rec["id"]))
    if volumes:
        from rootless.engine import volumes as volumes_uc
        volumes_uc.remove_anonymous(ctx, rec)


def remove_link(ctx: Context, ref: str) -> None:
    """``rm --link PARENT/ALIAS`` (the API's ``DELETE /containers/PARENT/ALIAS?link=true``): the
    container PARENT no longer links to ALIAS (from its next start: a running one keeps its
    sockets); the linked container stays."""
    from rootless.base import atomic, locking
    parent, _, alias = ref.strip("/").rpartition("/")
    if not parent:
        raise Conflict("Conflict, cannot remove the default link name of the container",
                       "name the link as CONTAINER/ALIAS")
    rec = lookup(ctx, parent)
    with locking.locked(ctx.paths.container_lock(rec["id"])):
        fresh = state.lookup(ctx.paths, rec["id"])
        links = [list(lk) for lk in fresh["spec"].get("links") or []]
        kept = [lk for lk in links if lk[1] != alias]
        if len(kept) == len(links):
            raise ContainerNotFound(f"Could not find entity for {ref.strip('/')}",
                                    f"see the links of {rec['name']} in its inspect (HostConfig.Links)")
        fresh["spec"]["links"] = kept
        atomic.write_json(ctx.paths.container_record(rec["id"]), fresh)


def restart(ctx: Context, rec: ContainerRecord, timeout: float | None, signal_: str | None = None) -> None:
    """``stop`` then ``start``. A ``--rm`` container is not removed by this stop (Docker's
    ``HasBeenManuallyRestarted``): its keeper finds the mark when PID 1 ends."""
    if rec.get("spec", {}).get("remove") and is_running(rec):
        state.update_state(ctx.paths, rec["id"], restarted_by_hand=True)
    stop(ctx, rec, timeout, signal_)
    start(ctx, lookup(ctx, rec["id"]), attached=False)
    events.container(ctx.paths, "restart", rec["spec"])


def rename(ctx: Context, rec: ContainerRecord, new_name: str) -> None:
    from rootless.base import atomic, locking
    from rootless.runtime import names
    names.check(new_name)
    with locking.locked(ctx.paths.containers_lock):
        for other in state.all_records(ctx.paths):
            if other.get("name") == new_name and other["id"] != rec["id"]:
                raise Conflict(f'the container name "/{new_name}" is already in use by container "{other["id"]}"',
                               "remove (or rename) that container to be able to reuse that name")
        with locking.locked(ctx.paths.container_lock(rec["id"])):
            fresh = state.lookup(ctx.paths, rec["id"])
            old_name = fresh["name"]
            fresh["name"] = new_name
            fresh["spec"]["name"] = new_name
            atomic.write_json(ctx.paths.container_record(rec["id"]), fresh)
    events.container(ctx.paths, "rename", fresh["spec"], oldName=old_name)


def prune(ctx: Context, filters=()) -> list[str]:
    """The stopped containers removed (``filters``: ``dockerview.prune_filter``'s)."""
    from rootless.engine.dockerview import prune_filter
    chosen = prune_filter(filters)
    removed = []
    for rec in all_current(ctx):
        if not chosen(rec):
            continue
        if ((rec.get("spec") or {}).get("labels") or {}).get("io.rootless.build") == "step":
            continue  # a build's own: it removes it, or `builder prune` once the build is gone
        if not is_running(rec) and rec["state"].get("status") != "restarting":  # restarting: running, to Docker
            remove(ctx, rec, force=False)
            removed.append(rec["id"])
    return removed
