"""Container use cases: create, start, run, stop, kill, rm, wait, restart, rename, prune, commit,
export, cp, mount. Each takes the Context; none prints.

A container's keeper (``rootless.runtime.child.sandbox``) records its running and exited states
itself, so a record stays right when the CLI that started it is gone; ``rootless.runtime.records``
reconciles a record whose keeper died without recording (killed, or the machine rebooted).
"""

from __future__ import annotations

import os
import signal
import time
from collections import namedtuple

from rootless.base import config
from rootless.base.errors import Conflict, ContainerNotFound, HostError, RootlessError, UsageError
from rootless.engine import images
from rootless.runtime import events, records, state
from rootless.runtime.records import all_current, current, is_running, lookup  # noqa: F401 - the CLI's look-ups


# ---- create / start / run -------------------------------------------------------------------
def create(ctx, opts) -> dict:
    """A container record and its writable layer, from an image and the run options."""
    from rootless.runtime import logs, names, spec
    log = logs.log_config(opts.log_driver, opts.log_opts, config.log_defaults(ctx.config))  # before a pull
    from rootless.engine import networks
    opts = networks.resolve(ctx, opts)  # --network NAME of a user-defined network; unknown: said now
    if opts.limits:
        from rootless.runtime import cgroups
        cgroups.check(cgroups.detect(), opts.limits)  # a limit this host cannot hold: refused, not ignored
    image = images.ensure_image(ctx, opts.image, opts.pull, images.RegistryOptions(tls_verify=opts.tls_verify,
                                                                                      platform=opts.platform))
    image_config = ctx.store.config(image)
    ctx.store.unpack_layers(images.layer_refs(image))
    from rootless.engine import volumes
    mounts = volumes.mounts_for(ctx, opts, (image_config.get("config") or {}).get("Volumes"))
    env_texts = {}
    for path in opts.env_files:
        try:
            with open(path) as f:
                env_texts[path] = f.read()
        except OSError as e:
            raise UsageError(f"open {path}: {e.strerror.lower()}") from None
    opts = _resolve_network_refs(ctx, opts)
    if opts.network.partition(":")[0] in ("slirp4netns", "bridge", "default", "private", ""):
        ctx.slirp_features()  # no slirp4netns: say so before a container is made
    method = ctx.overlay_method()
    if opts.userns == "keep-id" and ctx.mapping.mode == "subid":
        method = _keep_id_method(ctx)
    image_name = opts.image or images.familiar_name(image)  # as given, like Docker's Config.Image
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
            rec = state.create(ctx.paths, cspec, method, generated_name=not opts.name)
        except Conflict:
            if opts.name:
                raise
            continue
        events.container(ctx.paths, "create", rec["spec"])
        return rec
    raise RootlessError("could not generate a unique container name")  # pragma: no cover


def _resolve_network_refs(ctx, opts):
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
            raise UsageError(f"no such container: {mode.container}",
                             "--network container:NAME names an existing container") from None
        network = f"container:{target['id']}"
    return opts._replace(links=tuple(links), network=network)


def _shared_hostname(ctx, cspec):
    """``container:``: the same network, the same host name as the other container."""
    from rootless.runtime.spec import merge_env
    if not cspec.network.startswith("container:"):
        return cspec
    hostname = lookup(ctx, cspec.network.partition(":")[2])["spec"].get("hostname") or cspec.hostname
    env = [e for e in cspec.env if not e.startswith("HOSTNAME=")]
    return cspec._replace(hostname=hostname, env=tuple(merge_env([f"HOSTNAME={hostname}"], env)))


def start(ctx, rec: dict, attached: bool, detach_keys: bytes = b"\x10\x11", stdin: bool = True) -> int | None:
    """Start a created or exited container; attached: its exit code; detached: None once running."""
    from rootless.base import timing
    from rootless.runtime import launcher
    if rec.get("corrupt"):
        raise RootlessError(f"cannot start container {rec['id'][:12]}: {state.DAMAGED}")
    if is_running(rec):
        raise Conflict(f"container {rec['name']} is already running")
    if rec["state"].get("mounted_by"):
        unmount(ctx, rec)  # one writer of the writable layer at a time
    if ctx.mapping.warning:
        ctx.warn(ctx.mapping.warning)
    remove = rec["spec"].get("remove")
    try:
        plan = _launch_plan(ctx, rec, attached)._replace(stdin=stdin)
        timing.mark("launch")
        code = launcher.run(plan, container_mapping(ctx, rec["spec"]), detach_keys)
    except BaseException:
        if remove:
            records.remove_container_files(ctx, rec["id"])  # a failed start of a --rm container leaves nothing
            records.remove_runtime(ctx.paths.run_dir(rec["id"]))
        raise
    finally:
        if remove and attached:
            records.remove_container_files(ctx, rec["id"])  # the keeper removed them; a failed start may not have
    timing.mark("reaped")
    return code


def _keep_id_method(ctx) -> str:
    """keep-id shifts the ids of the store's files: only fuse-overlayfs can show them unshifted."""
    from layers import overlay
    if not overlay.probe(ctx.paths, ctx.userns_call).fuse_ok:
        raise HostError("--userns=keep-id needs fuse-overlayfs, which does not work here",
                        "install fuse-overlayfs and make /dev/fuse usable (see `rootless info`)")
    return "fuse"


def container_mapping(ctx, spec: dict):
    """The container's id map: the store's, or with ``--userns=keep-id`` the user's ids kept."""
    if spec.get("userns") != "keep-id":
        return ctx.mapping
    from rootless.base import idmap
    return idmap.keep_id(ctx.mapping, os.getuid(), os.getgid())


def _keep_id_rootfs(ctx, rec: dict, plan):
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


def _launch_plan(ctx, rec: dict, attached: bool):
    from netstack import etcfiles
    from rootless.engine import volumes
    from rootless.runtime import child, mountplan, network, terminal
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
    return child.LaunchPlan(
        spec=cspec, rootfs=_keep_id_rootfs(ctx, rec, records.rootfs_plan(ctx, rec)), net=net,
        mounts=tuple(mountplan.plan(etc_files, own_netns=net.kind != "host", devices=_devices(cspec),
                                    privileged=cspec.privileged, apt_sandbox=apt_sandbox,
                                    account=_keep_id_account(run_dir) if cspec.userns == "keep-id" else None,
                                    pts_gid=5 if ctx.mapping.mode == "subid" else None,
                                    volumes=tuple(volumes.plan_entry(ctx, m) for m in cspec.mounts))),
        run_dir=run_dir, paths=ctx.paths,
        # --rm: the container and its anonymous volumes (Docker's rule) go when it ends
        remove_dirs=((ctx.paths.container(cid),) + tuple(ctx.paths.volume(m["name"]) for m in cspec.mounts
                                                         if m.get("anonymous")) if cspec.remove else ()),
        winsize=terminal.terminal_size() if cspec.tty and attached else None,
        single_uid=ctx.mapping.mode == "single",
        attached=attached,
        seccomp=seccomp_program(ctx, rec["spec"]),
    )


def _devices(cspec) -> tuple:
    """``--device`` nodes, and with ``--privileged`` the host devices this user may open (now:
    the node's permissions may have changed since ``create``)."""
    if not cspec.privileged:
        return tuple(tuple(d) for d in cspec.devices)
    from rootless.runtime import mountplan, security
    skip = set(mountplan.DEV_NODES) | set(mountplan.DEV_LINKS) | {"pts", "shm", "mqueue", "console"}
    return security.host_devices(skip=skip) + tuple(tuple(d) for d in cspec.devices)


def run(ctx, opts, detach: bool, detach_keys: bytes = b"\x10\x11") -> int | str:
    """``run``: the exit code (foreground) or the container id (detached)."""
    from rootless.base import timing
    timing.mark("engine")
    rec = create(ctx, opts)
    code = start(ctx, rec, attached=not detach, detach_keys=detach_keys)
    timing.mark("done")
    timing.dump()
    return rec["id"] if detach else code


# ---- exec / logs ------------------------------------------------------------------------------
def check_user(ctx, user: str | None) -> None:
    """A numeric ``-u`` that no process could have here is refused before anything starts (in a
    single-uid map the container runs as root, with a warning, whatever the user)."""
    from rootless.runtime import users
    subid = ctx.mapping.mode == "subid"
    users.check(user or "", sum(r.count for r in ctx.mapping.uids) if subid else None,
                sum(r.count for r in ctx.mapping.gids) if subid else None)


def exec_in(ctx, rec: dict, argv: list[str], env_args: list[str], user: str | None, workdir: str | None,
            tty: bool, interactive: bool, detach: bool) -> int | None:
    """``exec``: a process in the running container; its exit code (None: detached)."""
    from rootless.runtime import execute, terminal
    from rootless.runtime.spec import merge_env_arg
    check_user(ctx, user)
    extra = [e for arg in env_args for e in merge_env_arg(arg, dict(os.environ))]
    return execute.run(rec, list(argv), extra, user, workdir, tty, interactive, detach,
                       ctx.mapping.mode == "single", terminal.terminal_size() if tty else None,
                       seccomp_program(ctx, rec["spec"]))


def seccomp_program(ctx, spec: dict) -> bytes | None:
    """The BPF program of a container's seccomp profile and root emulation (None: neither),
    compiled once per profile and capabilities and kept in the runtime directory."""
    from rootless.runtime import seccompprofile
    setting = False if spec.get("privileged") else spec.get("seccomp", True)
    return seccompprofile.program(setting, spec.get("caps"), ctx.paths.runroot, emulates_root(ctx, spec))


def emulates_root(ctx, spec: dict) -> bool:
    """Root emulation: asked for, or (auto) in a single-uid user namespace."""
    mode = spec.get("root_emulation") or "auto"
    return mode == "on" or (mode == "auto" and ctx.mapping.mode == "single")


def log_entries(ctx, rec: dict, follow: bool, tail: int | None, since: str | None, until: str | None):
    """``logs``: the entries of the container's log, rotated files included (an iterator that
    waits for more while the container runs, with ``follow``); ``since``/``until`` as Docker
    takes them. A container removed meanwhile ends the iterator, as in Docker."""
    from rootless.runtime import logs
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
    if follow:
        return logs.follow_batches(path, lambda: _still_running(ctx, rec["id"]), since_ns=since_ns, tail=tail,
                                   until_ns=until_ns, fmt=driver)
    return logs.read(path, tail=tail, since_ns=since_ns, until_ns=until_ns, fmt=driver)


def _still_running(ctx, cid: str) -> bool:
    try:
        return is_running(lookup(ctx, cid))
    except ContainerNotFound:  # removed (rm -f): nothing more will come
        return False


def daemon_hint(ctx, rec: dict) -> str | None:
    """The hint for a container whose main process left daemons behind (its log ends early)."""
    try:
        error = lookup(ctx, rec["id"])["state"].get("error")
    except ContainerNotFound:
        return None
    return state.DAEMON_HINT if error == state.DAEMON_HINT else None


# ---- stop / kill / wait / rm ------------------------------------------------------------------
def signal_number(name: str | int) -> int:
    """``KILL``, ``SIGKILL``, ``9``: a signal this kernel has (UsageError for anything else)."""
    s = str(name).upper().removeprefix("SIG")
    if s.isascii() and s.isdigit():
        if int(s) in {int(v) for v in signal.valid_signals()}:
            return int(s)
        raise UsageError(f"invalid signal: {name}", "use a name (TERM, KILL, HUP, ...) or a number from 1 to 64")
    try:
        return int(signal.Signals["SIG" + s])
    except KeyError:
        raise UsageError(f"invalid signal: {name}") from None


def kill(ctx, rec: dict, sig: str | int = "KILL") -> None:
    if not is_running(rec):
        raise Conflict(f"cannot kill container {rec['name']}: it is not running")
    signum = signal_number(sig)
    events.container(ctx.paths, "kill", rec["spec"], signal=signum)  # before the die it may cause
    try:
        os.kill(rec["state"]["pid"], signum)
    except ProcessLookupError:
        pass


def wait(ctx, rec: dict, timeout: float | None = None) -> dict:
    """Block until the container is no longer running; its record (status "removed" if it went
    meanwhile, with its exit code: what the keeper said, else 137 for a container that was running)."""
    if timeout is None and is_running(rec):
        code = _exit_from_keeper(ctx, rec)
        if code is not None:
            try:
                return current(ctx, state.lookup(ctx.paths, rec["id"]))
            except ContainerNotFound:
                return dict(rec, state=dict(rec["state"], status="removed", exit_code=code))
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            rec = current(ctx, state.lookup(ctx.paths, rec["id"]))
        except ContainerNotFound:  # removed (rm -f, --rm) before its end was seen
            st = rec["state"]
            code = st.get("exit_code", 0) if st.get("status") == "exited" else records.UNKNOWN_EXIT
            return dict(rec, state=dict(st, status="removed", exit_code=code))
        if not is_running(rec):
            return rec
        if deadline is not None and time.monotonic() >= deadline:
            return rec
        _wait_for_pid(rec["state"].get("keeper", 0), delay)
        delay = min(delay * 2, 0.1)


def _exit_from_keeper(ctx, rec: dict) -> int | None:
    """The exit code the keeper tells its attach clients at the end (None: it could not be asked,
    or it ended without saying)."""
    from rootless.runtime import keeper
    try:
        sock = keeper.connect(ctx.paths.run_dir(rec["id"]))
    except OSError:
        return None
    try:
        while True:
            msg = sock.recv(65537)
            if not msg:
                return None
            if msg[:1] == keeper.EXIT:
                return int(msg[1:])
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def _wait_for_pid(pid: int, seconds: float) -> None:
    """Sleep up to ``seconds``, returning early when ``pid`` exits (pidfd where the kernel has it)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        time.sleep(seconds)
        return
    try:
        import select
        select.select([fd], [], [], seconds)
    finally:
        os.close(fd)


def stop(ctx, rec: dict, timeout: float | None = None) -> None:
    """The image's STOPSIGNAL (default SIGTERM), ``timeout`` seconds (default 10), then SIGKILL."""
    if not is_running(rec):
        return
    spec = rec.get("spec", {})
    kill(ctx, rec, spec.get("stop_signal") or "TERM")
    rec = wait(ctx, rec, 10 if timeout is None else timeout)
    if is_running(rec):
        kill(ctx, rec, "KILL")
        wait(ctx, rec)
    _settled(ctx, rec["id"])
    events.container(ctx.paths, "stop", rec["spec"])


def _settled(ctx, cid: str) -> None:
    """Wait until a change of the container's state in progress is complete: the keeper records
    the exit and writes ``die`` under the container's lock, so an event written after this comes
    after that ``die`` in the log."""
    from rootless.base import locking
    try:
        with locking.locked(ctx.paths.container_lock(cid), timeout=5):
            pass
    except (OSError, RootlessError):  # gone (--rm), or a stuck holder: no order to keep
        pass


def remove(ctx, rec: dict, force: bool, volumes: bool = False) -> None:
    """``rm``: the container, and with ``volumes`` (``-v``) its anonymous volumes."""
    # a damaged record says nothing: its keeper, if one runs, is found by its attach socket
    keeper = records.keeper_of(ctx, rec["id"]) if rec.get("corrupt") else 0
    if (keeper or is_running(rec)) and not force:
        raise Conflict(f"you cannot remove a running container {rec['id']}. Stop the container before "
                       "attempting removal or force remove")
    if keeper:
        records.kill_keeper_tree(keeper)
    if rec["state"].get("mounted_by"):
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


def restart(ctx, rec: dict, timeout: float | None) -> None:
    stop(ctx, rec, timeout)
    start(ctx, lookup(ctx, rec["id"]), attached=False)
    events.container(ctx.paths, "restart", rec["spec"])


def rename(ctx, rec: dict, new_name: str) -> None:
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


def prune(ctx) -> list[str]:
    removed = []
    for rec in all_current(ctx):
        if not is_running(rec):
            remove(ctx, rec, force=False)
            removed.append(rec["id"])
    return removed


# ---- files: commit, export, cp ------------------------------------------------------------------
def commit(ctx, rec: dict, ref: str | None, author: str | None, message: str | None,
           changes: list[str]) -> str:
    """A new image: the container's image plus its writable layer (pause-free: a running container
    keeps running, and what it writes during the commit may or may not be in the layer)."""
    import json

    from layers import imageconfig, reference
    from layers.archive import MT_LAYER_TAR
    from layers.store import LayerRef, now_iso
    from rootless.runtime import fsaccess
    spec = rec["spec"]
    base = ctx.store.resolve(spec["image_id"])
    base_config = ctx.store.config(base)
    container_config = imageconfig.apply_changes(
        imageconfig.container_config_from_spec(spec, base_config.get("config") or {}), changes)
    tags = []
    if ref:
        r = reference.parse(ref)
        tags = [f"{r.repository}:{r.tag or 'latest'}"]
    squash = rec.get("rootfs_method") == "copy"  # no writable layer apart: the whole tree becomes one
    src = ctx.paths.copy_rootfs(rec["id"]) if squash else ctx.paths.upper(rec["id"])
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    tmp = os.path.join(ctx.paths.tmp, f"commit-{rec['id'][:12]}-{os.getpid()}.tar")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            info = ctx.userns_call(fsaccess.tar_layer, src, fd, squash)
        finally:
            os.close(fd)
        with open(tmp, "rb") as f:
            blob, _size, _added = ctx.store.put_blob(f, expected=info["diff_id"], what="commit")
    finally:
        os.unlink(tmp)
    layer = LayerRef(info["diff_id"], blob, MT_LAYER_TAR, info["size"])
    ctx.store.unpack_layers([layer])
    base_for = dict(base_config, rootfs={"type": "layers", "diff_ids": []}, history=[]) if squash else base_config
    config = imageconfig.committed_config(
        base_for, container_config, info["diff_id"], author=author, comment=message, created=now_iso(),
        created_by=f"rootless commit {rec['name']}" + (f" ({message})" if message else ""))
    layers = ([] if squash else images.layer_refs(base)) + [layer]
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    ctx.store.put_blob_bytes(config_bytes)
    image, _ = ctx.store.register(config_bytes, layers, tags)
    return image["id"]


def export(ctx, rec: dict, out_fd: int) -> None:
    from rootless.runtime import fsaccess
    fsaccess.call(ctx, rec, fsaccess.export_tree, out_fd)


class PathNotFound(RootlessError):
    """A path missing in a container (the API's 404)."""

    exit_code = 1


class ReadOnlyPath(RootlessError):
    """A destination on a read-only volume or mount (the API's 403)."""

    exit_code = 1


def _cp_mounts(ctx, rec: dict) -> tuple:
    """The container's volumes and binds, for ``cp`` to or from it while it is stopped (Docker
    mounts them; ``export`` leaves them out)."""
    from rootless.engine import volumes
    return tuple(volumes.plan_entry(ctx, m) for m in rec["spec"].get("mounts", ()) if m.get("type") != "tmpfs")


def copy_out(ctx, rec: dict, src: str, dest: str, follow_link: bool = False) -> None:
    """``cp CONTAINER:SRC DEST``: into DEST if it is a directory, else as DEST; a symlink SRC is
    copied as a link unless ``follow_link`` (``-L``); DEST ``-``: the tar on stdout."""
    import sys
    import tempfile

    from layers.store import remove_trees
    from layers.unpack import unpack_layer
    from rootless.runtime import fsaccess
    if dest == "-":
        sys.stdout.flush()
        copy_out_tar(ctx, rec, src, sys.stdout.fileno(), follow_link)
        return
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as f:
        fsaccess.call(ctx, rec, fsaccess.tar_tree, src, os.dup(f.fileno()), follow_link, mounts=_cp_mounts(ctx, rec))
        name = os.path.basename(src.rstrip("/")) or "."
        target_dir = dest if os.path.isdir(dest) else os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(target_dir):
            raise RootlessError(f"no such directory: {target_dir}", exit_code=1)
        if name == "." and os.path.isdir(dest):  # SRC/. (or /): its contents into DEST, as Docker does
            f.seek(0)
            unpack_layer(f.fileno(), dest, what="cp", archive=True)  # never through a link DEST holds
            return
        tmp = tempfile.mkdtemp(dir=target_dir, prefix=".rootless-cp-")
        try:
            f.seek(0)
            res = unpack_layer(f.fileno(), tmp, what="cp", archive=True)
            if name == ".":  # SRC/. to a new DEST: DEST is made with its contents
                os.replace(tmp, dest)
                return
            if not os.path.lexists(os.path.join(tmp, name)) and res.get("skipped_devices"):
                raise RootlessError(f"cannot copy {src}: it is a device node, which cannot be made outside the "
                                    "container", f"copy it as a tar instead: rootless cp CONTAINER:{src} -",
                                    exit_code=1)
            if not os.path.lexists(os.path.join(tmp, name)):  # gone while it was copied
                raise RootlessError(f"could not find the file {src} in container", exit_code=1)
            os.replace(os.path.join(tmp, name), os.path.join(dest, name) if os.path.isdir(dest) else dest)
        finally:
            remove_trees([tmp])


def copy_out_tar(ctx, rec: dict, src: str, out_fd: int, follow_link: bool = False) -> None:
    """A tar of ``src`` in the container written to ``out_fd`` (``cp CONTAINER:SRC -``, the API's GET
    archive); a device node goes in as its header, as in Docker."""
    from rootless.runtime import fsaccess
    fd = os.dup(out_fd)  # the helper's to close; ours too, so that a pipe sees its end
    try:
        fsaccess.call(ctx, rec, fsaccess.tar_tree, src, fd, follow_link, mounts=_cp_mounts(ctx, rec))
    finally:
        os.close(fd)


def stat_path(ctx, rec: dict, path: str) -> dict:
    """Docker's stat of ``path`` in the container (the API's ``X-Docker-Container-Path-Stat``)."""
    from rootless.runtime import fsaccess
    info = fsaccess.call(ctx, rec, fsaccess.stat_path, path, mounts=_cp_mounts(ctx, rec))
    if info is None:
        raise PathNotFound(f"Could not find the file {path} in container {rec['name']}")
    return info


def extract_archive(ctx, rec: dict, path: str, tar: int) -> None:
    """``cp - CONTAINER:DIR`` and the API's PUT archive: the tar in the file ``tar`` (an fd, read
    from its start) unpacked into the existing directory ``path`` in the container. The whole
    archive is checked before anything is written; the unpack itself runs in the container's
    root, never through a link. Docker's errors: a missing path (404), not a directory (400)."""
    import tarfile

    from layers import tarsafe
    from layers.unpack import open_decompressed
    from rootless.base.errors import InvalidImage
    from rootless.runtime import fsaccess
    os.lseek(tar, 0, os.SEEK_SET)
    try:  # read as the unpacker will: any compression it takes
        with os.fdopen(os.dup(tar), "rb") as f, tarfile.open(fileobj=open_decompressed(f), mode="r|") as tf:
            tarsafe.check_archive(tf, "the archive")
    except InvalidImage as e:
        raise UsageError(e.message, e.hint, exit_code=1) from None
    except Exception as e:  # noqa: BLE001 - tarfile, gzip, bz2, lzma and zstandard each have their own
        if not isinstance(e, (tarfile.TarError, EOFError, OSError, ValueError)) \
                and type(e).__name__ not in ("ZstdError", "LZMAError", "error"):
            raise
        raise UsageError(f"the archive cannot be read: {e}", "send a tar stream", exit_code=1) from None
    os.lseek(tar, 0, os.SEEK_SET)
    fd = os.dup(tar)
    try:
        res = fsaccess.call(ctx, rec, fsaccess.extract_at, path, fd, writable=True, mounts=_cp_mounts(ctx, rec))
    finally:
        os.close(fd)
    if res.get("missing"):
        raise PathNotFound(f"Could not find the file {path} in container {rec['name']}")
    if res.get("not_dir"):
        raise UsageError(f"extraction point is not a directory: {path}", "give a directory as the destination",
                         exit_code=1)
    if res.get("read_only"):
        raise ReadOnlyPath(f"cannot copy to {path}: it is on a read-only volume or mount")
    if res.get("refused"):
        raise UsageError(res["refused"], exit_code=1)


def copy_in(ctx, rec: dict, src: str, dest: str) -> None:
    """``cp SRC CONTAINER:DEST``: files become the container root's (Docker's rule); SRC ``-``: a
    tar read from stdin, unpacked into the directory DEST as it is (owners kept)."""
    import sys
    import tarfile
    import tempfile

    from rootless.runtime import fsaccess
    if src == "-":
        os.makedirs(ctx.paths.tmp, exist_ok=True)
        with tempfile.TemporaryFile(dir=ctx.paths.tmp) as f:
            try:
                while chunk := sys.stdin.buffer.read(1 << 20):
                    f.write(chunk)
                f.flush()
            except OSError as e:  # a full disk: one line naming the store
                from rootless.base.errors import from_oserror
                raise from_oserror(f"keep the archive from stdin in {ctx.paths.tmp}", e) from None
            extract_archive(ctx, rec, dest, f.fileno())
        return
    if not os.path.lexists(src):
        raise RootlessError(f"no such file or directory: {src}", exit_code=1)
    name = os.path.basename(os.path.abspath(src))

    def as_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return None if info.ischr() or info.isblk() else info

    os.makedirs(ctx.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(src, arcname=name, filter=as_root)
        f.flush()
        f.seek(0)
        fsaccess.call(ctx, rec, fsaccess.untar_into, dest, os.dup(f.fileno()), name, writable=True,
                      mounts=_cp_mounts(ctx, rec))


# ---- mount / unmount: the root filesystem for chroot-like access from the host --------------------
def mount(ctx, rec: dict) -> str:
    """A path to the container's merged root filesystem, readable from the host side.

    A running container's is seen through its keeper (``/proc/KEEPER/root``); a stopped one is
    mounted by a small holder process that keeps it until ``unmount``."""
    st = rec["state"]
    if is_running(rec):
        return f"/proc/{st['keeper']}/root{ctx.paths.merged(rec['id'])}"
    holder = st.get("mounted_by", 0)
    if records.alive(holder, st.get("mounted_by_start", "")):
        return f"/proc/{holder}/root{ctx.paths.merged(rec['id'])}"
    from rootless.base import userns
    from rootless.runtime import fsaccess
    plan = records.rootfs_plan(ctx, rec)
    os.makedirs(plan.merged, exist_ok=True)
    pid, ch = userns.fork_into_userns(ctx.mapping, lambda c: fsaccess.hold_mount(plan, c))
    try:
        ch.expect("mounted")
    except BaseException:
        userns.reap(pid)
        raise
    finally:
        ch.close()
    state.update_state(ctx.paths, rec["id"], mounted_by=pid, mounted_by_start=state.pid_start_time(pid))
    return f"/proc/{pid}/root{plan.merged}"


def unmount(ctx, rec: dict) -> None:
    st = rec["state"]
    holder = st.get("mounted_by", 0)
    if records.alive(holder, st.get("mounted_by_start", "")):
        os.kill(holder, signal.SIGTERM)
        _wait_for_pid(holder, 10)
    state.update_state(ctx.paths, rec["id"], mounted_by=0, mounted_by_start="")


# ---- resource limits: stats, update --------------------------------------------------------------
StatsRow = namedtuple(
    "StatsRow", "id name cpu_percent mem_usage mem_limit mem_percent net_rx net_tx block_read block_write pids")


def stats(ctx, recs: list[dict], interval: float = 0.5) -> list[StatsRow]:
    """One line per running container, from its cgroup: CPU % over ``interval`` seconds (100% is
    one CPU, as Docker counts), memory use and limit, network bytes (the container's interfaces
    but loopback), block I/O, processes. A container without a cgroup (the host delegates none)
    shows what its processes' /proc tells (memory, processes) and zeros elsewhere."""
    import time as time_

    from rootless.runtime import cgroups
    running = [r for r in recs if is_running(r)]
    first = {r["id"]: _sample(r) for r in running}
    t0 = time_.monotonic()
    if running:
        time_.sleep(interval)
    elapsed = time_.monotonic() - t0
    rows = []
    for r in running:
        a, b = first[r["id"]], _sample(r)
        if a is None or b is None:
            continue
        cpu = (b.cpu_usec - a.cpu_usec) / 1e6 / elapsed * 100 if elapsed > 0 else 0.0
        rx, tx = _net_bytes(r["state"]["pid"])
        limit = b.memory_limit or cgroups.host_memory()
        rows.append(StatsRow(r["id"], r["name"], cpu, b.memory, limit, 100.0 * b.memory / limit if limit else 0.0,
                             rx, tx, b.io_read, b.io_write, b.pids))
    return rows


def _sample(rec: dict):
    from rootless.runtime import cgroups
    where = rec["state"].get("cgroup")
    if where and os.path.isdir(where):
        return cgroups.sample(where)
    pid = rec["state"].get("pid") or 0
    return _proc_sample(pid)


def _proc_sample(pid: int):
    """Without a cgroup: PID 1 and its descendants from /proc (memory = their RSS)."""
    from rootless.runtime import cgroups
    kids: dict[int, list[int]] = {}
    stat: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            stat[int(d)] = fields
            kids.setdefault(int(fields[1]), []).append(int(d))
    if pid not in stat:
        return None
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += kids.get(p, [])
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = sum(int(stat[p][11]) + int(stat[p][12]) for p in tree) * 1_000_000 // ticks
    rss = sum(int(stat[p][21]) for p in tree) * os.sysconf("SC_PAGE_SIZE")
    return cgroups.Sample(cpu, rss, 0, len(tree), 0, 0)


def _net_bytes(pid: int) -> tuple[int, int]:
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = rest.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def update(ctx, rec: dict, limits: dict) -> None:
    """``update``: new limits for a container: written into its cgroup when it runs, kept in its
    record for its next start either way."""
    from rootless.runtime import cgroups
    if rec.get("corrupt"):
        raise RootlessError(f"cannot update container {rec['id'][:12]}: {state.DAMAGED}")
    merged = dict(rec["spec"].get("limits") or {})
    merged.update(limits)
    cgroups.parse_consistency(merged)
    if is_running(rec):
        where = rec["state"].get("cgroup")
        if not where:
            cgroups.check(cgroups.detect(), limits)
            raise RootlessError(f"container {rec['name']} runs without a cgroup of its own: restart it to apply limits",
                                "`rootless restart` it: the new limits are kept for its next start", exit_code=1)
        cgroups.update(where, limits)
    else:
        cgroups.check(cgroups.detect(), merged)
    state.update_spec(ctx.paths, rec["id"], limits=merged)
