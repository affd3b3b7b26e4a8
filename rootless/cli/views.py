"""What ``ps`` and ``inspect`` show of a container record, as Docker shows it (pure functions)."""

from __future__ import annotations

import time

from rootless.engine.dockerview import docker_status, inspect, live_ports, since, status_text, top_rows  # noqa: F401 - inspect: the CLI's view


def command_text(argv: list[str], trunc: bool = True) -> str:
    cmd = " ".join(argv)
    if trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return f'"{cmd}"'


def ps_row(rec: dict, trunc: bool = True, now: float | None = None, sizes: tuple[int, int] | None = None) -> dict:
    """The fields ``ps --format`` knows (``{{.ID}}``, ``{{.Names}}``, ...); ``sizes``: the writable
    layer's and the whole root filesystem's (``ps -s``), shown as Docker's ``2B (virtual 1.98MB)``."""
    spec = rec["spec"]
    now = time.time() if now is None else now
    labels = spec.get("labels") or {}
    return {
        "ID": rec["id"][:12] if trunc else rec["id"],
        "Image": spec.get("image_name", ""),
        "Command": command_text(spec.get("argv", []), trunc),
        "CreatedAt": rec.get("created", ""),
        "RunningFor": f"{since(rec.get('created', ''), now)} ago" if rec.get("created") else "",
        "Status": status_text(rec, now),
        "State": docker_status(rec),
        "Ports": ports_text(rec),
        "Names": rec["name"],
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Mounts": "",
        "Networks": spec.get("network", ""),
        "Size": "" if sizes is None else _sizes_text(*sizes),
    }


def _sizes_text(rw: int, rootfs: int) -> str:
    from rootless.cli.render import human_size
    return f"{human_size(rw)} (virtual {human_size(rootfs)})"


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "Size": "SIZE"}
PS_DEFAULT = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]


# In Docker's types these are maps (any key may be asked for); every other object is a struct.
_MAPS = {"Labels", "ExposedPorts", "Volumes", "Ports", "Networks", "Data", "PortBindings", "Containers", "Options"}


# Fields of Docker's structs that are slices or maps: null in the JSON, a typed nil for the
# template (``{{.Config.Env}}`` prints ``[]`` there, as Docker's, not ``<nil>``).
_NIL_SLICES = {"Env", "Cmd", "Entrypoint", "OnBuild", "Shell"}
_NIL_MAPS = {"Labels", "Volumes", "ExposedPorts"}


def template_data(obj, name: str = ""):
    """``obj`` for a Go template: structs where Docker has structs, so a mistyped field is an error."""
    from rootless.cli.gotemplate import NilMap, NilSlice, Struct
    if obj is None and name in _NIL_SLICES:
        return NilSlice()
    if obj is None and name in _NIL_MAPS:
        return NilMap()
    if isinstance(obj, dict):
        converted = {k: template_data(v, k) for k, v in obj.items()}
        return converted if name in _MAPS else Struct(converted)
    if isinstance(obj, list):
        return [template_data(v) for v in obj]
    return obj


def ports_text(rec: dict) -> str:
    """ps's PORTS: the published ports while running, else the exposed ones (as Docker)."""
    from netstack.spec import format_port
    live = live_ports(rec)
    if live:
        return ", ".join(format_port(m) for m in live)
    return ", ".join(rec["spec"].get("exposed", []))


def port_lines(rec: dict, port: str | None = None) -> list[str]:
    """``port``: ``80/tcp -> 0.0.0.0:8080`` lines, or only the host side for ``port``."""
    live = sorted(live_ports(rec), key=lambda m: (m["container_port"], m["proto"], m["host_port"]))
    if port is None:
        return [f"{m['container_port']}/{m['proto']} -> {_host(m)}" for m in live]
    num, _, proto = port.partition("/")
    return [_host(m) for m in live if str(m["container_port"]) == num and m["proto"] == (proto or "tcp")]


def _host(m: dict) -> str:
    ip = m["host_ip"]
    return f"[{ip}]:{m['host_port']}" if ":" in ip else f"{ip}:{m['host_port']}"


# ---- stats ---------------------------------------------------------------------------------------------
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_DEFAULT = ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")


def stats_row(row, trunc: bool = True) -> dict:
    """A ``containerstats.StatsRow`` as Docker's columns show it (binary units for memory, decimal
    for I/O, as Docker prints them)."""
    from rootless.cli.render import human_size
    cid = row.id[:12] if trunc else row.id
    return {"ID": cid, "Container": cid, "Name": row.name, "CPUPerc": f"{row.cpu_percent:.2f}%",
            "MemUsage": f"{_binary(row.mem_usage)} / {_binary(row.mem_limit)}", "MemPerc": f"{row.mem_percent:.2f}%",
            "NetIO": f"{human_size(row.net_rx)} / {human_size(row.net_tx)}",
            "BlockIO": f"{human_size(row.block_read)} / {human_size(row.block_write)}", "PIDs": str(row.pids)}


def _binary(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"
