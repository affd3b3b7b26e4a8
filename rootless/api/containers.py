"""``/containers/...``: Docker's container endpoints over the CLI's use cases.

``create`` turns Docker's container config into the CLI's run options (``to_run_options``) so
that a container made here is the one ``rootless ps`` shows, and the other way round.
``attach`` and ``wait`` on a container that has not started yet register a socket that the
container's keeper connects to before the container runs (``keeperclient.register_pending``): the
client sees all the output and the exit code, however fast the container ends, as the docker
CLI's ``run`` (attach, wait, then start) needs.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import TYPE_CHECKING

from rootless.api import http
from rootless.base.clock import now_iso
from rootless.base.errors import Conflict, ContainerNotFound, UsageError
from rootless.engine import containerfs, containerstats, dockerview
from rootless.engine import containers as uc

if TYPE_CHECKING:
    from rootless.api.http import Request
    from rootless.engine.context import Context
    from rootless.runtime import keeperclient
    from rootless.runtime.state import ContainerRecord

STDOUT, STDERR = 1, 2
RAW_STREAM = "application/vnd.docker.raw-stream"


# ---- config -> run options ------------------------------------------------------------------
# The JSON types of the fields read here (as Docker's decoder, a value of another type is refused):
# "strs" a list of strings, "dicts" a list of objects, "map" an object of strings, "ints" a number.
_CONFIG = {"Image": str, "Cmd": "cmd", "Entrypoint": "cmd", "Env": "strs", "WorkingDir": str, "User": str,
           "Hostname": str, "Tty": bool, "OpenStdin": bool, "Labels": "map", "ExposedPorts": dict,
           "Volumes": dict, "MacAddress": str, "HostConfig": dict, "NetworkingConfig": dict}
_HOST = {"PortBindings": dict, "Mounts": "dicts", "Binds": "strs", "NetworkMode": str, "LogConfig": dict,
         "SecurityOpt": "strs", "Devices": "dicts", "RestartPolicy": dict, "Links": "strs", "ExtraHosts": "strs",
         "Dns": "strs", "DnsSearch": "strs", "DnsOptions": "strs", "Tmpfs": "map", "VolumesFrom": "strs",
         "CapAdd": "strs", "CapDrop": "strs", "UsernsMode": str, "Init": bool, "AutoRemove": bool,
         "PublishAllPorts": bool, "ReadonlyRootfs": bool, "Privileged": bool, "Memory": int,
         "MemoryReservation": int, "MemorySwap": int, "NanoCpus": int, "CpuShares": int, "CpusetCpus": str,
         "PidsLimit": int, "BlkioWeight": int, "BlkioDeviceReadBps": "dicts", "BlkioDeviceWriteBps": "dicts",
         "GroupAdd": "strs", "PidMode": str, "UTSMode": str, "CgroupnsMode": str, "Isolation": str,
         "Runtime": str, "DeviceCgroupRules": "strs", "VolumeDriver": str}


_NESTED = {  # HostConfig's lists of objects, and objects, field by field
    "Mounts": {"Type": str, "Source": str, "Target": str, "ReadOnly": bool, "TmpfsOptions": dict},
    "Devices": {"PathOnHost": str, "PathInContainer": str, "CgroupPermissions": str},
    "BlkioDeviceReadBps": {"Path": str, "Rate": int}, "BlkioDeviceWriteBps": {"Path": str, "Rate": int},
    "LogConfig": {"Type": str, "Config": "map"}, "RestartPolicy": {"Name": str},
}


def _check_types(body: dict) -> None:
    http.check_types(body, _CONFIG)
    hc = body.get("HostConfig") or {}
    http.check_types(hc, _HOST, "HostConfig.")
    for key, shapes in _NESTED.items():
        value = hc.get(key) or []
        for item in value if isinstance(value, list) else [value]:
            http.check_types(item, shapes, f"HostConfig.{key}.")
    for m in hc.get("Mounts") or []:
        http.check_types(m.get("TmpfsOptions") or {}, {"SizeBytes": int, "Mode": int},
                         "HostConfig.Mounts.TmpfsOptions.")
    for d in hc.get("Devices") or []:
        if not d.get("PathOnHost"):
            raise UsageError("invalid JSON: HostConfig.Devices needs PathOnHost")
    for bindings in (hc.get("PortBindings") or {}).values():
        if bindings is not None and not isinstance(bindings, list):
            raise UsageError("invalid JSON: HostConfig.PortBindings must map ports to lists of {HostIp, HostPort}")
        for b in bindings or ():
            if not isinstance(b, dict):
                raise UsageError("invalid JSON: HostConfig.PortBindings must map ports to lists of {HostIp, HostPort}")
            http.check_types(b, {"HostIp": str, "HostPort": str}, "HostConfig.PortBindings.")


def to_run_options(body: dict, name: str | None, platform: str | None = None):
    """Docker's ``ContainerConfig`` + ``HostConfig`` as the CLI's RunOptions (the same parsers then
    read every value)."""
    from rootless.runtime.spec import RunOptions
    _check_types(body)
    hc = body.get("HostConfig") or {}
    image = body.get("Image") or ""
    if not image:
        raise UsageError("no image given: the config needs Image")
    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    publish = []
    for port, bindings in (hc.get("PortBindings") or {}).items():
        proto_port = port if "/" in port else f"{port}/tcp"
        for b in bindings or [{}]:
            ip, hp = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            ip = f"[{ip}]" if ":" in ip else ip
            publish.append(f"{ip}:{hp}:{proto_port}" if ip else (f"{hp}:{proto_port}" if hp else proto_port))
    mounts = []
    for m in hc.get("Mounts") or []:
        parts = [f"type={m.get('Type', 'volume')}"]
        if m.get("Source"):
            parts.append(f"source={m['Source']}")
        parts.append(f"target={m.get('Target', '')}")
        if m.get("ReadOnly"):
            parts.append("readonly")
        tmpfs = m.get("TmpfsOptions") or {}
        if tmpfs.get("SizeBytes"):
            parts.append(f"tmpfs-size={tmpfs['SizeBytes']}")
        if tmpfs.get("Mode"):
            parts.append(f"tmpfs-mode={tmpfs['Mode']:o}")
        mounts.append(",".join(parts))
    volumes = list(hc.get("Binds") or [])
    bound = {v.split(":")[1] for v in volumes if v.count(":") >= 1}
    volumes += [t for t in (body.get("Volumes") or {}) if t not in bound]  # anonymous volumes
    network = hc.get("NetworkMode") or "default"
    if network in ("default", "bridge"):
        network = "slirp4netns"
    log = hc.get("LogConfig") or {}
    limits = _limits(hc)
    security = list(hc.get("SecurityOpt") or [])
    devices = [f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:{d.get('CgroupPermissions') or 'rwm'}"
               for d in hc.get("Devices") or []]
    restart = (hc.get("RestartPolicy") or {}).get("Name") or "no"
    if restart not in ("no", ""):
        raise UsageError(f"restart policy {restart!r} is not supported: rootless has no daemon to restart containers",
                         "leave the restart policy out (a systemd user unit can restart a container)")
    return RunOptions(
        image=image, command=tuple(cmd or ()), entrypoint=None if entrypoint is None else tuple(entrypoint),
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        hostname=body.get("Hostname") or None, name=name or None, network=network,
        init=bool(hc.get("Init")), rm=bool(hc.get("AutoRemove")), interactive=bool(body.get("OpenStdin")),
        tty=bool(body.get("Tty")), publish=tuple(publish), publish_all=bool(hc.get("PublishAllPorts")),
        expose=tuple(body.get("ExposedPorts") or ()), links=tuple(_link(x) for x in hc.get("Links") or ()),
        add_hosts=tuple(hc.get("ExtraHosts") or ()), dns=tuple(hc.get("Dns") or ()),
        dns_search=tuple(hc.get("DnsSearch") or ()), dns_options=tuple(hc.get("DnsOptions") or ()),
        mac_address=body.get("MacAddress") or None, pull="never", platform=platform or None,
        log_driver=log.get("Type") or None,
        log_opts=tuple(f"{k}={v}" for k, v in (log.get("Config") or {}).items()),
        volumes=tuple(volumes), mounts=tuple(mounts),
        tmpfs=tuple(f"{k}:{v}" if v else k for k, v in (hc.get("Tmpfs") or {}).items()),
        volumes_from=tuple(hc.get("VolumesFrom") or ()), read_only=bool(hc.get("ReadonlyRootfs")),
        limits=limits, cap_add=tuple(hc.get("CapAdd") or ()), cap_drop=tuple(hc.get("CapDrop") or ()),
        privileged=bool(hc.get("Privileged")), security_opts=tuple(security), devices=tuple(devices),
        userns=hc.get("UsernsMode") or "", labels=dict(body.get("Labels") or {}) or None,
        **_docker_settings(body, hc),
    )


def _docker_settings(body: dict, hc: dict) -> dict:
    """The RunOptions of Docker's fields that the CLI's flags do not share: Env as sent (a name
    without a value stays so, not looked up in the service's environment), GroupAdd,
    StopTimeout, and the settings kept to be shown as given (``ContainerSpec.asked``); what
    cannot be had here is refused in Docker's words."""
    stop_timeout = body.get("StopTimeout")
    if stop_timeout is not None and (not isinstance(stop_timeout, int) or isinstance(stop_timeout, bool)):
        raise UsageError("invalid JSON: StopTimeout must be a number of seconds")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and (not isinstance(swappiness, int) or not -1 <= swappiness <= 100):
        raise UsageError(f"invalid value: {swappiness}, valid memory swappiness range is 0-100")
    isolation = hc.get("Isolation") or ""
    if isolation not in ("", "default"):
        raise UsageError(f"invalid isolation {isolation!r}: on Linux only 'default' is supported")
    runtime = hc.get("Runtime") or ""
    if runtime and runtime not in dockerview.RUNTIMES:
        raise UsageError(f"unknown or invalid runtime name: {runtime}",
                         f"leave Runtime out, or use {' or '.join(dockerview.RUNTIMES)} "
                         "(rootless runs every container itself)")
    for key, allowed in (("PidMode", ("",)), ("UTSMode", ("", "host")), ("CgroupnsMode", ("", "private")),
                         ("VolumeDriver", ("", "local"))):
        value = hc.get(key) or ""
        if value not in allowed:
            other = [repr(a) for a in allowed if a]
            raise UsageError(f"{key} {value!r} is not supported by rootless",
                             f"use {other[0]} or leave {key} out" if other else f"leave {key} out")
    asked = {"Isolation": isolation, "Runtime": runtime, "DeviceCgroupRules": list(hc.get("DeviceCgroupRules") or ()),
             "PidMode": hc.get("PidMode") or "", "UTSMode": hc.get("UTSMode") or "",
             "CgroupnsMode": hc.get("CgroupnsMode") or "", "VolumeDriver": hc.get("VolumeDriver") or ""}
    if swappiness not in (None, -1):
        asked["discarded_swappiness"] = swappiness
    return dict(raw_env=tuple(body.get("Env") or ()), group_add=tuple(hc.get("GroupAdd") or ()),
                stop_timeout=stop_timeout, asked={k: v for k, v in asked.items() if v})


def _link(text: str) -> str:
    """``/db:/web/db`` (Docker's stored form) or ``db:alias`` as ``--link`` takes it."""
    name, _, alias = text.partition(":")
    return f"{name.lstrip('/')}:{alias.rsplit('/', 1)[-1]}" if alias else name.lstrip("/")


def _limits(hc: dict) -> dict | None:
    from rootless.runtime import cgroups
    flags = cgroups.LimitOptions(
        memory=str(hc["Memory"]) if hc.get("Memory") else None,
        memory_reservation=str(hc["MemoryReservation"]) if hc.get("MemoryReservation") else None,
        memory_swap=str(hc["MemorySwap"]) if hc.get("MemorySwap") else None,
        cpus=str(hc["NanoCpus"] / 1e9) if hc.get("NanoCpus") else None,
        cpu_shares=str(hc["CpuShares"]) if hc.get("CpuShares") else None,
        cpuset_cpus=hc.get("CpusetCpus") or None,
        pids_limit=str(hc["PidsLimit"]) if hc.get("PidsLimit") else None,
        blkio_weight=str(hc["BlkioWeight"]) if hc.get("BlkioWeight") else None,
        device_read_bps=tuple(f"{d['Path']}:{d['Rate']}" for d in hc.get("BlkioDeviceReadBps") or ()),
        device_write_bps=tuple(f"{d['Path']}:{d['Rate']}" for d in hc.get("BlkioDeviceWriteBps") or ()))
    return cgroups.parse(flags) if any(flags) else None


# ---- record -> Docker's JSON ----------------------------------------------------------------
def _unix(iso: str) -> int:
    t = dockerview.parse_time(iso)
    return int(t) if t is not None else 0


def summary(ctx: Context, rec: ContainerRecord) -> dict:
    """One entry of ``GET /containers/json``."""
    spec, st = rec["spec"], rec["state"]
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
        "State": "dead" if rec.get("corrupt") else st.get("status", "created"),
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
    return 200, [summary(ctx, r) for r in list_containers(ctx, opts)]


def create(ctx: Context, req: Request):
    body = req.json()
    opts = to_run_options(body, req.arg("name"), req.arg("platform"))
    opts = _with_networks(ctx, opts, body)
    opts, warnings = _discard_unenforceable(opts)
    rec = uc.create(ctx, opts)
    return 201, {"Id": rec["id"], "Warnings": warnings}


def _discard_unenforceable(opts):
    """Limits this host cannot enforce are discarded with a warning, as Docker does on a host
    without the capability (the CLI refuses them): kept in ``asked`` to be shown by inspect."""
    kept, dropped, warnings = containerstats.discard_unenforceable(opts.limits)
    asked = dict(opts.asked or {})
    if dropped:
        asked["discarded_limits"] = dropped
        opts = opts._replace(limits=kept or None)
    if "discarded_swappiness" in asked:
        warnings.append("MemorySwappiness discarded: cgroup v2 has no per-cgroup swappiness")
    return opts._replace(asked=asked), warnings


def update(ctx: Context, req: Request, id):
    """``POST /containers/{id}/update``: new resource limits (what this host cannot enforce is
    discarded with a warning, as on create)."""
    body = req.json()
    http.check_types(body, {k: v for k, v in _HOST.items() if k in _LIMIT_FIELDS or k == "RestartPolicy"})
    policy = (body.get("RestartPolicy") or {}).get("Name") or ""
    if policy not in ("", "no"):
        raise UsageError(f"restart policy {policy!r} is not supported: rootless has no daemon to restart containers",
                         "leave the restart policy out (a systemd user unit can restart a container)")
    rec = uc.lookup(ctx, id)
    limits = _limits(body) or {}
    warnings = containerstats.update_api(ctx, rec, limits) if limits else []
    return 200, {"Warnings": warnings}


_LIMIT_FIELDS = ("Memory", "MemoryReservation", "MemorySwap", "NanoCpus", "CpuShares", "CpusetCpus", "PidsLimit",
                 "BlkioWeight", "BlkioDeviceReadBps", "BlkioDeviceWriteBps")


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
    if uc.is_running(rec):
        return 304, None
    uc.start(ctx, rec, attached=False)
    return 204, None


def stop(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec):
        return 304, None
    uc.stop(ctx, rec, req.int_arg("t"))
    return 204, None


def restart(ctx: Context, req: Request, id):
    uc.restart(ctx, uc.lookup(ctx, id), req.int_arg("t"))
    return 204, None


def kill(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec):
        raise Conflict(f"Container {rec['id']} is not running")
    uc.kill(ctx, rec, req.arg("signal") or "KILL")
    return 204, None


def rename(ctx: Context, req: Request, id):
    name = req.arg("name")
    if not name:
        raise UsageError("the new name is missing (?name=)")
    uc.rename(ctx, uc.lookup(ctx, id), name)
    return 204, None


def delete(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    uc.remove(ctx, rec, force=req.flag("force"), volumes=req.flag("v"))
    return 204, None


def prune(ctx: Context, req: Request):
    from rootless.engine import system
    removed, freed = system.container_prune(ctx)
    return 200, {"ContainersDeleted": removed or None, "SpaceReclaimed": freed}


def top(ctx: Context, req: Request, id):
    rec = uc.lookup(ctx, id)
    if not uc.is_running(rec):
        raise Conflict(f"Container {rec['id']} is not running")
    from rootless.engine.dockerview import top_rows
    return 200, {"Titles": ["UID", "PID", "PPID", "STIME", "TIME", "CMD"], "Processes": top_rows(rec["state"]["pid"])}


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
    h, w = req.int_arg("h", 0), req.int_arg("w", 0)
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
    if condition == "not-running" and not uc.is_running(rec):
        return 200, {"StatusCode": rec["state"].get("exit_code", 0), "Error": None}
    pending = None
    if not uc.is_running(rec):
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
        return uc.wait(ctx, rec)["state"].get("exit_code", 0)
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
    the container is gone or ended without running again. (A client that hangs up meanwhile
    cannot be told from one that only closed its input: the wait ends with the container.)"""
    from rootless.runtime import keeperclient
    began = now_iso()
    seen_running = 0
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
        elif st.get("status") == "exited" and (st.get("finished_at") or "") > began:
            return None


def _unregister(pending) -> None:
    if pending is not None:
        from rootless.runtime import keeperclient
        keeperclient.unregister_pending(*pending)




# ---- attach and logs --------------------------------------------------------------------------
def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream: a header (stream, 0, 0, 0, big-endian length), then the bytes."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def attach(ctx: Context, req: Request, id):
    from rootless.runtime import keeperclient
    rec = uc.lookup(ctx, id)
    req.drain()
    tty = bool(rec["spec"].get("tty"))
    want = {STDOUT: req.flag("stdout"), STDERR: req.flag("stderr")}
    stdin = req.flag("stdin")
    if not req.flag("stream") and not req.flag("logs"):
        raise UsageError("attach needs stream=1 or logs=1")
    pending = None
    if req.flag("stream") and not uc.is_running(rec):
        pending = keeperclient.register_pending(ctx.paths.pending(rec["id"]))
    client = req.conn.hijack(req, RAW_STREAM)
    early = req.conn.pending_input()
    try:
        if req.flag("logs"):
            for entry in uc.log_entries(ctx, rec, False, None, None, None):
                n = STDERR if entry.stream == "stderr" else STDOUT
                if want[n]:
                    data = entry.text.encode()
                    client.sendall(data if tty else frame(n, data))
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
        relay(link, client, tty, want, stdin, early)
    finally:
        _unregister(pending)


def relay(link: keeperclient.Link, client: socket.socket, tty: bool, want: dict, stdin: bool,
          early: bytes = b"") -> None:
    """Between a keeper's attach socket and a hijacked client until the container ends: output as
    frames (raw with a tty), the client's bytes as input, its half-close as the end of input."""
    link.sock.setblocking(True)
    if stdin and early:
        link.send_input(early)
    watch = [link, client] if stdin else [link]
    while True:
        ready, _, _ = select.select(watch, [], [])
        if client in ready:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if data:
                link.send_input(data)
            else:
                watch.remove(client)
                link.close_stdin()
        if link in ready:
            kind, data = link.receive()
            if kind in ("end", "exit"):
                break
            n = STDOUT if kind == "stdout" else STDERR
            if want.get(n):
                try:
                    client.sendall(data if tty else frame(n, data))
                except OSError:
                    break
    link.close()
    try:
        client.shutdown(socket.SHUT_WR)
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
    stamps = req.flag("timestamps")
    from rootless.runtime.logs import format_time
    batches = [entries] if isinstance(entries, list) else entries
    for batch in batches:
        out = bytearray()
        for e in batch:
            n = STDERR if e.stream == "stderr" else STDOUT
            if not want[n]:
                continue
            data = ((format_time(e.time_ns) + " ") if stamps else "") + e.text
            out += data.encode() if tty else frame(n, data.encode())
        stream.write(bytes(out))
    stream.end()


# ---- files ---------------------------------------------------------------------------------------
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
