"""``/containers/...``: Docker's container endpoints over the CLI's use cases.

``create`` turns Docker's container config into the CLI's run options (``createconfig``) so
that a container made here is the one ``rootless ps`` shows, and the other way round.
``attach`` and ``wait`` on a container that has not started yet register a socket that the
container's keeper connects to before the container runs (``keeperclient.register_pending``): the
client sees all the output and the exit code, however fast the container ends, as the docker
CLI's ``run`` (attach, wait, then start) needs.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import struct
import time

from rootless.api import createconfig, http
from rootless.api.hijack import AfterHead
from rootless.base.clock import now_iso
from rootless.base.errors import Conflict, ContainerNotFound, RootlessError, UsageError
from rootless.engine import containerfs, containerstats, dockerview
from rootless.engine import containers as uc

TYPE_CHECKING = False  # annotations only: typing is not loaded for them at start-up
if TYPE_CHECKING:
    from rootless.api.http import Hijacked, Request
    from rootless.engine.context import Context
    from rootless.runtime import keeperclient
    from rootless.runtime.state import ContainerRecord

STDOUT, STDERR = 1, 2
RAW_STREAM = "application/vnd.docker.raw-stream"


# ---- record -> Docker's JSON ----------------------------------------------------------------
def _unix(iso: str) -> int:
    t = dockerview.parse_time(iso)
    return int(t) if t is not None else 0


def summary(ctx: Context, rec: ContainerRecord) -> dict:
    """One entry of ``GET /containers/json``."""
    spec = rec["spec"]
    ports = [{"IP": m["host_ip"] or "0.0.0.0", "PrivatePort": m["container_port"], "PublicPort": m["host_port"],
              "Type": m["proto"]} for m in dockerview.live_ports(rec)]
    published = {(p["PrivatePort"], p["Type"]) for p in ports}
    for e in spec.get("exposed", []):
        num, _, proto = e.partition("/")
        if num.isdigit() and (int(num), proto or "tcp") not in published:
            ports.append({"PrivatePort": int(num), "Type": proto or "tcp"})
    full = api_view(dockerview.inspect(rec, ctx.paths), rec)
    return {
        "Id": rec["id"], "Names": ["/" + rec["name"]], "Image": spec.get("image_name", ""),
        "ImageID": spec.get("image_id", ""), "Command": " ".join(spec.get("argv", [])),
        "Created": _unix(rec.get("created", "")), "Ports": ports, "Labels": spec.get("labels") or {},
        "State": "dead" if rec.get("corrupt") else dockerview.docker_status(rec),
        "Status": dockerview.status_text(rec),
        "HostConfig": {"NetworkMode": full["HostConfig"]["NetworkMode"]},
        "NetworkSettings": {"Networks": full["NetworkSettings"]["Networks"]},
        "Mounts": full["Mounts"],
    }


# ---- endpoints ------------------------------------------------------------------------------
def list_(ctx: Context, req: Request):
    from rootless.engine.containerlist import ListOptions, list_containers
    opts = ListOptions(all=req.flag("all"), limit=req.int_arg("limit"), size=req.flag("size"),
                       filters=tuple(req.filters()))
    rows = []
    for rec in list_containers(ctx, opts):
        row = summary(ctx, rec)
        if opts.size:
            from rootless.engine.containerlist import sizes
            row["SizeRw"], row["SizeRootFs"] = sizes(ctx, rec)
        rows.append(row)
    return 200, rows


def create(ctx: Context, req: Request):
    body = req.json()
    opts = createconfig.to_run_options(body, req.arg("name"), req.arg("platform"))
    opts = _with_networks(ctx, opts, body)
    opts, warnings = createconfig.discard_unenforceable(opts)
    _keep_endpoints(ctx, None, body, check=True)
    with ctx.collecting_warnings() as said:
        rec = uc.create(ctx, opts)
    try:
        _keep_endpoints(ctx, rec, body)
    except BaseException:  # what only the made container tells (a MAC address off slirp4netns): nothing stays
        uc.remove(ctx, uc.lookup(ctx, rec["id"]), force=True)
        raise
    return 201, {"Id": rec["id"], "Warnings": warnings + said}


def _with_networks(ctx: Context, opts, body: dict):
    """``NetworkingConfig``'s endpoints: the first names the network when the mode does not, and
    each one's aliases are kept (user networks, where the engine has them)."""
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not endpoints:
        return opts
    first = next(iter(endpoints))
    mode = (body.get("HostConfig") or {}).get("NetworkMode") or "default"
    if mode in ("default", "bridge") and first not in ("bridge", "default"):
        opts = opts._replace(network=first)
    aliases = tuple(a for ep in endpoints.values() for a in (ep or {}).get("Aliases") or ())
    if aliases:
        opts = opts._replace(network_aliases=aliases)
    return opts


def _keep_endpoints(ctx: Context, rec, body: dict, check: bool = False) -> None:
    """Each endpoint's settings (IPAMConfig, Links, DriverOpts, MacAddress) kept in the new record;
    ``check``: only Docker's refusals, before anything is made."""
    from rootless.engine import netipam, networks
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    for name, config in endpoints.items():
        name = "bridge" if name == "default" else name
        if check:
            netipam.endpoint(config, networks.find(ctx.paths, name))
        else:
            rec = networks.set_endpoint(ctx, rec, name, config)


def inspect(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    return 200, api_view(dockerview.inspect(rec, ctx.paths), rec)


def api_view(doc: dict, rec: ContainerRecord) -> dict:
    """The container's JSON as Docker's API shows it, where the command line's ``inspect`` says
    more of rootless: the default network (slirp4netns) under the name ``GET /networks`` gives it,
    Docker's ``bridge``; ``LogConfig.Config`` the options asked for (the command line shows the
    configured rotation applied too)."""
    hc, networks = doc["HostConfig"], doc["NetworkSettings"]["Networks"]
    asked = rec["spec"].get("asked") or {}
    if "LogConfig" in asked:
        hc["LogConfig"] = asked["LogConfig"]
    if hc.get("NetworkMode") == "slirp4netns":
        hc["NetworkMode"] = "bridge"
    if "slirp4netns" in networks:
        networks["bridge"] = networks.pop("slirp4netns")
    return doc


def start(ctx: Context, req: Request, id):
    req.drain()
    rec = uc.lookup(ctx, id)
    if uc.is_running(rec) or rec["state"].get("status") == "restarting":  # Docker: running through the back-off
        return 304, None
    try:
        uc.start(ctx, rec, attached=False)
    except RootlessError as e:
        if e.exit_code in (126, 127):  # the command could not be exec'd: Docker's invalid config, a 400
            raise UsageError(e.message, e.hint) from None
        raise
    return 204, None


def stop(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec) and rec["state"].get("status") != "restarting":  # a stop ends the back-off
        return 304, None
    uc.stop(ctx, rec, req.int_arg("t"), req.arg("signal") or None)
    return 204, None


def update(ctx: Context, req: Request, id):
    """``POST /containers/{id}/update``: the restart policy and the resource limits (Docker's
    UpdateConfig); a limit this host cannot enforce is discarded with a warning, as on create."""
    body = req.json() or {}
    fields = ("RestartPolicy", *createconfig.LIMIT_FIELDS)
    http.check_types(body, {k: createconfig.HOST[k] for k in fields if k in createconfig.HOST})
    http.check_types(body.get("RestartPolicy") or {}, createconfig.NESTED["RestartPolicy"], "RestartPolicy.")
    rec = uc.lookup(ctx, id)
    limits = createconfig.limits_of(body) or {}
    warnings = containerstats.update_api(ctx, rec, limits) if limits else []
    if body.get("RestartPolicy") is not None:
        from rootless.runtime import restart
        uc.set_restart_policy(ctx, uc.lookup(ctx, id), restart.from_api(body["RestartPolicy"]))
    return 200, {"Warnings": warnings}


def restart(ctx: Context, req: Request, id):
    uc.restart(ctx, uc.lookup(ctx, id), req.int_arg("t"), req.arg("signal") or None)
    return 204, None


def kill(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec) and rec["state"].get("status") != "restarting":  # restarting: its policy ends
        raise Conflict(f"Container {rec['id']} is not running")
    uc.kill(ctx, rec, req.arg("signal") or "KILL")
    return 204, None


def pause(ctx: Context, req: Request, id):
    uc.pause(ctx, uc.lookup(ctx, id))
    return 204, None


def unpause(ctx: Context, req: Request, id):
    uc.unpause(ctx, uc.lookup(ctx, id))
    return 204, None


def rename(ctx: Context, req: Request, id):
    name = req.arg("name")
    if not name:
        raise UsageError("the new name is missing (?name=)")
    uc.rename(ctx, uc.lookup(ctx, id), name)
    return 204, None


def delete(ctx: Context, req: Request, id):
    if req.flag("link"):  # a link is named NAME/ALIAS: a name alone is the container's own
        uc.remove_link(ctx, id)
        return 204, None
    rec = uc.lookup(ctx, id)
    uc.remove(ctx, rec, force=req.flag("force"), volumes=req.flag("v"))
    return 204, None


def delete_link(ctx: Context, req: Request, id, alias):
    """``DELETE /containers/NAME/ALIAS?link=true``: a legacy link removed (the containers stay)."""
    if not req.flag("link"):
        raise ContainerNotFound(f"No such container: {id}/{alias}")
    uc.remove_link(ctx, f"{id}/{alias}")
    return 204, None


def prune(ctx: Context, req: Request):
    from rootless.engine import system
    removed, freed = system.container_prune(ctx, req.filters())
    return 200, {"ContainersDeleted": removed or None, "SpaceReclaimed": freed}


def top(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec):
        raise Conflict(f"Container {rec['id']} is not running")
    pid, pid_host = rec["state"]["pid"], (rec["spec"].get("asked") or {}).get("PidMode") == "host"
    ps_args = (req.arg("ps_args") or "").split()
    if ps_args and ps_args != ["-ef"]:  # the host's ps, as Docker's daemon runs it; -ef is the table below
        lines = dockerview.top_with_ps(pid, pid_host, ps_args)
        titles = lines[0].split()
        return 200, {"Titles": titles, "Processes": [line.split(None, len(titles) - 1) for line in lines[1:]]}
    from rootless.engine.dockerview import top_rows
    return 200, {"Titles": ["UID", "PID", "PPID", "STIME", "TIME", "CMD"], "Processes": top_rows(pid, pid_host)}


def stats(ctx: Context, req: Request, id):
    """One sample (``stream=false``, as ``docker stats --no-stream`` asks)."""
    rec = uc.lookup(ctx, id)
    out = {"id": rec["id"], "name": "/" + rec["name"], "read": now_iso(), "preread": dockerview.ZERO_TIME,
           "pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {}, "cpu_stats": {},
           "precpu_stats": {}, "memory_stats": {}, "networks": {}}
    if uc.is_running(rec):
        row = containerstats.stats(ctx, [rec], 0.1)[0]
        out["pids_stats"] = {"current": row.pids}
        out["memory_stats"] = {"usage": row.mem_usage, "limit": row.mem_limit}
    return 200, out


def resize(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    h, w = req.int_arg("h") or 0, req.int_arg("w") or 0
    if uc.is_running(rec) and rec["spec"].get("tty"):
        from rootless.runtime import keeperclient
        try:
            link = keeperclient.connect(ctx.paths.run_dir(rec["id"]))
        except OSError:
            return 200, None
        try:
            link.resize(h, w)
        finally:
            link.close()
    return 200, None


# ---- wait --------------------------------------------------------------------------------------
def wait(ctx: Context, req: Request, id):
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise UsageError(f"invalid condition {condition!r}", "use not-running, next-exit or removed")
    rec = uc.lookup(ctx, id)
    req.drain()
    # In its restart back-off a container counts as running, as Docker's State.Running says
    live = uc.is_running(rec) or rec["state"].get("status") == "restarting"
    if condition == "not-running" and not live:
        return 200, {"StatusCode": rec["state"].get("exit_code", 0), "Error": None}
    pending = None
    if not live:
        from rootless.runtime import keeperclient
        pending = keeperclient.register_pending(ctx.paths.pending(rec["id"]))
    # Headers now: the docker CLI starts the container once they came.
    stream = req.conn.start_stream(200, "application/json")
    try:
        code = _exit_code(ctx, rec, pending)
    finally:
        _unregister(pending)
    if condition == "removed":
        _until_removed(ctx, rec["id"])
    stream.write_json({"StatusCode": code, "Error": None})
    stream.end()


def _exit_code(ctx: Context, rec: ContainerRecord, pending) -> int:
    """The exit code of the container's current or next run."""
    if pending is None:
        return uc.wait_exit(ctx, rec)["state"].get("exit_code", 0)
    link = await_keeper(ctx, rec["id"], pending[0])
    if link is None:
        return _recorded_code(ctx, rec["id"])
    try:
        code = link.exit_code()
    finally:
        link.close()
    return _recorded_code(ctx, rec["id"]) if code is None else code


def _recorded_code(ctx: Context, cid: str) -> int:
    try:
        return uc.current(ctx, uc.state.lookup(ctx.paths, cid))["state"].get("exit_code", 0)
    except ContainerNotFound:
        return 0


def _until_removed(ctx: Context, cid: str) -> None:
    delay = 0.01
    while True:
        try:
            uc.state.lookup(ctx.paths, cid)
        except ContainerNotFound:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def await_keeper(ctx: Context, cid: str, pending: socket.socket) -> keeperclient.Link | None:
    """The keeper's connection to ``pending`` once the container starts; the attach socket instead
    when it started without looking at ours (a start that raced our registration); None when
    the container is gone or ended without running again: a new exit, or the end of what it was
    in when the wait began (a restart back-off that ``stop`` ends goes ``exited`` with the last
    run's exit time). (A client that hangs up meanwhile cannot be told from one that only closed
    its input: the wait ends with the container.)"""
    from rootless.runtime import keeperclient
    began = now_iso()
    seen_running = 0
    was_stopped = True  # every look so far found it exited (else its going exited is an end)
    while True:
        ready, _, _ = select.select([pending], [], [], 0.2)
        if ready:
            return keeperclient.accept_pending(pending)
        try:
            rec = uc.current(ctx, uc.state.lookup(ctx.paths, cid))
        except ContainerNotFound:
            return None
        st = rec["state"]
        if uc.is_running(rec):
            seen_running += 1
            if seen_running >= 3:  # running for a while without us: its keeper looked before we came
                try:
                    return keeperclient.connect(ctx.paths.run_dir(cid))
                except OSError:
                    continue
        elif st.get("status") == "exited":
            if (st.get("finished_at") or "") > began or not was_stopped:
                # a keeper that came between the last look at the socket and this one is ours
                return keeperclient.accept_pending(pending) if select.select([pending], [], [], 0)[0] else None
        else:
            was_stopped = False  # created, restarting, paused: exited from now on is an end


def _unregister(pending) -> None:
    if pending is not None:
        from rootless.runtime import keeperclient
        keeperclient.unregister_pending(*pending)




# ---- attach and logs --------------------------------------------------------------------------
def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream: a header (stream, 0, 0, 0, big-endian length), then the bytes."""
    return struct.pack(">BxxxL", stream, len(data)) + data


_HEADER = struct.Struct(">BxxxL")


def frames(stream: int, data: bytes) -> bytes:
    """A frame per entry of a log block's texts (``data``: each entry but the last ends with its
    newline), as Docker's daemon sends a log: without work per line in Python when the lines are
    all as long (a flood's mostly are), else a header per line made by C loops."""
    if not data:
        return _HEADER.pack(stream, 0)
    lines = data.count(b"\n")
    size, odd = divmod(len(data), lines) if lines else (0, 1)
    if not odd and data[size - 1::size] == b"\n" * lines:  # every line as long as the first
        head = _HEADER.pack(stream, size)
        return head + data[:-1].replace(b"\n", b"\n" + head) + b"\n"
    *whole, last = data.split(b"\n")
    heads = map(_HEADER.pack, itertools.repeat(stream), map((1).__add__, map(len, whole)))
    out = b"".join(itertools.chain.from_iterable(zip(heads, whole, itertools.repeat(b"\n"))))
    return out + frame(stream, last) if last else out


def attach(ctx: Context, req: Request, id):
    want = {STDOUT: req.flag("stdout"), STDERR: req.flag("stderr")}
    rec, pending, detach = _attach_begin(ctx, req, id, want, req.flag("stdin"))
    tty = bool(rec["spec"].get("tty"))
    client = AfterHead(req.conn.hijack(req, RAW_STREAM))  # its first bytes once the client read the head
    _attach_run(ctx, req, rec, pending, client, req.conn.pending_input(), want, detach, mux=not tty)


def attach_ws(ctx: Context, req: Request, id):
    """``GET /containers/{id}/attach/ws``: attach over a WebSocket, as browsers can. The output goes
    raw (never multiplexed) as binary messages, the client's messages to the input; ``stdin``,
    ``stdout``, ``stderr`` as asked, absent ones on below API 1.42 (Docker ignored them there)."""
    from rootless.api import routes, websocket
    why = websocket.handshake_error(req.headers)
    if why:
        raise http.BadRequest(why)
    version = routes.split_version(req.path)[0] or routes.API_VERSION
    number = tuple(map(int, version.split(".")))
    old = number < (1, 42)
    want = {STDOUT: req.flag("stdout", old), STDERR: req.flag("stderr", old)}
    rec, pending, detach = _attach_begin(ctx, req, id, want, req.flag("stdin", old))
    ws = websocket.accept(req.conn, req, websocket.TEXT if number < (1, 28) else websocket.BINARY)
    try:
        _attach_run(ctx, req, rec, pending, ws, ws.pending() or b"", want, detach, mux=False)
    finally:
        ws.shutdown()  # the close frame, when the relay did not send it (logs only, no keeper)


def _attach_begin(ctx: Context, req: Request, id, want: dict, stdin: bool):
    """The checks before an attach answers: (record, the socket its keeper will connect to when
    it has not started, the detach filter of its input; None without stdin)."""
    from rootless.runtime import keeperclient
    rec = uc.lookup(ctx, id)
    req.drain()
    if not req.flag("stream") and not req.flag("logs"):
        raise UsageError("attach needs stream=1 or logs=1")
    want["stdin"] = stdin
    detach = _detach_keys(req.arg("detachKeys")) if rec["spec"].get("tty") and stdin else None
    pending = None
    if req.flag("stream") and not uc.is_running(rec):
        pending = keeperclient.register_pending(ctx.paths.pending(rec["id"]))
    return rec, pending, detach


def _attach_run(ctx: Context, req: Request, rec: ContainerRecord, pending, client, early: bytes, want: dict,
                detach, mux: bool) -> None:
    """The log's replay (``logs``), then the container's streams (``stream``), to a hijacked client."""
    from rootless.runtime import keeperclient
    try:
        if req.flag("logs"):  # (a raw client's sends wait until it read the head: ``api.hijack``)
            for block in uc.log_entries(ctx, rec, False, None, None, None):
                n = STDERR if block.stream == "stderr" else STDOUT
                if want[n]:
                    client.sendall(frames(n, block.data) if mux else block.data)
        if not req.flag("stream"):
            return
        if pending is not None:
            link = await_keeper(ctx, rec["id"], pending[0])
        else:
            try:
                link = keeperclient.connect(ctx.paths.run_dir(rec["id"]))
            except OSError:
                link = None
        if link is None:
            return
        relay(link, client, not mux, want, want["stdin"], early, detach,
              close_stdin=bool(rec["spec"].get("stdin_once")) and not rec["spec"].get("tty"))
    finally:
        _unregister(pending)


def _detach_keys(spec: str | None):
    """The ``detachKeys`` query parameter (the client's config file's, which it sends), else
    ctrl-p ctrl-q: the filter of a terminal's input that ends the attach (``DetachKeys``)."""
    from rootless.engine.attach import parse_detach_keys
    from rootless.runtime.terminal import DetachKeys
    return DetachKeys(parse_detach_keys(spec or "ctrl-p,ctrl-q"))


def relay(link: keeperclient.Link, client: Hijacked, tty: bool, want: dict, stdin: bool,
          early: bytes = b"", detach=None, close_stdin: bool = False) -> None:
    """Between a keeper's attach socket and a hijacked client until the container ends: output as
    frames (raw with a tty), the client's bytes as input. The client's half-close (or its leaving)
    closes the container's input when ``close_stdin`` (Docker's StdinOnce without a terminal): the
    container reads EOF, its output still comes. Otherwise it ends the attach, as Docker's does,
    and leaves the container's input open for a later attach. The ``detach`` keys (a
    ``DetachKeys`` filter of the input) end the stream and leave the container running, its input open."""
    link.sock.setblocking(True)

    class _Sender:  # what the detach filter writes to: the keeper, as input
        @staticmethod
        def write(data: bytes) -> None:
            link.send_input(data)

    if stdin and early and _input(_Sender, early, detach):
        return _detached(link, client)
    watch: list[keeperclient.Link | Hijacked] = [link, client] if stdin else [link]
    while True:
        ready, _, _ = select.select(watch, [], [])
        if client in ready:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if data is None:  # a WebSocket's control frame, or a part of a frame: nothing for the input
                pass
            elif data:
                if _input(_Sender, data, detach):
                    return _detached(link, client)
            elif close_stdin:
                watch.remove(client)
                link.close_stdin()
            else:
                break
        if link in ready:
            kind, output = link.receive()
            if kind in ("end", "exit") or not isinstance(output, bytes):
                break
            n = STDOUT if kind == "stdout" else STDERR
            if want.get(n):
                try:
                    client.sendall(output if tty else frame(n, output))
                except OSError:
                    break
    link.close()
    try:
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _input(sender, data: bytes, detach) -> bool:
    """The client's bytes to the container's input; True when they held the detach keys."""
    if detach is None:
        sender.write(data)
        return False
    return detach.feed(data, None, sink=sender)


def _detached(link: keeperclient.Link, client: Hijacked) -> None:
    """The end of a detached attach: the keeper's link closed without closing the input, the
    client's connection closed both ways, as Docker does."""
    link.close()
    try:
        client.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def logs(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    tty = bool(rec["spec"].get("tty"))
    want = {STDOUT: req.flag("stdout"), STDERR: req.flag("stderr")}
    if not any(want.values()):
        raise UsageError("you must choose at least one stream")
    tail = req.arg("tail") or "all"
    tail_n = None if tail == "all" else int(tail) if tail.isdigit() else None
    since, until = req.arg("since"), req.arg("until")
    entries = uc.log_entries(ctx, rec, req.flag("follow"), tail_n, since if since not in (None, "", "0") else None,
                             until if until not in (None, "", "0") else None)
    stream = req.conn.start_stream(200, RAW_STREAM)
    stamps, details = req.flag("timestamps"), uc.log_details(rec) if req.flag("details") else None
    batches = [entries] if isinstance(entries, list) else entries
    for batch in batches:
        out = []
        for block in batch:
            n = STDERR if block.stream == "stderr" else STDOUT
            if want[n]:
                data = block.stamped(stamps, details) if stamps or details is not None else block.data
                out.append(data if tty else frames(n, data))
        stream.write(b"".join(out))
    stream.end()


# ---- files ---------------------------------------------------------------------------------------
def changes(ctx: Context, req: Request, id):
    """``GET /containers/{id}/changes``: Docker's ``[{"Path", "Kind"}]`` (0 changed, 1 added, 2 deleted)."""
    rec = uc.lookup(ctx, id)
    return 200, [{"Path": path, "Kind": kind} for path, kind in containerfs.diff(ctx, rec)]


def export(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    stream = req.conn.start_stream(200, "application/x-tar")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            containerfs.export(ctx, rec, w)
            code = 0
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(w)
    while data := os.read(r, 1 << 20):
        stream.write(data)
    os.close(r)
    os.waitpid(pid, 0)
    stream.end()


def commit(ctx: Context, req: Request):
    body = req.json()
    rec = uc.lookup(ctx, req.arg("container") or "")
    repo, tag = req.arg("repo"), req.arg("tag")
    ref = f"{repo}:{tag}" if repo and tag else repo
    del body  # a config to merge is not supported: use changes=
    changes = [c for c in (req.query.get("changes") or []) if c]
    image_id = containerfs.commit(ctx, rec, ref, req.arg("author"), req.arg("comment"), changes)
    return 201, {"Id": image_id}


def _stat_header(ctx: Context, rec: ContainerRecord, path: str) -> str:
    import base64
    import json
    return base64.b64encode(json.dumps(containerfs.stat_path(ctx, rec, path)).encode()).decode()


def _path_arg(req: Request) -> str:
    path = req.arg("path") or ""
    if not path:
        raise UsageError("path is missing (?path=)", "name a path in the container")
    return path


def archive_head(ctx: Context, req: Request, id):
    rec, path = uc.lookup(ctx, id), _path_arg(req)
    req.conn.send(200, b"", content_type=None,
                  headers=[("X-Docker-Container-Path-Stat", _stat_header(ctx, rec, path))])


def archive_get(ctx: Context, req: Request, id):
    """A tar of ``path`` in the container (``docker cp CONTAINER:PATH -``), made inside it: a
    device node is its header, as in Docker."""
    import tempfile
    rec, path = uc.lookup(ctx, id), _path_arg(req)
    stat_header = _stat_header(ctx, rec, path)  # a missing path: 404 before anything is sent
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp, prefix="api-cp-") as f:
        containerfs.copy_out_tar(ctx, rec, path, f.fileno())
        f.seek(0)
        stream = req.conn.start_stream(200, "application/x-tar", [("X-Docker-Container-Path-Stat", stat_header)])
        while data := f.read(1 << 20):
            stream.write(data)
        stream.end()


def archive_put(ctx: Context, req: Request, id):
    """Unpack a tar into the directory ``path`` in the container (``docker cp - CONTAINER:PATH``):
    inside the container's root, by the rules of :func:`rootless.engine.containerfs.extract_archive`."""
    import tempfile
    rec, path = uc.lookup(ctx, id), _path_arg(req)
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp, prefix="api-cp-") as f:
        try:
            for chunk in req.body_chunks():
                f.write(chunk)
            f.flush()
        except OSError as e:  # a full disk: one line naming the store
            from rootless.base.errors import from_oserror
            raise from_oserror(f"keep the uploaded archive in {ctx.paths.tmp}", e) from None
        try:
            containerfs.extract_archive(ctx, rec, path, f.fileno())
        except containerfs.ReadOnlyPath as e:
            return 403, {"message": e.message}  # Docker's status for a read-only volume or root
    return 200, None
