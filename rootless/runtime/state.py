"""Container records: ``containers/ID/container.json``, written atomically under locks.

The containers lock guards creation and removal (and so name uniqueness); a
per-container lock guards state changes of one container.
"""

from __future__ import annotations

import os

from rootless.base import atomic, locking
from rootless.base.clock import now_iso
from rootless.base.errors import Conflict, ContainerNotFound, RootlessError
from rootless.base.paths import Paths
from rootless.runtime import names
from rootless.runtime.spec import ContainerSpec

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Literal, NotRequired, Required, TypedDict

    class ContainerState(TypedDict, total=False):
        """``rec["state"]``: where the container is in its life (``create``, then the keeper,
        ``mount``/``umount``, and the reconciling of a dead keeper in runtime.records)."""

        status: Required[str]  # created, running, restarting, exited, dead ("removed": in memory only)
        pid: Required[int]  # PID 1 of the container, 0 when not running
        pid_start: str  # its start time (pid_start_time): the pid across pid reuse
        exit_code: Required[int]
        error: Required[str]  # why it could not start or ended, "" if nothing went wrong
        started_at: Required[str]  # RFC 3339, "" if never
        finished_at: Required[str]
        keeper: int  # the pid of the process that waits for it, 0 when none
        keeper_start: str
        log_error: str  # the log driver's failure, if any
        net: dict[str, Any]  # runtime.network.state_fields: address, ports, ...
        oom_killed: bool
        cgroup: str  # the scope it was placed in
        mounted_by: int  # the process that holds `rootless mount` of it, 0 when none
        mounted_by_start: str
        paused: int  # `pause`: the PID 1 that was paused (runtime.pause.is_paused), 0 when not
        pause_method: str  # how: runtime.pause.FREEZER or SIGNALS
        restart_count: int  # restarts made by the restart policy since the last start by hand
        manually_stopped: bool  # stop/kill by hand: the restart policy waits for the next start
        restarted_by_hand: bool  # `restart` stops it to start it again: a --rm container stays (Docker's)
        health: dict[str, Any] | None  # State.Health (runtime.health): Status, FailingStreak, Log

    class ContainerRecord(TypedDict):
        """``containers/ID/container.json``: what :func:`create` writes and the state functions
        read and change; ``spec`` is a :class:`ContainerSpec`'s ``to_json()``."""

        version: int
        id: str
        name: str
        created: str
        rootfs_method: NotRequired[str]
        corrupt: NotRequired[bool]  # a damaged record's stand-in (:func:`damaged`)
        spec: dict[str, Any]
        state: ContainerState

RECORD_VERSION = 1
# The error recorded when PID 1 exited 0 within a second leaving children (see rootless/runtime/exitwatch.py).
DAEMON_HINT = ("the main process exited within a second and left processes behind: if it is a daemon "
               "that forks into the background, run it in the foreground (for example nginx's `daemon off;`)")


DAMAGED = "its record is unreadable (damaged or cut short): remove it with `rootless rm -f`"


def damaged(cid: str, created: str = "") -> ContainerRecord:
    """What stands for a record that cannot be read: a dead container that ``rm -f`` removes."""
    return {"version": RECORD_VERSION, "id": cid, "name": "", "created": created, "corrupt": True,
            "spec": {}, "state": {"status": "dead", "pid": 0, "exit_code": 0, "error": DAMAGED,
                                  "started_at": "", "finished_at": ""}}


def _well_formed(rec: object) -> bool:
    return (isinstance(rec, dict) and isinstance(rec.get("id"), str) and isinstance(rec.get("name"), str)
            and isinstance(rec.get("spec"), dict) and isinstance(rec.get("state"), dict)
            and isinstance(rec["state"].get("status"), str))


def read(paths: Paths, cid: str) -> ContainerRecord | None:
    """A container's record as it is on disk (None if it is gone or damaged)."""
    try:
        rec = _read(paths, cid)
    except (OSError, ValueError):
        return None
    return None if rec is None or rec.get("corrupt") else rec


def _read(paths: Paths, cid: str) -> ContainerRecord | None:
    try:
        rec = atomic.read_json(paths.container_record(cid))
    except FileNotFoundError:
        return None if not os.path.isdir(paths.container(cid)) else damaged(cid)
    except (OSError, ValueError):
        return damaged(cid)
    return rec if _well_formed(rec) and rec["id"] == cid else damaged(cid)


def all_records(paths: Paths) -> list[ContainerRecord]:
    try:
        ids = [d for d in os.listdir(paths.containers) if not d.startswith(".")]
    except FileNotFoundError:
        return []
    return [r for r in (_read(paths, cid) for cid in ids) if r is not None]


def create(paths: Paths, spec: ContainerSpec, rootfs_method: str, generated_name: bool) -> ContainerRecord:
    """Reserve the name and write the record; raises Conflict if the name is taken."""
    names.check(spec.name)
    rec: ContainerRecord = {
        "version": RECORD_VERSION, "id": spec.id, "name": spec.name, "created": now_iso(),
        "rootfs_method": rootfs_method, "spec": spec.to_json(),
        "state": {"status": "created", "pid": 0, "pid_start": "", "exit_code": 0,
                  "started_at": "", "finished_at": "", "error": ""},
    }
    with locking.locked(paths.containers_lock):
        for other in all_records(paths):
            if other.get("name") == spec.name:
                if generated_name:
                    raise Conflict("generated name clash", exit_code=125)
                raise Conflict(f'the container name "/{spec.name}" is already in use by container "{other["id"]}"',
                               "remove (or rename) that container to be able to reuse that name")
        # Made aside and renamed into place: a listing never sees a container without its record.
        cdir = paths.container(spec.id)
        tmp = os.path.join(paths.containers, f".new-{spec.id}")
        os.mkdir(tmp, 0o700)
        try:
            for d in (paths.upper(spec.id), paths.work(spec.id)):
                os.mkdir(os.path.join(tmp, os.path.relpath(d, cdir)), 0o755)
            # a --rm container's record goes with it: no fsync (atomic still; a power loss leaves at worst
            # a damaged record, which `rm -f` removes, where it would leave the record of a container gone)
            atomic.write_json(os.path.join(tmp, os.path.relpath(paths.container_record(spec.id), cdir)), rec,
                              sync=not spec.remove)
            os.rename(tmp, cdir)
        except BaseException:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return rec


def update_spec(paths: Paths, cid: str, **changes: Any) -> ContainerRecord | None:
    """Change a container's settings under its lock (``update``); None if it is gone."""
    return _update(paths, cid, "spec", changes)


def update_state(paths: Paths, cid: str, then: Callable[[ContainerRecord], object] | None = None,
                 **changes: Any) -> ContainerRecord | None:
    """Change a container's state under its lock; None if the container is gone. ``then(record)``
    runs before the lock is released (the keeper's ``die`` event: whoever sees the exit and then
    takes the lock finds the event written)."""
    return _update(paths, cid, "state", changes, then)


def _update(paths: Paths, cid: str, part: Literal["spec", "state"], changes: dict,
            then: Callable[[ContainerRecord], object] | None = None) -> ContainerRecord | None:
    try:
        with locking.locked(paths.container_lock(cid)):
            rec = _read(paths, cid)
            if rec is None or rec.get("corrupt"):
                return None
            rec[part].update(changes)  # type: ignore[typeddict-item]  # the callers' keywords: the part's keys
            atomic.write_json(paths.container_record(cid), rec, sync=not _transient(rec))
            if then is not None:
                then(rec)
            return rec
    except FileNotFoundError:  # removed meanwhile (rm -f, --rm)
        return None


def _transient(rec: ContainerRecord) -> bool:
    """A --rm container's record: removed when the container ends, so written without fsync (``create``)."""
    spec = rec.get("spec")
    return isinstance(spec, dict) and spec.get("remove") is True


def lookup(paths: Paths, ref: str) -> ContainerRecord:
    """A record by full id, unique id prefix or name."""
    if not ref:
        raise ContainerNotFound("No such container: (empty name)")
    recs = all_records(paths)
    for r in recs:
        if r.get("name") == ref or r["id"] == ref:
            return r
    found = [r for r in recs if r["id"].startswith(ref)] if ref else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise RootlessError(f"container id prefix {ref!r} is ambiguous", "give more characters")
    raise ContainerNotFound(f"No such container: {ref}")  # Docker's words, which clients match on


def pid_start_time(pid: int, zombie_ok: bool = False) -> str:
    """Field 22 of /proc/PID/stat: with the pid, it identifies a process across pid reuse.
    A zombie has none ("" as for a gone process): it is dead, whether or not it is reaped yet
    (an orphan waits for an init that may be slow, or not reap at all in some sandboxes)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return ""
    fields = data[data.rfind(")") + 2:].split()
    return "" if fields[0] in ("Z", "X") and not zombie_ok else fields[19]
