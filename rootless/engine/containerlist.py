"""Listing containers: ``rootless ps`` and ``GET /containers/json`` ask this one use case, with
the same options, and render the records it returns (a table or templates; JSON summaries).

Docker's rule, for both faces: stopped containers are listed with ``all``, with a limit
(``-n``, ``-l``, ``limit=``: the newest of every state) or with a ``status`` filter; the
filters then choose, the newest come first, and the limit keeps the first ones.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord

# A namedtuple, not a dataclass: ``rootless ps`` imports this at start-up.
ListOptions = namedtuple("ListOptions", "all limit latest size filters", defaults=(False, None, False, False, ()))
ListOptions.__doc__ = """What to list. ``all``: stopped containers too; ``limit``: the N newest
(every state); ``latest``: the newest one; ``size``: the writable layers' sizes are wanted
(:func:`sizes`); ``filters``: ``KEY=VALUE`` strings (``status=``,
``name=``, ``id=``, ``ancestor=``, ``label=``, ``restart-policy=``; the same key: any, different keys:
all). A restarting container is listed with the running ones, as Docker lists it."""


def list_containers(ctx: Context, opts: ListOptions) -> list[ContainerRecord]:
    """The container records ``opts`` asks for, the newest first."""
    from rootless.engine.dockerview import matches
    from rootless.runtime.records import all_current, is_running
    limit = 1 if opts.latest else opts.limit if opts.limit and opts.limit > 0 else None
    every_state = opts.all or limit is not None or any(f.startswith("status=") for f in opts.filters)
    recs = [r for r in all_current(ctx) if every_state or is_running(r) or r["state"]["status"] == "restarting"]
    if opts.filters:
        recs = [r for r in recs if matches(r, opts.filters)]
    recs.sort(key=lambda r: r.get("created", ""), reverse=True)
    return recs if limit is None else recs[:limit]


def sizes(ctx: Context, rec: ContainerRecord) -> tuple[int, int]:
    """Docker's ``SizeRw`` (the bytes of the container's writable layer) and ``SizeRootFs`` (that
    and its image's), for ``ps -s`` and ``GET /containers/json?size=1``."""
    from layers.leftovers import size_of
    rw = size_of(ctx.paths.upper(rec["id"]))
    try:
        image = ctx.store.resolve(rec["spec"].get("image_id", ""))
    except Exception:  # noqa: BLE001 - removed with `rmi -f`: the layer alone
        image = {}
    return rw, rw + int(image.get("size") or 0)
