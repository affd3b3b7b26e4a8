"""``events``: what happened to containers, images and volumes, past and as it happens (the log
that every process making a change writes: :mod:`rootless.runtime.events`). The CLI's
``rootless events`` and the API server's ``GET /events`` both read it through :func:`stream`."""

from __future__ import annotations

import time

from rootless.base.errors import UsageError
from rootless.runtime import events

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from rootless.engine.context import Context


def parse_time(value: str | None, now_ns: int | None = None) -> int | None:
    """``--since``/``--until`` (or the API's ``since``/``until``) as ns since the epoch: what
    ``docker logs --since`` takes (a timestamp, Unix seconds, or a duration back from now)."""
    if value is None or value == "":
        return None
    from rootless.runtime.logs import parse_since
    try:
        return parse_since(value, now_ns)
    except ValueError as e:
        raise UsageError(str(e)) from None


def parse_filters(filters: Iterable[str] | dict | None) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` items, or the API's ``filters`` JSON (``{"type": ["container"]}``, or
    Docker's older ``{"type": {"container": true}}``), as {key: [values]}; an unknown key is
    refused as Docker does."""
    out: dict[str, list[str]] = {}
    if isinstance(filters, dict):
        items = []
        for key, values in filters.items():
            if isinstance(values, dict):
                values = [v for v, on in values.items() if on]
            elif isinstance(values, str):
                values = [values]
            items += [(key, str(v)) for v in values]
    else:
        items = []
        for text in filters or ():
            key, eq, value = text.partition("=")
            if not eq:
                raise UsageError(f"bad format of filter (expected name=value): {text}")
            items.append((key.strip().lower(), value))
    for key, value in items:
        if key not in events.FILTER_KEYS:
            raise UsageError(f"invalid filter '{key}'", "use " + ", ".join(f"{k}=" for k in events.FILTER_KEYS))
        out.setdefault(key, []).append(value)
    return out


def stream(ctx: Context, since: str | None = None, until: str | None = None,
           filters: Iterable[str] | dict | None = None, stop: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Docker's events as dicts (the Engine API's JSON), oldest first: from ``since`` (None: only
    new ones, unless ``until`` is given: then every past one) and, while ``until`` has not passed
    (None: until ``stop()`` says so, or the caller stops iterating), the new ones as they come.
    ``since``/``until``: as :func:`parse_time` takes them."""
    now = time.time_ns()
    since_ns, until_ns = parse_time(since, now), parse_time(until, now)
    wanted = parse_filters(filters)
    if until_ns is not None and until_ns <= now:
        return events.read(ctx.paths, since_ns, until_ns, wanted)
    return events.follow(ctx.paths, since_ns, until_ns, wanted, stop)
