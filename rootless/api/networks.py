"""``/networks``: Docker's networks as rootless has them (user-defined networks whose members
reach each other by name through links; ``bridge``, ``host`` and ``none`` predefined)."""

from __future__ import annotations

from rootless.api import http
from rootless.engine import containers as containers_uc
from rootless.engine import networks as uc

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.api.http import Request
    from rootless.engine.context import Context


def list_(ctx: Context, req: Request):
    return 200, [uc.inspect(ctx, n["id"]) for n in uc.ls(ctx, req.filters())]


def create(ctx: Context, req: Request):
    body = req.json()  # CheckDuplicate is moot: names are unique here whatever the client asks
    http.check_types(body, {"Name": str, "Driver": str, "Labels": "map", "Options": "map", "Internal": bool,
                            "Attachable": bool, "EnableIPv6": bool, "IPAM": dict})
    name = body.get("Name") or ""
    ipam = body.get("IPAM") or {}
    http.check_types(ipam, {"Driver": str, "Config": list, "Options": "map"})
    nid = uc.create(ctx, name, body.get("Driver") or "bridge", dict(body.get("Labels") or {}),
                    bool(body.get("Internal")), bool(body.get("Attachable")), dict(body.get("Options") or {}),
                    bool(body.get("EnableIPv6")), tuple(ipam.get("Config") or ()), ipam.get("Driver") or "default",
                    ipam.get("Options"))
    return 201, {"Id": nid, "Warning": ""}


def inspect(ctx: Context, req: Request, id):
    return 200, uc.inspect(ctx, id)


def delete(ctx: Context, req: Request, id):
    uc.rm(ctx, id)
    return 204, None


def prune(ctx: Context, req: Request):
    return 200, {"NetworksDeleted": uc.prune(ctx) or None}


def connect(ctx: Context, req: Request, id):
    body = req.json()
    http.check_types(body, {"Container": str, "EndpointConfig": dict})
    endpoint = body.get("EndpointConfig") or {}
    aliases = tuple(endpoint.get("Aliases") or ())
    container = body.get("Container") or ""
    containers_uc.lookup(ctx, container)  # Docker's "No such container" first
    uc.connect(ctx, id, container, aliases, endpoint)  # on it already: Docker's error, as a 409
    return 200, None


def disconnect(ctx: Context, req: Request, id):
    body = req.json()
    http.check_types(body, {"Container": str, "Force": bool})
    uc.disconnect(ctx, id, body.get("Container") or "", bool(body.get("Force")))
    return 200, None
