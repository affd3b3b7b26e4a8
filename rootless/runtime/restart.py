"""Restart policies (``--restart``): what they say, and what the end of a run means under them.

A policy is Docker's ``HostConfig.RestartPolicy``, ``{"Name": ..., "MaximumRetryCount": N}``,
kept in the spec (``ContainerSpec.restart``; None or ``no``: never restarted). The rules are
Docker's restart manager's:

- ``always`` restarts after any exit, ``unless-stopped`` too, ``on-failure[:N]`` after a non-zero
  exit while fewer than N restarts were made (no N: no limit), ``no`` never;
- none restarts a container that was stopped by hand (``stop``, ``kill``; ``manually_stopped`` in
  the state) until it is started again, which also sets ``restart_count`` back to 0;
- the wait before a restart starts at 100 ms and doubles at each restart up to a minute; a run
  that lasted 10 s or more starts it again from 100 ms.

The container's keeper decides at the end of each run (:func:`exit_fields`) and records
``restarting`` with the count in the same write as the exit, so nobody sees the container
stopped in between; the restart itself is made from outside the user namespace by the
container's restart monitor (``rootless.engine.restarts``), which holds :func:`lock_path` while
it lives. A ``restarting`` record whose monitor is gone (a reboot, a logout that ended it) reads
as exited (:func:`reconciled`).
"""

from __future__ import annotations

import fcntl
import os

from rootless.base.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from rootless.base.paths import Paths

NAMES = ("no", "always", "unless-stopped", "on-failure")
FIRST_DELAY = 0.1  # seconds
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run this long starts the back-off again
GRACE = 5.0  # a restarting record with no monitor for this long is stale


def parse(text: str | None) -> dict[str, Any] | None:
    """``--restart``'s value as Docker's RestartPolicy (None for ``no`` or nothing)."""
    if not text:
        return None
    name, colon, count = text.partition(":")
    if name not in NAMES:
        raise UsageError(f"invalid restart policy {text!r}", "use no, always, unless-stopped or on-failure[:N]")
    if colon:
        if name != "on-failure":
            raise UsageError(f"invalid restart policy {text!r}: a maximum retry count is only for on-failure",
                             "use on-failure:N, or the policy without :N")
        if not count.isdigit():
            raise UsageError(f"invalid restart policy {text!r}: the maximum retry count must be a number",
                             "use on-failure:N with N a whole number")
    return None if name == "no" else {"Name": name, "MaximumRetryCount": int(count) if colon else 0}


def from_api(policy: dict | None) -> str:
    """Docker's ``RestartPolicy`` object as ``--restart`` text, with the daemon's refusals."""
    policy = policy or {}
    name = policy.get("Name") or "no"
    count = policy.get("MaximumRetryCount") or 0
    if not isinstance(count, int) or isinstance(count, bool):
        raise UsageError("invalid JSON: RestartPolicy.MaximumRetryCount must be a number")
    if name not in NAMES:
        raise UsageError(f"invalid restart policy '{name}'", "use no, always, unless-stopped or on-failure")
    if count < 0:
        raise UsageError("maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise UsageError(f"maximum retry count cannot be used with restart policy '{name}'")
    return f"{name}:{count}" if count else name


def check(policy: dict | None, remove: bool) -> None:
    """``--rm`` and a restart policy cannot go together (Docker's refusal)."""
    if policy and remove:
        raise UsageError("conflicting options: --restart and --rm",
                         "a container removed when it exits cannot be restarted: leave one of them out")


def of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A record's policy, ``no`` included (what inspect shows)."""
    return dict(spec.get("restart") or {"Name": "no", "MaximumRetryCount": 0})


def active(spec: Mapping[str, Any]) -> bool:
    return bool(spec.get("restart"))


def should_restart(policy: dict | None, code: int, count: int, manually_stopped: bool) -> bool:
    if not policy or manually_stopped:
        return False
    name = policy.get("Name")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return code != 0 and (limit == 0 or count < limit)
    return False


def next_delay(previous: float, ran: float) -> float:
    """The wait before the next restart, after waiting ``previous`` (0: none yet) before a run
    that lasted ``ran`` seconds."""
    if ran >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def exit_fields(rec: Mapping[str, Any] | None, code: int) -> dict[str, Any]:
    """The keeper's hook at the end of a run: the state changes that go with the exit when the
    policy restarts the container (``restarting`` and the new count), else none."""
    if rec is None:
        return {}
    st = rec.get("state") or {}
    count = st.get("restart_count") or 0
    if not should_restart((rec.get("spec") or {}).get("restart"), code, count, bool(st.get("manually_stopped"))):
        return {}
    return {"status": "restarting", "restart_count": count + 1}


def lock_path(paths: Paths, cid: str) -> str:
    """Held by the container's restart monitor while it lives."""
    return os.path.join(paths.container(cid), "restart.lock")


def monitor_alive(paths: Paths, cid: str) -> bool:
    try:
        fd = os.open(lock_path(paths, cid), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def stale(paths: Paths, rec: Mapping[str, Any], now: float) -> bool:
    """A ``restarting`` record that nobody will restart: no monitor, and for longer than a
    monitor takes to start."""
    if rec["state"].get("status") != "restarting" or monitor_alive(paths, rec["id"]):
        return False
    finished = seconds(rec["state"].get("finished_at") or "")
    return finished is None or now - finished > GRACE


def seconds(iso: str) -> float | None:
    """An RFC 3339 UTC time (the records' ``...Z``) as seconds since the epoch."""
    import calendar
    import time
    text, _, frac = iso.rstrip("Z").partition(".")
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac[:9] or "0"))
    except ValueError:
        return None


def ran_for(st: Mapping[str, Any]) -> float:
    """How long the last run lasted (0 when unknown)."""
    start, end = seconds(st.get("started_at") or ""), seconds(st.get("finished_at") or "")
    return end - start if start is not None and end is not None else 0.0
