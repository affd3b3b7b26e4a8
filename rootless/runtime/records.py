"""Container records as they are now: a record whose keeper died without recording its exit
(killed, or the machine restarted) is reconciled on sight, and what a record implies (its root
filesystem plan) is derived here, once, for the use cases and the runtime alike.
"""

from __future__ import annotations

import os
import signal
import time

from rootless.base.clock import now_iso
from rootless.runtime import state

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from layers.overlay import RootfsPlan
    from rootless.runtime import Context
    from rootless.runtime.state import ContainerRecord

UNKNOWN_EXIT = 137  # the keeper died without recording the exit: as if killed
KEEPER_DIED = "the container's keeper died (killed, or the machine restarted)"


def current(ctx: Context, rec: ContainerRecord) -> ContainerRecord:
    """The record with a dead keeper reconciled: exited, runtime files and helpers gone."""
    st = rec.get("state", {})
    if st.get("status") == "restarting":
        return _restarting(ctx, rec)
    if st.get("status") != "running" or alive(st.get("keeper", 0), st.get("keeper_start", "")):
        return rec
    cid = rec["id"]
    kill_helpers(ctx.paths.merged(cid))
    remove_runtime(ctx.paths.run_dir(cid))
    if rec.get("spec", {}).get("remove"):
        remove_container_files(ctx, cid)
        return {**rec, "state": {**st, "status": "removed"}}
    changes: dict[str, Any] = dict(status="exited", pid=0, keeper=0, exit_code=UNKNOWN_EXIT,
                   error=KEEPER_DIED,
                   finished_at=now_iso())
    try:
        return state.update_state(ctx.paths, cid, **changes) or rec
    except OSError as e:
        from rootless.base.errors import is_no_space
        if not is_no_space(e):
            raise
        # A full disk: recording it is only a convenience (every reader reconciles again), and a
        # read-only command (ps -a, inspect, rm -f) must not fail for it.
        return {**rec, "state": {**st, **changes}}  # type: ignore[typeddict-item]  # changes: state keys


def _restarting(ctx: Context, rec: ContainerRecord) -> ContainerRecord:
    """A container waiting for its restart, as it is: exited if its restart monitor is gone."""
    from rootless.runtime import restart
    if not restart.stale(ctx.paths, rec, time.time()):
        return rec
    try:
        return state.update_state(ctx.paths, rec["id"], status="exited") or rec
    except OSError:
        return {**rec, "state": {**rec["state"], "status": "exited"}}


def lookup(ctx: Context, ref: str) -> ContainerRecord:
    return current(ctx, state.lookup(ctx.paths, ref))


def all_current(ctx: Context) -> list[ContainerRecord]:
    """Every container (damaged records too, as dead ones that ``rm -f`` removes)."""
    recs = [current(ctx, r) for r in state.all_records(ctx.paths)]
    return [r for r in recs if r["state"].get("status") != "removed"]


def keeper_of(ctx: Context, cid: str) -> int:
    """The pid of a container's keeper found without its record: the process listening on its
    attach socket (SO_PEERCRED); 0 if none answers."""
    from rootless.runtime import keeperclient
    try:
        link = keeperclient.connect(ctx.paths.run_dir(cid))
    except OSError:
        return 0
    try:
        return link.peer_pid()
    finally:
        link.close()


def kill_keeper_tree(keeper: int) -> None:
    """End a container whose record is lost: SIGKILL its processes (the keeper's children: PID 1
    and the network helpers), then wait for the keeper, which unmounts and exits."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == keeper:
                try:
                    os.kill(int(d), signal.SIGKILL)
                except OSError:
                    pass
    try:
        fd = os.pidfd_open(keeper)
    except OSError:
        return
    try:
        import select
        if not select.select([fd], [], [], 10)[0]:
            os.kill(keeper, signal.SIGKILL)
    finally:
        os.close(fd)


def is_running(rec: ContainerRecord) -> bool:
    return rec["state"].get("status") == "running"


def alive(pid: int, start: str) -> bool:
    return bool(pid) and state.pid_start_time(pid) == start


def wait_for_pid(pid: int, seconds: float) -> None:
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


def kill_helpers(merged: str) -> None:
    """fuse-overlayfs outlives a keeper killed with SIGKILL; it names the mount point."""
    needle = merged.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"fuse-overlayfs") and needle in args:
            try:
                os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass


def remove_runtime(run_dir: str) -> None:
    import shutil
    shutil.rmtree(run_dir, ignore_errors=True)


def remove_container_files(ctx: Context, cid: str) -> None:
    from layers.store import remove_trees
    from rootless.runtime import state
    cdir = ctx.paths.container(cid)
    rec = state.read(ctx.paths, cid)
    where = rec["state"].get("cgroup") if rec is not None else None
    if where:  # a directory below a delegated cgroup (a systemd scope goes by itself)
        from rootless.runtime import cgroups
        cgroups.remove(where)
    if os.path.isdir(cdir):
        doomed = os.path.join(ctx.paths.containers, f".del-{cid}")
        os.rename(cdir, doomed)  # gone from every listing at once
        ctx.userns_call(remove_trees, [doomed])


def rootfs_plan(ctx: Context, rec: ContainerRecord) -> RootfsPlan:
    """Where a container's root filesystem comes from and goes (pure: nothing is written)."""
    from layers.overlay import RootfsPlan
    cid = rec["id"]
    return RootfsPlan(method=rec.get("rootfs_method", "kernel"),
                      lowers=tuple(ctx.store.layer_dir(d) for d in reversed(rec["spec"]["layers"])),
                      upper=ctx.paths.upper(cid), work=ctx.paths.work(cid), merged=ctx.paths.merged(cid),
                      copy_dir=ctx.paths.copy_rootfs(cid),
                      # a build's RUN step: its writable layer needs no durability until it is a layer
                      volatile=(rec["spec"].get("labels") or {}).get("io.rootless.build") == "step")
