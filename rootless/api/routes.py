"""The endpoint table, and one connection's request loop.

Paths come with or without Docker's ``/v1.NN`` prefix. A handler answers with
``(status, JSON-able)``, ``(status, None)`` for an empty body, or ``None`` when it wrote the
response itself (streams, hijacked connections). The library's errors become Docker's JSON
errors: not found 404, conflict 409, bad input 400, anything else 500; a path the API has but
this tool does not serve answers 501, one it does not know 404, both naming it.
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback

from rootless.api import http, swarm
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")

# (method, pattern, "module:function"); {name} matches one path segment, {name*} the rest
# (image names have slashes).
ROUTES = [
    ("GET", "/_ping", "system:ping"), ("HEAD", "/_ping", "system:ping"),
    ("GET", "/version", "system:version"), ("GET", "/info", "system:info"),
    ("GET", "/events", "system:events"), ("GET", "/system/df", "system:df"),
    ("GET", "/containers/json", "containers:list_"),
    ("POST", "/containers/create", "containers:create"),
    ("POST", "/containers/prune", "containers:prune"),
    ("GET", "/containers/{id}/json", "containers:inspect"),
    ("POST", "/containers/{id}/start", "containers:start"),
    ("POST", "/containers/{id}/stop", "containers:stop"),
    ("POST", "/containers/{id}/restart", "containers:restart"),
    ("POST", "/containers/{id}/kill", "containers:kill"),
    ("POST", "/containers/{id}/pause", "containers:pause"),
    ("POST", "/containers/{id}/unpause", "containers:unpause"),
    ("POST", "/containers/{id}/wait", "containers:wait"),
    ("POST", "/containers/{id}/rename", "containers:rename"),
    ("POST", "/containers/{id}/update", "containers:update"),
    ("POST", "/containers/{id}/resize", "containers:resize"),
    ("POST", "/containers/{id}/attach", "containers:attach"),
    ("GET", "/containers/{id}/attach/ws", "containers:attach_ws"),
    ("GET", "/containers/{id}/logs", "containers:logs"),
    ("GET", "/containers/{id}/top", "containers:top"),
    ("GET", "/containers/{id}/stats", "containers:stats"),
    ("GET", "/containers/{id}/archive", "containers:archive_get"),
    ("HEAD", "/containers/{id}/archive", "containers:archive_head"),
    ("PUT", "/containers/{id}/archive", "containers:archive_put"),
    ("GET", "/containers/{id}/export", "containers:export"),
    ("GET", "/containers/{id}/changes", "containers:changes"),
    ("DELETE", "/containers/{id}", "containers:delete"),
    ("DELETE", "/containers/{id}/{alias}", "containers:delete_link"),
    ("POST", "/containers/{id}/exec", "execs:create"),
    ("POST", "/exec/{id}/start", "execs:start"),
    ("POST", "/exec/{id}/resize", "execs:resize"),
    ("GET", "/exec/{id}/json", "execs:inspect"),
    ("POST", "/commit", "containers:commit"),
    ("GET", "/images/json", "images:list_"),
    ("POST", "/images/create", "images:create"),
    ("POST", "/images/load", "images:load"),
    ("GET", "/images/get", "images:get_many"),
    ("POST", "/images/prune", "images:prune"),
    ("POST", "/build", "images:build"),
    ("POST", "/build/prune", "images:build_prune"),
    ("GET", "/images/{name*}/json", "images:inspect"),
    ("GET", "/images/{name*}/history", "images:history"),
    ("GET", "/images/{name*}/get", "images:get_one"),
    ("POST", "/images/{name*}/tag", "images:tag"),
    ("POST", "/images/{name*}/push", "images:push"),
    ("DELETE", "/images/{name*}", "images:delete"),
    ("GET", "/distribution/{name*}/json", "images:distribution"),
    ("GET", "/volumes", "volumes:list_"),
    ("POST", "/volumes/create", "volumes:create"),
    ("POST", "/volumes/prune", "volumes:prune"),
    ("GET", "/volumes/{name}", "volumes:inspect"),
    ("DELETE", "/volumes/{name}", "volumes:delete"),
    ("GET", "/networks", "networks:list_"),
    ("POST", "/networks/create", "networks:create"),
    ("POST", "/networks/prune", "networks:prune"),
    ("GET", "/networks/{id}", "networks:inspect"),
    ("DELETE", "/networks/{id}", "networks:delete"),
    ("POST", "/networks/{id}/connect", "networks:connect"),
    ("POST", "/networks/{id}/disconnect", "networks:disconnect"),
]
ROUTES += swarm.ROUTES  # answered as by a Docker node in no swarm (503)

# Parts of Docker's API this tool does not have: answered 501 with what to do instead.
NOT_IMPLEMENTED = [
    (re.compile(r"^/(plugins|session|grpc)(/|$)"),
     "not supported by rootless (no plugins or BuildKit sessions)"),
    (re.compile(r"^/auth$"), "log in with `rootless login`"),
    (re.compile(r"^/images/search$"), "searching a registry is not supported by rootless"),
]


def _compile(pattern: str) -> re.Pattern:
    out = re.escape(pattern)
    out = re.sub(r"\\\{(\w+)\\\*\\\}", r"(?P<\1>.+)", out)
    out = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", out)
    return re.compile(f"^{out}$")


_TABLE = [(m, _compile(p), target) for m, p, target in ROUTES]


def match(method: str, path: str):
    """(handler name, path parameters), or (None, why) with 404 or 405-like reasons."""
    known_path = False
    for m, rx, target in _TABLE:
        found = rx.match(path)
        if found:
            known_path = True
            if m == method:
                return target, found.groupdict()
    return None, known_path


def split_version(path: str) -> tuple[str | None, str]:
    m = _VERSIONED.match(path)
    return (m.group(1), m.group(2)) if m else (None, path)


def status_of(e: BaseException) -> int:
    """The status an error is answered with: its class says it (``http_status``), else 500."""
    return getattr(e, "http_status", 500)


def dispatch(ctx: Context, req: http.Request) -> None:
    conn = req.conn
    _version, path = split_version(req.path)
    target, params = match(req.method, path)
    if target is None:
        for rx, why in NOT_IMPLEMENTED:
            if rx.match(path):
                req.drain()
                conn.send(501, http.error_body(f"{req.method} {path}: {why}"))
                return
        req.drain()
        what = "method not allowed" if params else "page not found"
        conn.send(404 if not params else 405, http.error_body(f"{what}: {req.method} {path}"))
        return
    module, _, func = target.partition(":")
    import importlib
    try:
        handler = getattr(importlib.import_module(f"rootless.api.{module}"), func)
        result = handler(ctx, req, **params)
    except (RootlessError, http.BadRequest) as e:
        from rootless.base.errors import NoSpace, no_space
        if isinstance(e, NoSpace):  # a helper's full disk: the line that names the store
            e = no_space(ctx.paths.root)
        _fail(req, status_of(e), e.message if isinstance(e, RootlessError) else str(e))
        return
    except (BrokenPipeError, ConnectionResetError):
        raise
    except Exception as e:  # noqa: BLE001 - an unexpected failure is a 500 with a message, not a dead service
        from rootless.base.errors import is_no_space, no_space
        if is_no_space(e):  # a full disk: Docker's 500, with the line the CLI prints
            _fail(req, 500, no_space(ctx.paths.root, e if isinstance(e, OSError) else None).message)
            return
        traceback.print_exc(file=sys.stderr)
        _fail(req, 500, f"internal error: {type(e).__name__}: {e}")
        return
    if result is None:
        return
    status, body = result
    if req.method == "HEAD" or body is None:
        conn.send(status, b"", content_type=None if body is None else "application/json")  # no body
    elif isinstance(body, bytes):
        conn.send(status, body, content_type="text/plain; charset=utf-8")
    else:
        conn.send_json(status, body)


def _fail(req: http.Request, status: int, message: str) -> None:
    if req.conn.responded:  # a stream already started: all we can do is end it
        req.conn.keep_alive = False
        return
    try:
        req.drain()
    except http.BadRequest:
        req.conn.keep_alive = False
    req.conn.send(status, http.error_body(message))


def serve_connection(ctx: Context, sock, idle: float | None = None) -> bool:
    """Serve one connection's requests until it closes; whether it ended idle (nothing sent for
    ``idle`` seconds while a request was awaited: closed without an answer)."""
    conn = http.Connection(sock, idle)
    try:
        while conn.keep_alive:
            try:
                req = conn.read_request()
            except http.Idle:
                return True
            except http.BadRequest as e:
                conn.keep_alive = False
                conn.send(400, http.error_body(str(e)))
                break
            if req is None:
                break
            began = time.monotonic()
            dispatch(ctx, req)
            if ctx.debug:
                print(f"rootless: api: {os.getpid()} {req.method} {req.path} "
                      f"{(time.monotonic() - began) * 1000:.1f} ms", file=sys.stderr, flush=True)
            if conn.keep_alive:
                try:
                    req.drain()
                except http.BadRequest:
                    break  # answered already; where the next request would begin is unknown
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
    return False
