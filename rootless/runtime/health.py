"""Healthchecks: a container's ``HEALTHCHECK`` settings and what its state means (the keeper's
monitor that runs them is :mod:`rootless.runtime.healthmonitor`).

The settings are Docker's ``Config.Healthcheck``: ``Test`` (``["CMD", ARG...]``,
``["CMD-SHELL", "command"]``, ``["NONE"]``; empty: the image's), ``Interval``, ``Timeout``,
``StartPeriod``, ``StartInterval`` (nanoseconds; 0: the default) and ``Retries`` (0: the
default). :func:`from_flags` reads ``run``/``create``'s ``--health-*`` flags, :func:`check`
the API's object, :func:`merge` lays them over the image's (Docker's rule: each field left
unset takes the image's), and the spec keeps the result (``ContainerSpec.healthcheck``).

The keeper (``runtime.child``) runs a ``healthmonitor.Monitor`` in its supervise loop: every
interval it
forks a probe (the command, as ``exec`` runs it: in the container's namespaces and pid
namespace, as its user, with its capabilities and seccomp program), collects up to 4096 bytes of
its output, kills it at the timeout, and records ``State.Health`` (``Status``
starting/healthy/unhealthy, ``FailingStreak``, the ``Log`` of the last 5 results) in the
container's record, with a ``health_status: STATUS`` event when the status changes. A failure
within the start period while still ``starting`` does not count; ``Retries`` failures in a
row make the container ``unhealthy``; one success makes it ``healthy``. When the container
ends, its status becomes ``unhealthy`` (as Docker's, whose monitor stops).
"""

from __future__ import annotations

from rootless.base.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
STATUSES = ("starting", "healthy", "unhealthy", "none")  # `ps --filter health=`
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


# ---- the settings --------------------------------------------------------------------------------
def from_flags(cmd: str | None = None, interval: str | None = None, timeout: str | None = None,
               retries: str | int | None = None, start_period: str | None = None,
               start_interval: str | None = None, no_healthcheck: bool = False) -> dict | None:
    """The ``--health-*`` flags as a ``Config.Healthcheck`` (None: none given, the image's holds)."""
    given = {"--health-cmd": cmd, "--health-interval": interval, "--health-timeout": timeout,
             "--health-retries": retries, "--health-start-period": start_period,
             "--health-start-interval": start_interval}
    if no_healthcheck:
        if any(v not in (None, "") for v in given.values()):
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if all(v in (None, "") for v in given.values()):
        return None
    hc: dict[str, Any] = {"Test": ["CMD-SHELL", cmd] if cmd else []}
    for key, flag, text in (("Interval", "--health-interval", interval), ("Timeout", "--health-timeout", timeout),
                            ("StartPeriod", "--health-start-period", start_period),
                            ("StartInterval", "--health-start-interval", start_interval)):
        if text not in (None, ""):
            hc[key] = _duration(str(text), flag)
    if retries not in (None, ""):
        try:
            hc["Retries"] = int(str(retries))
        except ValueError:
            raise UsageError(f"invalid argument {retries!r} for --health-retries", "give a number") from None
        if hc["Retries"] < 0:
            raise UsageError("--health-retries cannot be negative")
    return hc


def _duration(text: str, flag: str) -> int:
    from rootless.base.clock import parse_duration
    try:
        ns = parse_duration(text)
    except ValueError:
        raise UsageError(f"invalid argument {text!r} for {flag}: not a duration",
                         "use a duration like 30s, 1m30s or 500ms") from None
    if ns < 0:
        raise UsageError(f"{flag} cannot be negative")
    return ns


def check(hc: object) -> dict | None:
    """The API's ``Config.Healthcheck``, checked as Docker's daemon checks it (None: not given)."""
    if hc is None:
        return None
    if not isinstance(hc, dict):
        raise UsageError("Healthcheck must be an object")
    out: dict[str, Any] = {}
    test = hc.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise UsageError("Healthcheck.Test must be a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise UsageError(f"unknown Healthcheck type {test[0]!r}", "Test starts with NONE, CMD or CMD-SHELL")
    if test and test[0] != "NONE" and len(test) < 2:
        raise UsageError(f"Healthcheck {test[0]} needs a command")
    out["Test"] = list(test)
    for key in _DURATIONS:
        value = hc.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"{key} in Healthcheck must be a number of nanoseconds")
        if value < 0 or 0 < value < 1_000_000:
            raise UsageError(f"{key} in Healthcheck cannot be less than 1ms")
        if value:
            out[key] = value
    retries = hc.get("Retries") or 0
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise UsageError("Retries in Healthcheck must be a number")
    if retries < 0:
        raise UsageError("Retries in Healthcheck cannot be negative")
    if retries:
        out["Retries"] = retries
    return out


def merge(user: dict | None, image: dict | None) -> dict | None:
    """The container's healthcheck: the user's settings over the image's, field by field."""
    if not user:
        return dict(image) if image else None
    out = dict(user)
    if image:
        if not out.get("Test"):
            out["Test"] = list(image.get("Test") or [])
        for key in (*_DURATIONS, "Retries"):
            if not out.get(key) and image.get(key):
                out[key] = image[key]
    return out


def probe_argv(hc: dict | None) -> list[str] | None:
    """The probe's command line; None when there is no healthcheck to run (none, or ``NONE``)."""
    test = list((hc or {}).get("Test") or [])
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    return ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]


def initial(hc: dict | None) -> dict | None:
    """``State.Health`` when the container starts (None: it has no healthcheck)."""
    return {"Status": "starting", "FailingStreak": 0, "Log": []} if probe_argv(hc) else None


def status(state: Mapping[str, Any]) -> str:
    """The health of a record's state: starting, healthy, unhealthy, or none."""
    health = state.get("health")
    return health.get("Status") or "none" if isinstance(health, dict) else "none"


def ps_suffix(state: Mapping[str, Any]) -> str:
    """What ``ps`` adds to ``Up ...``: `` (healthy)``, `` (unhealthy)``, `` (health: starting)``."""
    st = status(state)
    if st == "none":
        return ""
    return " (health: starting)" if st == "starting" else f" ({st})"


def go_duration(ns: int) -> str:
    """A duration as Go prints it (``30s``, ``1.5s``, ``500ms``, ``1m30s``)."""
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1000)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
        return f"{ns}ns"
    h, rest = divmod(ns, 3600 * SECOND)
    m, rest = divmod(rest, 60 * SECOND)
    s = f"{rest / SECOND:.9f}".rstrip("0").rstrip(".") + "s"
    return (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + s
