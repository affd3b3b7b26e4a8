"""Volume use cases: ``volume create|ls|inspect|rm|prune``, and the mounts a new container gets
from ``-v`` and the image's ``VOLUME``s. Volumes outlive containers: only ``volume rm``/``prune``
remove a named one; ``rm -v`` (and ``--rm``) remove a container's anonymous ones."""

from __future__ import annotations

import os

from rootless.base.errors import Conflict, ContainerNotFound, RootlessError, UsageError
from rootless.runtime import names, state, volumes

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord


def create(ctx: Context, name: str | None, labels: Sequence[str] = (), options: dict | None = None) -> str:
    """``volume create [NAME]``: the name (a new random one when none is given); an existing
    volume of that name is kept, as Docker does. ``options``: the local driver's
    (``runtime.volumes.check_options``)."""
    from rootless.runtime.spec import parse_labels
    rec, _made = volumes.create(ctx.paths, name or names.new_id(), parse_labels(labels, "label"),
                                anonymous=not name, options=options)
    return rec["name"]


def mounted(recs: Iterable[ContainerRecord]) -> set[str]:
    """The names of the volumes the containers of ``recs`` mount."""
    return {m["name"] for r in recs for m in r.get("spec", {}).get("mounts") or () if m.get("name")}


def users(ctx: Context, name: str) -> list[ContainerRecord]:
    """The containers (running or not) whose mounts name the volume."""
    return [r for r in state.all_records(ctx.paths) if name in mounted([r])]


def _in_use(ctx: Context) -> set[str]:
    return mounted(state.all_records(ctx.paths))


def ls(ctx: Context, filters: Sequence[str] = ()) -> list[dict]:
    recs = volumes.all_volumes(ctx.paths)
    used = None
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in ("dangling", "name", "label"):
            raise UsageError(f"invalid filter {f!r}", "use dangling=true|false, name=NAME or label=KEY[=VALUE]")
        if key == "dangling":
            if value not in ("true", "false", "1", "0"):
                raise UsageError(f"invalid filter {f!r}", "dangling takes true or false")
            used = _in_use(ctx) if used is None else used
            want = value in ("true", "1")
            recs = [r for r in recs if (r["name"] not in used) == want]
        elif key == "name":
            recs = [r for r in recs if value in r["name"]]
        else:
            k, has_v, v = value.partition("=")
            recs = [r for r in recs if k in r["labels"] and (not has_v or r["labels"][k] == v)]
    return recs


def inspect(ctx: Context, name: str) -> dict:
    """Docker's ``volume inspect`` object."""
    rec = volumes.get(ctx.paths, name)
    return {"CreatedAt": rec.get("created", ""), "Driver": "local", "Labels": rec.get("labels") or {},
            "Mountpoint": ctx.paths.volume_data(name), "Name": name, "Options": rec.get("options") or {},
            "Scope": "local"}


def rm(ctx: Context, name: str, force: bool) -> None:
    volumes.get(ctx.paths, name)
    users_now = users(ctx, name)
    if users_now and not force:
        ids = ", ".join(r["id"] for r in users_now)
        raise Conflict(f"remove {name}: volume is in use - [{ids}]",
                       "remove those containers first (or use -f)", exit_code=1)
    _remove(ctx, name)


def _remove(ctx: Context, name: str) -> None:
    from layers.store import remove_trees
    doomed = volumes.doom(ctx.paths, name)
    if doomed:
        ctx.userns_call(remove_trees, [doomed])  # the data may belong to subordinate uids
        from rootless.runtime import events
        events.append(ctx.paths, "volume", "destroy", name, {"driver": "local"})


def prune(ctx: Context, all_: bool, failed: list[str] | None = None) -> list[str]:
    """Unused volumes: the anonymous ones (``-a``: every one no container uses); the names removed.
    One that cannot be removed does not stop the others: it is warned about, and its name and
    why are added to ``failed``."""
    used = _in_use(ctx)
    out = []
    for rec in volumes.all_volumes(ctx.paths):
        if rec["name"] not in used and (all_ or rec.get("anonymous")):
            try:
                _remove(ctx, rec["name"])
            except (RootlessError, OSError) as e:
                why = e.message if isinstance(e, RootlessError) else f"cannot remove volume {rec['name']}: {e.strerror}"
                ctx.warn(why)
                if failed is not None:
                    failed.append(why)
                continue
            out.append(rec["name"])
    return out


def remove_anonymous(ctx: Context, rec: ContainerRecord) -> None:
    """``rm -v``: the container's anonymous volumes that no other container uses."""
    others = mounted(r for r in state.all_records(ctx.paths) if r["id"] != rec["id"])
    for m in rec.get("spec", {}).get("mounts") or ():
        if m.get("anonymous") and m["name"] not in others:
            _remove(ctx, m["name"])


def mounts_for(ctx: Context, opts, image_volumes: dict | None) -> tuple[dict, ...]:
    """The mounts of a new container: its ``-v``, ``--mount`` and ``--tmpfs`` flags (named
    volumes made when missing; a ``-v`` host directory made when missing, as Docker's ``-v``
    does), the mounts of each ``--volumes-from`` container, and an anonymous volume for each of
    the image's ``VOLUME``s that nothing covers. What the spec records (and inspect shows)."""
    parsed = [volumes.parse(s) for s in opts.volumes]
    parsed += [volumes.parse_mount(s) for s in opts.mounts]
    parsed += [volumes.parse_tmpfs(s) for s in opts.tmpfs]
    targets = [m.target for m in parsed]
    if len(set(targets)) != len(targets):
        dup = next(t for t in targets if targets.count(t) > 1)
        raise UsageError(f"duplicate mount point: {dup}")
    inherited = _volumes_from(ctx, opts.volumes_from, set(targets))
    targets += [m["target"] for m in inherited]
    parsed += [volumes.Mount("volume", "", os.path.normpath(t), False)
               for t in sorted(image_volumes or {}) if os.path.normpath(t) not in targets and t.startswith("/")]
    from rootless.runtime.mountplan import check_destination
    for m in parsed:  # all of them before a volume or directory is made
        check_destination(m.target, m.type, m.source if m.type == "bind" else None)
    out = []
    for m in parsed:
        if m.type == "tmpfs":
            out.append({"type": "tmpfs", "target": m.target, "rw": not m.readonly, "options": m.options})
        elif m.type == "bind":
            if m.must_exist and not os.path.exists(m.source):
                raise UsageError(f"invalid mount config for type \"bind\": bind source path does not exist: "
                                    f"{m.source}", "create it first (-v creates a missing directory, --mount does not)")
            out.append({"type": "bind", "source": _host_dir(m.source), "target": m.target, "rw": not m.readonly,
                        "chown": m.chown, **({"propagation": m.propagation} if m.propagation else {})})
        else:
            name = m.source or names.new_id()
            rec, _made = volumes.create(ctx.paths, name, anonymous=not m.source)
            # the image's files there go into the volume while it is empty (at each start), as in Docker
            out.append({"type": "volume", "name": name, "target": m.target, "rw": not m.readonly,
                        "anonymous": bool(rec.get("anonymous")), "copy": m.copy, "chown": m.chown,
                        **({"subpath": m.subpath} if m.subpath else {})})
    return tuple(out + inherited)


def _volumes_from(ctx: Context, refs: tuple[str, ...], taken: set[str]) -> list[dict]:
    """``--volumes-from CONTAINER[:ro|rw]``: that container's volumes and bind mounts at the same
    paths (running or not); a flag of this container for the same path wins."""
    from rootless.runtime import records
    out = []
    for text in refs:
        ref, _, mode = text.partition(":")
        if mode not in ("", "ro", "rw"):
            raise UsageError(f"invalid --volumes-from {text!r}", "use CONTAINER[:ro|rw]")
        try:
            rec = records.lookup(ctx, ref)
        except RootlessError:
            raise ContainerNotFound(f"No such container: {ref}", "--volumes-from names an existing container",
                                    exit_code=125) from None  # Docker: 404, and 125 for run
        for m in rec.get("spec", {}).get("mounts") or ():
            if m["type"] == "tmpfs" or m["target"] in taken:
                continue
            taken.add(m["target"])
            # not this container's own: rm -v of it leaves them to the container that made them
            shared = dict(m, anonymous=False, chown=False)
            if mode:
                shared["rw"] = mode == "rw"
            out.append(shared)
    return out


def _host_dir(path: str) -> str:
    """A bind mount's host side, resolved once (what the container gets is what was checked).
    Anything wrong with it is bad input: one line (400 on the API), nothing made."""
    if not os.path.lexists(path):
        try:
            os.makedirs(path, 0o755)
        except OSError as e:
            raise UsageError(f"error while creating mount source path {path!r}: {str(e.strerror or e).lower()}",
                             "create it yourself, or choose a directory you can write") from None
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise UsageError(f"invalid mount config for type \"bind\": bind source path does not exist: {path}") \
                from None
        reason = str(e.strerror or e).lower()
        raise UsageError(f"invalid mount config for type \"bind\": bind source path {path}: {reason}",
                         "you can only share what you can read") from None
    if not os.access(real, os.R_OK):
        raise UsageError(f"invalid mount config for type \"bind\": bind source path {path}: permission denied",
                         "you can only share what you can read")
    return real


def plan_entry(ctx: Context, mount: dict) -> tuple:
    """What ``mountplan.plan`` takes of a spec's mount: (kind, host source, target, read-only,
    options, propagation, subpath)."""
    if mount["type"] == "tmpfs":
        return ("tmpfs", "tmpfs", mount["target"], not mount["rw"], mount.get("options", ""), "", "")
    if mount["type"] == "volume":
        kind = "volume" if mount.get("copy", True) and not mount.get("subpath") else "bind"
        source = ctx.paths.volume_data(mount["name"])
        opts = {} if mount.get("anonymous") else volumes.options(ctx.paths, mount["name"])
        if opts.get("type") == "tmpfs":  # a tmpfs of the volume's options, new at each mount (Docker's)
            return ("tmpfs", "tmpfs", mount["target"], not mount["rw"], opts.get("o", ""), "", "")
        if opts:  # a host directory bound as the volume
            source = opts["device"]
            if not os.path.isdir(source):
                raise RootlessError(f"volume {mount['name']}: its device {source} is not a directory",
                                    "make the directory, or remove the volume and create it again")
            ro = "ro" in opts.get("o", "").split(",")
            return (kind, source, mount["target"], ro or not mount["rw"], "U" if mount.get("chown") else "", "",
                    mount.get("subpath", ""))
        return (kind, source, mount["target"], not mount["rw"],
                "U" if mount.get("chown") else "", "", mount.get("subpath", ""))
    return ("bind", mount["source"], mount["target"], not mount["rw"], "U" if mount.get("chown") else "",
            mount.get("propagation", ""), "")
