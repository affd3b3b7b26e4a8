"""``/volumes``: list, create, inspect, remove, prune."""

from __future__ import annotations

from rootless.api import http
from rootless.base.errors import UsageError
from rootless.engine import volumes as uc

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.api.http import Request
    from rootless.engine.context import Context


def list_(ctx: Context, req: Request):
    return 200, {"Volumes": [uc.inspect(ctx, v["name"]) for v in uc.ls(ctx, req.filters())], "Warnings": []}


def create(ctx: Context, req: Request):
    body = req.json()
    http.check_types(body, {"Name": str, "Driver": str, "DriverOpts": dict, "Labels": "map"})
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise UsageError(f"volume driver {driver!r} is not supported", "volumes are local directories")
    labels = [f"{k}={v}" for k, v in (body.get("Labels") or {}).items()]
    name = uc.create(ctx, body.get("Name") or None, labels, body.get("DriverOpts") or None)
    return 201, uc.inspect(ctx, name)


def inspect(ctx: Context, req: Request, name):
    return 200, uc.inspect(ctx, name)


def delete(ctx: Context, req: Request, name):
    uc.rm(ctx, name, req.flag("force"))
    return 204, None


def prune(ctx: Context, req: Request):
    # API 1.41: every unused volume (anonymous only from 1.42, or with all=false)
    all_ = not any(f in ("all=false", "all=0") for f in req.filters())
    from rootless.engine import system
    removed, freed = system.volume_prune(ctx, all_)
    return 200, {"VolumesDeleted": removed or None, "SpaceReclaimed": freed}
