"""``/containers/{id}/exec``, ``/exec/{id}/start``, ``/exec/{id}/json``.

An exec instance is a small JSON record in the runtime directory (create and start come on
different connections, so in different processes); ``start`` runs the CLI's ``exec`` use case
in a child process whose stdio are pipes, and relays them to the hijacked connection.
"""

from __future__ import annotations

import os
import select
import socket

from rootless.api import http
from rootless.api.containers import RAW_STREAM, STDERR, STDOUT, frame
from rootless.api.hijack import AfterHead
from rootless.base import atomic
from rootless.base.errors import Conflict, NotFound, RootlessError, UsageError
from rootless.engine import containers as uc

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.api.http import Request
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord


class ExecNotFound(NotFound):
    pass


def _dir(ctx: Context) -> str:
    return os.path.join(ctx.paths.runroot, "api-exec")


def _path(ctx: Context, eid: str) -> str:
    if not eid.isalnum():
        raise ExecNotFound(f"No such exec instance: {eid}")
    return os.path.join(_dir(ctx), eid + ".json")


def _load(ctx: Context, eid: str) -> dict:
    import json
    try:
        with open(_path(ctx, eid)) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise ExecNotFound(f"No such exec instance: {eid}") from None


def _save(ctx: Context, rec: dict) -> None:
    os.makedirs(_dir(ctx), 0o700, exist_ok=True)
    atomic.write_json(_path(ctx, rec["ID"]), rec)


def create(ctx: Context, req: Request, id):
    body = req.json()
    http.check_types(body, {"Cmd": "cmd", "Env": "strs", "User": str, "WorkingDir": str, "Tty": bool,
                            "AttachStdin": bool, "AttachStdout": bool, "AttachStderr": bool,
                            "DetachKeys": str, "detachKeys": str, "Privileged": bool})
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec) and rec["state"].get("status") != "restarting":
        raise Conflict(f"Container {rec['id']} is not running")
    uc.check_not_paused(rec)
    cmd = body.get("Cmd") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise UsageError("no exec command specified")
    uc.check_user(ctx, body.get("User") or None)
    eid = uc.exec_created(ctx, rec, cmd)
    _save(ctx, {
        "ID": eid, "ContainerID": rec["id"], "Running": False, "ExitCode": None, "Pid": 0,
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout", True)),
        "OpenStderr": bool(body.get("AttachStderr", True)), "CanRemove": False,
        # Go's decoder matches names case-insensitively: docker-py sends ``detachKeys``
        "DetachKeys": _detach_keys_field(body),
        "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                          "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
        "Env": list(body.get("Env") or []), "WorkingDir": body.get("WorkingDir") or "",
    })
    _prune(ctx)
    return 201, {"Id": eid}


def _detach_keys_field(body: dict) -> str:
    keys = body.get("DetachKeys") or body.get("detachKeys") or ""
    if keys:
        from rootless.engine.attach import parse_detach_keys
        parse_detach_keys(keys)  # refused here (400), as Docker refuses them at create
    return keys


def _prune(ctx: Context, keep: float = 3600) -> None:
    """Instances older than an hour go (Docker forgets them with their container)."""
    import time
    now = time.time()
    try:
        for name in os.listdir(_dir(ctx)):
            p = os.path.join(_dir(ctx), name)
            if now - os.stat(p).st_mtime > keep:
                os.unlink(p)
    except OSError:
        pass


def inspect(ctx: Context, req: Request, id):
    return 200, _load(ctx, id)


def resize(ctx: Context, req: Request, id):
    _load(ctx, id)
    return 200, None  # the exec's own terminal follows the container's size


def start(ctx: Context, req: Request, id):
    ex = _load(ctx, id)
    body = req.json()
    http.check_types(body, {"Detach": bool, "Tty": bool})
    rec = uc.lookup(ctx, ex["ContainerID"])
    if not uc.is_running(rec) and rec["state"].get("status") != "restarting":
        raise Conflict(f"Container {rec['id']} is not running")
    uc.check_not_paused(rec)
    if ex["Running"] or ex["ExitCode"] is not None:
        raise Conflict(f"exec {id[:12]} has already run", "create another exec instance")
    pc = ex["ProcessConfig"]
    argv = [pc["entrypoint"], *pc["arguments"]]
    tty = bool(pc["tty"])  # the process's terminal is the exec's, as created
    raw = bool(body.get("Tty", tty))  # the stream's framing is the start's, as Docker's router does
    if body.get("Detach"):
        ex["Running"] = True
        _save(ctx, ex)
        uc.exec_in(ctx, rec, argv, ex["Env"], pc["user"] or None, ex["WorkingDir"] or None, tty, False, True,
                   ex["ID"], privileged=bool(pc.get("privileged")))
        return 200, None
    client = AfterHead(req.conn.hijack(req, RAW_STREAM))  # its first bytes once the client read the head
    early = req.conn.pending_input()
    stdin = ex["OpenStdin"]
    in_r, in_w = os.pipe() if stdin else (-1, -1)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(ctx, rec, ex, argv, tty, (in_r, out_w, err_w), (in_w, out_r, err_r, client.fileno()))
    for fd in (in_r, out_w, err_w):
        if fd >= 0:
            os.close(fd)
    ex["Running"] = True
    _save(ctx, ex)
    detach = None
    if tty and stdin:  # Docker's escape keys work on a terminal's input only
        from rootless.engine.attach import parse_detach_keys
        from rootless.runtime.terminal import DetachKeys
        detach = DetachKeys(parse_detach_keys(ex.get("DetachKeys") or "ctrl-p,ctrl-q"))
    try:
        _relay(client, in_w, {out_r: STDOUT, err_r: STDERR}, raw, early,
               {STDOUT: ex["OpenStdout"], STDERR: ex["OpenStderr"]}, detach,
               lambda: uc.exec_detached(ctx, rec, ex["ID"]))
    finally:
        _, status = os.waitpid(pid, 0)
        from rootless.base.userns import exit_code
        ex["Running"], ex["ExitCode"] = False, exit_code(status)
        _save(ctx, ex)
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _child(ctx: Context, rec: ContainerRecord, ex, argv, tty, mine, theirs) -> None:
    """In the forked child: the pipes as stdio, then the CLI's exec use case; its exit code."""
    code = 125
    try:
        in_r, out_w, err_w = mine
        for fd in theirs:
            if fd >= 0:
                os.close(fd)
        if in_r < 0:
            in_r = os.open(os.devnull, os.O_RDONLY)
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (in_r, out_w, err_w):
            if fd > 2:
                os.close(fd)
        pc = ex["ProcessConfig"]
        code = uc.exec_in(ctx, rec, argv, ex["Env"], pc["user"] or None, ex["WorkingDir"] or None, tty,
                          ex["OpenStdin"], False, ex["ID"], privileged=bool(pc.get("privileged"))) or 0
    except RootlessError as e:
        os.write(2, f"rootless: error: {e.message}\n".encode())
        code = e.exit_code
    except BaseException:  # noqa: BLE001
        code = 125
    finally:
        os._exit(code)


class _Input:
    """Where the detach keys' filter writes the client's other bytes: the exec's stdin."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)


def _relay(client: AfterHead, in_w: int, outputs: dict[int, int], raw: bool, early: bytes,
           want: dict[int, bool], detach=None, on_detach: Callable[[], None] | None = None) -> None:
    """Until the exec's output ends: its output to the client (framed unless ``raw``), the client's
    bytes to its input. The ``detach`` keys (a ``DetachKeys``) end the client's stream and leave
    the exec running: its input stays open, its output is read and dropped until it ends; then
    ``on_detach()`` is called."""
    sink = _Input(in_w)
    watch: list[int | AfterHead] = [*outputs, *([client] if in_w >= 0 else [])]
    detached = in_w >= 0 and bool(early) and _to_input(sink, early, detach)
    if detached:
        watch.remove(client)
        _hang_up(client)
        if on_detach is not None:
            on_detach()
    while outputs:
        ready, _, _ = select.select(watch, [], [])
        for r in ready:
            if isinstance(r, AfterHead):  # the client (the outputs are descriptors)
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                try:
                    detached = bool(data) and _to_input(sink, data, detach)
                except OSError:
                    data = b""
                if detached:
                    watch.remove(client)
                    _hang_up(client)
                    if on_detach is not None:
                        on_detach()
                elif not data:
                    watch.remove(client)
                    os.close(in_w)
                    in_w = -1
                continue
            data = os.read(r, 65536)
            if not data:
                watch.remove(r)
                os.close(r)
                del outputs[r]
                continue
            n = outputs[r]
            if want.get(n) and not detached:
                try:
                    client.sendall(data if raw else frame(n, data))
                except OSError:
                    pass
    if in_w >= 0:
        os.close(in_w)


def _to_input(sink: _Input, data: bytes, detach) -> bool:
    """The client's bytes to the exec's input; True when they held the detach keys."""
    if detach is None:
        sink.write(data)
        return False
    return detach.feed(data, None, sink=sink)


def _hang_up(client: AfterHead) -> None:
    """The end of a detached client's stream: both ways, as Docker closes the connection."""
    try:
        client.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
