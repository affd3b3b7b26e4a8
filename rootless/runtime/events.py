"""The event log: what happened to containers, images and volumes, in Docker's event format.

There is no daemon to hear about changes, so whichever process makes one (the CLI, a keeper)
writes the event into one log in the runtime directory (``Paths.events_log``), and
``rootless events`` (or the API server's ``GET /events``) reads it and follows it. A line is one
JSON object as Docker's Engine API sends it::

    {"status":"die","id":"ID","from":"busybox:latest","Type":"container","Action":"die",
     "Actor":{"ID":"ID","Attributes":{"exitCode":"0","image":"busybox:latest","name":"x"}},
     "scope":"local","time":1700000000,"timeNano":1700000000123456789}

(``status``/``id``/``from`` are Docker's older fields, kept for containers and images.)

Writers: each line is one ``write()`` on an ``O_APPEND`` descriptor (whole lines, never torn by a
concurrent writer) while holding ``Paths.events_lock`` shared. The writer that finds the log past
``MAX_SIZE`` takes the lock exclusively and renames it to ``events.log.1`` (the older one goes);
the next writer starts a new file. So nothing is written into a file after it was rotated: a
follower that sees the rotation reads the rest of its file, which is final, then the new one.
Appending never fails the operation that emits the event (errors are swallowed) and costs a few
tens of microseconds (nothing heavy is imported here).

Readers: :func:`read` (the past) and :func:`follow` (the past asked for, then new events as they
come, polling), with Docker's ``--filter`` semantics (:func:`matches`).
"""

from __future__ import annotations

import fcntl
import json
import os
import time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any

MAX_SIZE = 1 << 20  # the log is rotated past this (one older file is kept)
POLL = 0.05  # how often a follower looks for new events
_NS = 1_000_000_000
_LOCK_WAIT = 1.0  # a writer waits at most this long for a rotation (a stopped process may hold the lock)
BUILD_LABEL = "io.rootless.build"  # a build's RUN step containers: no events (as BuildKit)


# ---- writing -----------------------------------------------------------------------------------
def make(type_: str, action: str, actor_id: str, attributes: dict | None = None,
         time_ns: int | None = None) -> dict:
    """One event, as Docker's Engine API sends it (attribute values become strings)."""
    t = time.time_ns() if time_ns is None else time_ns
    attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
    ev: dict = {}
    if type_ in ("container", "image"):  # Docker's deprecated top-level fields
        ev["status"], ev["id"] = action, actor_id
        if type_ == "container" and attrs.get("image"):
            ev["from"] = attrs["image"]
    ev.update(Type=type_, Action=action, Actor={"ID": actor_id, "Attributes": attrs}, scope="local",
              time=t // _NS, timeNano=t)
    return ev


def append(paths, type_: str, action: str, actor_id: str, attributes: dict | None = None) -> None:
    """Add an event to the log. Never raises: an event that cannot be written is lost, the
    operation that emitted it goes on."""
    try:
        line = json.dumps(make(type_, action, actor_id, attributes), separators=(",", ":")) + "\n"
        _append_line(paths.events_log, paths.events_lock, line.encode())
    except Exception:  # noqa: BLE001 - an event must never fail what it reports
        pass


def container_attributes(spec, **extra) -> dict:
    """A container event's attributes (Docker's): its labels, then ``image`` and ``name``, then
    ``extra`` (``exitCode``, ``signal``, ...). ``spec``: the record's spec dict or a ContainerSpec."""
    get = spec.get if isinstance(spec, dict) else (lambda k, d=None: getattr(spec, k, d))
    attrs = dict(get("labels") or {})
    attrs["image"] = get("image_name") or ""
    attrs["name"] = get("name") or ""
    attrs.update(extra)
    return attrs


def container(paths, action: str, spec, **extra) -> None:
    """A container event (none for a build's RUN step containers)."""
    try:
        get: Callable[..., Any] = spec.get if isinstance(spec, dict) else (lambda k, d=None: getattr(spec, k, d))
        if BUILD_LABEL in (get("labels") or {}):
            return
        append(paths, "container", action, get("id"), container_attributes(spec, **extra))
    except Exception:  # noqa: BLE001 - a damaged record's spec: no event rather than a failure
        pass


def new_exec_id() -> str:
    """An exec instance's id, as Docker makes them (64 hex digits)."""
    return os.urandom(32).hex()


def exec_action(what: str, argv: list[str]) -> str:
    """Docker's action of an exec's ``exec_create``/``exec_start`` event: ``WHAT: CMD ARGS`` (a
    space after the command even without arguments, as Docker's)."""
    return f"{what}: {argv[0]} {' '.join(argv[1:])}"


def _append_line(path: str, lock_path: str, data: bytes) -> None:
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _flock(lock, fcntl.LOCK_SH)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            n = os.write(fd, data)  # the whole line at once: concurrent appenders never interleave
            if 0 < n < len(data):  # a short write (disk full, signal): end the line rather than leave it open
                os.write(fd, data[n:])
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > MAX_SIZE:
            _rotate(path, lock)
    finally:
        os.close(lock)  # releases the lock


def _flock(fd: int, op: int) -> bool:
    """Take the lock, waiting at most ``_LOCK_WAIT``; False if it could not be had (then the
    writer goes on without it: an event for the log readers still to come, rather than none)."""
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    deadline = time.monotonic() + _LOCK_WAIT
    delay = 0.0005
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    return False


def _rotate(path: str, lock: int) -> None:
    """The log becomes ``PATH.1`` (the older one goes), under the lock held exclusively: no writer
    holds the file open meanwhile. Another writer may have rotated it first: checked again."""
    if not _flock(lock, fcntl.LOCK_EX):
        return  # the next writer will
    try:
        if os.stat(path).st_size > MAX_SIZE:
            os.rename(path, path + ".1")
    except FileNotFoundError:
        pass


# ---- filters --------------------------------------------------------------------------------------
FILTER_KEYS = ("container", "event", "image", "label", "network", "scope", "type", "volume")
_EVENT_PREFIXES = ("health_status", "exec_create", "exec_start")  # Docker matches these by prefix


def _exact(filters: dict, key: str, value: str) -> bool:
    wanted = filters.get(key)
    return not wanted or value in wanted


def _fuzzy(filters: dict, key: str, value: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(value.startswith(w) for w in wanted)


def _strip_tag(name: str) -> str:
    """``busybox:latest`` -> ``busybox`` (Docker's familiar name; an id or a bad name unchanged)."""
    try:
        from layers import reference
        return reference.parse(name).familiar_repository
    except Exception:  # noqa: BLE001 - not a reference: compared as it is
        return name


def matches(ev: dict, filters: dict | None) -> bool:
    """Whether an event passes ``filters`` ({key: [values]}), as Docker's event filter decides:
    values of one key are alternatives, keys must all match; ``container``/``volume``/``network``
    take an id, an id prefix or a name (and restrict every event type, as in Docker); ``image`` an
    image id or name, with or without its tag; every ``label`` (KEY or KEY=VALUE) must match one
    of the actor's attributes."""
    if not filters:
        return True
    actor = ev.get("Actor") or {}
    aid, attrs = actor.get("ID", ""), actor.get("Attributes") or {}
    name = attrs.get("name", "")
    action, type_ = ev.get("Action", ""), ev.get("Type", "")
    events = filters.get("event")
    if events and any(e in _EVENT_PREFIXES for e in events):
        if not _fuzzy(filters, "event", action):
            return False
    elif not _exact(filters, "event", action):
        return False
    if not _exact(filters, "type", type_) or not _exact(filters, "scope", ev.get("scope", "local")):
        return False
    for key in ("container", "volume", "network"):
        if filters.get(key) and not (_fuzzy(filters, key, aid) or _fuzzy(filters, key, name)):
            return False
    images = filters.get("image")
    if images:
        image = attrs.get("name" if type_ == "image" else "image", "")
        if not ({aid, image} & set(images) or {_strip_tag(aid), _strip_tag(image)} & set(images)):
            return False
    for label in filters.get("label") or ():
        key, eq, value = label.partition("=")
        if key not in attrs or (eq and attrs[key] != value):
            return False
    return True


def _wanted(ev: dict, since_ns: int | None, until_ns: int | None, filters: dict | None) -> bool:
    t = ev.get("timeNano") or ev.get("time", 0) * _NS
    if since_ns is not None and t < since_ns:
        return False
    if until_ns is not None and t > until_ns:
        return False
    return matches(ev, filters)


# ---- reading -----------------------------------------------------------------------------------
def _parse(data: bytes) -> list[dict]:
    """The events of complete lines (malformed lines are skipped)."""
    out = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def _open(path: str) -> IO[bytes] | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _ino(f: IO[bytes] | None) -> int | None:
    return None if f is None else os.fstat(f.fileno()).st_ino


def _open_both(paths) -> tuple[IO[bytes] | None, IO[bytes] | None]:
    """The rotated log and the current one, opened from one consistent look: no rotation comes
    between the two opens (the lock is held shared)."""
    try:
        lock = os.open(paths.events_lock, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # no runtime directory (yet): no events
        lock = -1
    try:
        if lock >= 0:
            _flock(lock, fcntl.LOCK_SH)
        return _open(paths.events_log + ".1"), _open(paths.events_log)
    finally:
        if lock >= 0:
            os.close(lock)


def _read_to_end(f: IO[bytes], pos: int) -> tuple[bytes, int]:
    """What ``f`` holds from ``pos`` on, cut after its last complete line; (data, new pos)."""
    fd = f.fileno()
    chunks, at = [], pos
    while True:
        chunk = os.pread(fd, 1 << 20, at)
        if not chunk:
            break
        chunks.append(chunk)
        at += len(chunk)
    data = b"".join(chunks)
    cut = data.rfind(b"\n") + 1
    return data[:cut], pos + cut


def read(paths, since_ns: int | None = None, until_ns: int | None = None,
         filters: dict | None = None) -> Iterator[dict]:
    """The events in the log (the rotated file, then the current one) between ``since_ns`` and
    ``until_ns`` (inclusive; None: no bound) that pass ``filters``, oldest first."""
    old, cur = _open_both(paths)
    for f in (old, cur):
        if f is None:
            continue
        with f:
            data, _pos = _read_to_end(f, 0)
        yield from _select(data, since_ns, until_ns, filters)


def _tail_start(f: IO[bytes]) -> int:
    """Where following from now starts in ``f``: after its last complete line."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    start = max(0, size - 65536)
    block = os.pread(fd, size - start, start)
    return start + block.rfind(b"\n") + 1  # no newline: from ``start`` (a line being written)


def _rotated(path: str, f: IO[bytes] | None) -> bool:
    """Whether ``path`` is no longer the file open as ``f`` (or, with no file open, appeared)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False  # renamed away, no new file yet: ``f`` is final, nothing new to read
    return f is None or st.st_ino != os.fstat(f.fileno()).st_ino


def follow(paths, since_ns: int | None = None, until_ns: int | None = None, filters: dict | None = None,
           stop: Callable[[], bool] | None = None, poll: float = POLL) -> Iterator[dict]:
    """The events from ``since_ns`` on (None: from now; with only ``until_ns``, every past one),
    then the new ones as they are written, until ``until_ns`` has passed (None: until ``stop()``
    is true or the caller stops iterating). A rotation of the log is followed."""
    path = paths.events_log
    old, cur = _open_both(paths)
    past = since_ns is not None or until_ns is not None
    last = _ino(cur) or _ino(old)  # the newest file read (or being read)
    pos = 0
    try:
        if past:
            if old is not None:
                yield from _select(_read_to_end(old, 0)[0], since_ns, until_ns, filters)
            if cur is not None:
                data, pos = _read_to_end(cur, 0)
                yield from _select(data, since_ns, until_ns, filters)
        elif cur is not None:
            pos = _tail_start(cur)
        if old is not None:
            old.close()
            old = None
        while True:
            done = until_ns is not None and time.time_ns() > until_ns
            if cur is not None:
                data, pos = _read_to_end(cur, pos)
                yield from _select(data, since_ns, until_ns, filters)
            if _rotated(path, cur):
                if cur is not None:  # final now: its last lines, then what came after it
                    data, pos = _read_to_end(cur, pos)
                    yield from _select(data, since_ns, until_ns, filters)
                    cur.close()
                    cur = None
                old, new = _open_both(paths)
                if old is not None and _ino(old) != last:  # a whole file came and went between two looks
                    last = _ino(old)
                    with old:
                        yield from _select(_read_to_end(old, 0)[0], since_ns, until_ns, filters)
                elif old is not None:
                    old.close()
                old = None
                cur, pos = new, 0
                last = _ino(cur) or last
                continue
            if done or (stop is not None and stop()):
                return
            time.sleep(poll)
    finally:
        for f in (old, cur):
            if f is not None:
                f.close()


def _select(data: bytes, since_ns: int | None, until_ns: int | None, filters: dict | None) -> Iterator[dict]:
    for ev in _parse(data):
        if _wanted(ev, since_ns, until_ns, filters):
            yield ev
