"""Docker's JSON view of a container record (``inspect``, the API's ``containers/{id}/json``):
pure functions shared by the command line and the API server."""

from __future__ import annotations

import calendar
import time

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.runtime.state import ContainerRecord

ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_time(s: str) -> float | None:
    if not s:
        return None
    s = s.rstrip("Z")
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        frac = float("0." + (f[:9] or "0"))
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%S")) + frac
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = int(s / 3600 + 0.5)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def since(iso: str, now: float) -> str:
    t = parse_time(iso)
    return human_duration(now - t) if t is not None else "N/A"


def docker_status(rec: ContainerRecord) -> str:
    """Docker's ``State.Status``: the record's, or ``paused`` for a paused running container."""
    from rootless.runtime.pause import is_paused
    st = rec["state"]
    return "paused" if is_paused(dict(st)) else st.get("status", "created")


def status_text(rec: ContainerRecord, now: float | None = None) -> str:
    """``Up 3 minutes``, ``Up 3 minutes (Paused)``, ``Exited (0) 5 seconds ago``, ``Created``."""
    now = time.time() if now is None else now
    st = rec["state"]
    if st["status"] == "running":
        return f"Up {since(st.get('started_at', ''), now)}" + (" (Paused)" if docker_status(rec) == "paused"
                                                               else _health_suffix(st))
    if st["status"] == "exited":
        hint = " (it left processes behind: a daemon?)" if st.get("error") == _daemon_hint() else ""
        return f"Exited ({st.get('exit_code', 0)}) {since(st.get('finished_at', ''), now)} ago{hint}"
    if st["status"] == "restarting":
        return f"Restarting ({st.get('exit_code', 0)}) {since(st.get('finished_at', ''), now)} ago"
    if rec.get("corrupt"):
        return "Dead (damaged record: rm -f it)"
    return st["status"].capitalize()


def _restart_policy(spec: dict) -> dict:
    from rootless.runtime import restart
    return restart.of(spec)



def _health_suffix(st) -> str:
    """`` (healthy)``, `` (unhealthy)``, `` (health: starting)`` or nothing."""
    if not st.get("health"):
        return ""
    from rootless.runtime import health
    return health.ps_suffix(st)


def live_ports(rec: ContainerRecord) -> list[dict]:
    st = rec["state"]
    return (st.get("net") or {}).get("ports", []) if st.get("status") == "running" else []


def _port_map(rec: ContainerRecord) -> dict:
    """NetworkSettings.Ports: every exposed port, with its host bindings (null if none)."""
    out: dict[str, list[dict[str, str]] | None] = {p: None for p in rec["spec"].get("exposed", [])}
    for m in live_ports(rec):
        key = f"{m['container_port']}/{m['proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": m["host_ip"], "HostPort": str(m["host_port"])}]
    return out


def _port_bindings(spec: dict) -> dict:
    out: dict = {}
    for host_ip, host_port, host_end, cport, proto in spec.get("ports", []):
        hp = "" if not host_port else (str(host_port) if host_end == host_port else f"{host_port}-{host_end}")
        out.setdefault(f"{cport}/{proto}", []).append({"HostIp": host_ip, "HostPort": hp})
    return out


def _network_settings(rec: ContainerRecord, paths) -> dict:
    spec, st = rec["spec"], rec["state"]
    net = (st.get("net") or {}) if st.get("status") == "running" else {}
    mode = spec.get("network", "none")
    kind = mode.partition(":")[0]
    ip, gw, mac = net.get("ip", ""), net.get("gateway", ""), net.get("mac", "")
    prefix = net.get("prefix", 24) if ip else 0  # a network's subnet given to slirp4netns, else its /24
    networks = {}
    if spec.get("networks"):  # user-defined networks
        from rootless.engine.networks import endpoint_id, name_of
        for nid, aliases in spec["networks"]:
            networks[name_of(paths, nid)] = {
                "IPAddress": ip, "IPPrefixLen": prefix, "Gateway": gw, "MacAddress": mac,
                "Aliases": list(aliases) or None, "Links": None, "NetworkID": nid,
                "EndpointID": endpoint_id(nid, rec["id"]) if net else "",
                "DNSNames": [rec["name"], *aliases, rec["id"][:12]] if net else None,
                **_endpoint_settings(spec, nid, mac)}
    elif kind in ("slirp4netns", "none", "host"):
        networks[kind] = {"IPAddress": ip, "IPPrefixLen": prefix, "Gateway": gw, "MacAddress": mac,
                          "Aliases": None, "Links": None, "NetworkID": _predefined_id(kind), "EndpointID": "",
                          **_endpoint_settings(spec, _predefined_id(kind), mac)}
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False,
        "SandboxKey": f"/proc/{st.get('keeper')}/ns/net" if net and kind != "host" else "",
        "Ports": _port_map(rec), "IPAddress": ip, "IPPrefixLen": prefix, "Gateway": gw,
        "MacAddress": mac, "Networks": networks,
    }


def _predefined_id(kind: str) -> str:
    from rootless.engine.networks import predefined_id
    return predefined_id({"slirp4netns": "bridge"}.get(kind, kind))


def _endpoint_settings(spec: dict, nid: str, mac: str) -> dict:
    """An endpoint's settings as the client gave them (``IPAMConfig``, ``Links``, ``DriverOpts``; Docker
    shows null for those not given) and the MAC address asked for while none is live."""
    from rootless.engine.networks import endpoint_settings
    kept = endpoint_settings(spec, nid)
    return {"IPAMConfig": kept.get("IPAMConfig"), "Links": kept.get("Links"), "DriverOpts": kept.get("DriverOpts"),
            "MacAddress": mac or kept.get("MacAddress") or spec.get("mac") or ""}


def inspect(rec: ContainerRecord, paths) -> dict:
    """Docker-compatible ``inspect`` JSON of a container."""
    spec, st, cid = rec["spec"], rec["state"], rec["id"]
    argv = spec.get("argv", [])
    running = st["status"] == "running"
    restarting = st["status"] == "restarting"  # Docker's Running stays true through the back-off
    doc = {
        "Id": cid,
        "Created": rec.get("created", ""),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": docker_status(rec), "Running": running or restarting, "Paused": docker_status(rec) == "paused",
            "Restarting": restarting,
            "OOMKilled": bool(st.get("oom_killed")), "Dead": False, "Pid": st.get("pid", 0) if running else 0,
            "ExitCode": st.get("exit_code", 0), "Error": st.get("error", ""),
            "StartedAt": st.get("started_at") or ZERO_TIME, "FinishedAt": st.get("finished_at") or ZERO_TIME,
            **({"Health": st["health"]} if st.get("health") else {}),
        },
        "Image": spec.get("image_id", ""),
        "ResolvConfPath": f"{paths.run_dir(cid)}/resolv.conf",
        "HostnamePath": f"{paths.run_dir(cid)}/hostname",
        "HostsPath": f"{paths.run_dir(cid)}/hosts",
        "LogPath": paths.container_log(cid),
        "Name": "/" + rec["name"],
        "RestartCount": st.get("restart_count") or 0,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "AutoRemove": bool(spec.get("remove")), "NetworkMode": _network_mode(spec, paths),
            "ReadonlyRootfs": bool(spec.get("read_only")),
            "Init": bool(spec.get("init")), "LogConfig": _log_config(spec.get("log")),
            "RestartPolicy": _restart_policy(spec), "Binds": None,
            "PortBindings": _port_bindings(spec), "PublishAllPorts": bool(spec.get("publish_all")),
            "Links": [f"/{_link_name(paths, t)}:/{rec['name']}/{a}" for t, a in spec.get("links", [])] or None,
            "Dns": list(spec.get("dns", [])), "DnsSearch": list(spec.get("dns_search", [])),
            "DnsOptions": list(spec.get("dns_options", [])),
            "ExtraHosts": [f"{h}:{ip}" for h, ip in spec.get("add_hosts", [])] or None,
            **_limits(spec.get("limits") or {}),
            **_security(spec),
        },
        "GraphDriver": {
            "Name": rec.get("rootfs_method", "overlay"),
            "Data": {
                "LowerDir": ":".join(paths.layer(d) for d in reversed(spec.get("layers", []))),
                "UpperDir": paths.upper(cid), "WorkDir": paths.work(cid), "MergedDir": paths.merged(cid),
            },
        },
        "Mounts": [_mount(m, paths) for m in spec.get("mounts") or ()],
        "Config": {
            "Hostname": spec.get("hostname", ""), "Domainname": spec.get("domainname", ""),
            "User": spec.get("user", ""),
            "AttachStdin": bool(spec.get("interactive")), "AttachStdout": True, "AttachStderr": True,
            "Tty": bool(spec.get("tty")), "OpenStdin": bool(spec.get("interactive")),
            "StdinOnce": bool(spec.get("stdin_once")),
            "Env": spec.get("env", []), "Cmd": argv[len(spec.get("entrypoint") or []):] or None,
            "Image": spec.get("image_name", ""),
            "Volumes": None, "WorkingDir": spec.get("workdir", ""),
            "Entrypoint": list(spec["entrypoint"]) if spec.get("entrypoint") else None,
            "Labels": spec.get("labels") or {}, "StopSignal": spec.get("stop_signal", "SIGTERM"),
            "ExposedPorts": {p: {} for p in spec.get("exposed", [])} or None,
            "MacAddress": spec.get("mac") or "",
            **({"Healthcheck": spec["healthcheck"]} if spec.get("healthcheck") else {}),
        },
        "NetworkSettings": _network_settings(rec, paths),
    }
    return _docker_fields(doc, spec)


def _mount(m: dict, paths) -> dict:
    """One of inspect's Mounts, as Docker shows it."""
    if m["type"] == "tmpfs":
        return {"Type": "tmpfs", "Source": "", "Destination": m["target"], "Mode": m.get("options", ""),
                "RW": m["rw"], "Propagation": ""}
    if m["type"] == "volume":
        return {"Type": "volume", "Name": m["name"], "Source": paths.volume_data(m["name"]),
                "Destination": m["target"], "Driver": "local", "Mode": "" if m["rw"] else "ro", "RW": m["rw"],
                "Propagation": ""}
    return {"Type": "bind", "Source": m["source"], "Destination": m["target"], "Mode": "" if m["rw"] else "ro",
            "RW": m["rw"], "Propagation": m.get("propagation") or "rprivate"}


def _security(spec: dict) -> dict:
    """CapAdd/CapDrop against Docker's default set, Privileged, SecurityOpt, Devices."""
    from rootless.runtime.security import DEFAULT_CAPS
    caps = spec.get("caps")
    caps = set(DEFAULT_CAPS if caps is None else caps)
    return {"CapAdd": sorted(caps - set(DEFAULT_CAPS)) or None, "CapDrop": sorted(set(DEFAULT_CAPS) - caps) or None,
            "Privileged": bool(spec.get("privileged")),
            "SecurityOpt": (["no-new-privileges"] if spec.get("no_new_privs") else [])
            + _seccomp_opt(spec) or None,
            "Devices": [{"PathOnHost": h, "PathInContainer": c, "CgroupPermissions": "rwm"}
                        for h, c in spec.get("devices") or []]}


def _seccomp_opt(spec: dict) -> list[str]:
    """Docker's SecurityOpt entries: seccomp=unconfined, or the text of a profile given by file;
    root emulation when asked for or refused."""
    setting = spec.get("seccomp", True)
    emulation = [f"root-emulation={spec['root_emulation']}"] if spec.get("root_emulation") in ("on", "off") else []
    if spec.get("privileged") or setting is True:
        return emulation
    if not setting:
        return ["seccomp=unconfined"] + emulation
    import json
    return ["seccomp=" + json.dumps(setting["profile"], separators=(",", ":"))] + emulation


def _limits(limits: dict) -> dict:
    from rootless.runtime.cgroups import host_config
    return host_config(limits)


def _log_config(log: dict | None) -> dict:
    """HostConfig.LogConfig: the driver and its options as ``--log-opt`` takes them."""
    if not log:
        return {"Type": "json-file", "Config": {}}
    from rootless.base.config import format_size
    opts = {}
    if log["driver"] != "none" and log.get("max_size"):
        opts = {"max-size": format_size(log["max_size"]), "max-file": str(log.get("max_file", 1))}
    opts.update(log.get("attrs") or {})
    return {"Type": log["driver"], "Config": opts}


# The runtime names a container may ask for (HostConfig.Runtime; ``info``'s Runtimes, the first
# the default): rootless runs every container itself, under the name Docker's clients know the
# default runtime by (docker-py's tests read ``runc`` back), or its own.
RUNTIMES = ("runc", "rootless")

# The fields of Docker API 1.41's ContainerInspect that rootless has no use for, with the
# values Docker shows for a container that did not ask for them.
_HOST_DEFAULTS = {
    "ContainerIDFile": "", "VolumeDriver": "", "VolumesFrom": None, "CgroupnsMode": "private", "GroupAdd": None,
    "IpcMode": "private", "Cgroup": "", "OomScoreAdj": 0, "PidMode": "", "UsernsMode": "", "UTSMode": "",
    "ShmSize": 64 * 1024 * 1024, "Runtime": RUNTIMES[0], "ConsoleSize": [0, 0], "Isolation": "", "CgroupParent": "",
    "BlkioWeightDevice": [], "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
    "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetMems": "", "DeviceCgroupRules": None,
    "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0, "MemorySwappiness": None,
    "OomKillDisable": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}
_ENDPOINT_DEFAULTS = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "",
                      "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                      "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
_NETWORK_DEFAULTS = {"LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
                     "SecondaryIPv6Addresses": None, "EndpointID": "", "GlobalIPv6Address": "",
                     "GlobalIPv6PrefixLen": 0, "IPv6Gateway": ""}
# HostConfig fields kept as the client gave them (``ContainerSpec.asked``)
_ASKED_HOST = ("VolumesFrom", "Tmpfs", "PidMode", "IpcMode", "UTSMode", "CgroupnsMode", "Isolation",
               "DeviceCgroupRules", "VolumeDriver", "ContainerIDFile")
# HostConfig fields of the process settings (runtime.procsettings), from the spec's own
_PROCESS_HOST = (("Ulimits", "ulimits", list), ("Sysctls", "sysctls", dict), ("OomScoreAdj", "oom_score_adj", int),
                 ("ShmSize", "shm_size", int))


def _docker_fields(doc: dict, spec: dict) -> dict:
    """The rest of Docker's ContainerInspect: the fields rootless has no use for with Docker's
    values, what the client asked for as it asked (``spec["asked"]``), limits this host could not
    enforce (discarded, as Docker does on such a host, but shown). (The API's view differs in two
    points: ``rootless.api.containers.api_view``.)"""
    asked = spec.get("asked") or {}
    doc.update({k: v for k, v in (("MountLabel", ""), ("ProcessLabel", ""), ("AppArmorProfile", ""),
                                  ("ExecIDs", None)) if k not in doc})
    hc = doc["HostConfig"]
    for key in _ASKED_HOST:
        if key in asked:
            hc[key] = asked[key]
    if asked.get("Runtime"):
        hc["Runtime"] = asked["Runtime"]
    if spec.get("group_add"):
        hc["GroupAdd"] = list(spec["group_add"])
    for key, field, kind in _PROCESS_HOST:
        if spec.get(field):
            hc[key] = kind(spec[field])
    hc.setdefault("UsernsMode", spec.get("userns") or "")
    if asked.get("discarded_limits"):
        from rootless.runtime.cgroups import host_config
        hc.update(host_config({**(spec.get("limits") or {}), **asked["discarded_limits"]}))
    for key, value in _HOST_DEFAULTS.items():
        hc.setdefault(key, value)
    if spec.get("stop_timeout") is not None:
        doc["Config"]["StopTimeout"] = spec["stop_timeout"]
    doc["Config"].setdefault("OnBuild", None)
    ns = doc["NetworkSettings"]
    for key, net_default in _NETWORK_DEFAULTS.items():
        ns.setdefault(key, net_default)
    for endpoint in ns["Networks"].values():
        for key, ep_default in _ENDPOINT_DEFAULTS.items():
            endpoint.setdefault(key, ep_default)
    return doc


def _daemon_hint() -> str:
    from rootless.runtime import state
    return state.DAEMON_HINT


def _network_mode(spec: dict, paths) -> str:
    """The --network given: a user-defined network's name, else the mode."""
    if spec.get("networks"):
        from rootless.engine.networks import name_of
        return name_of(paths, spec["networks"][0][0])
    return spec.get("network", "none")


def _link_name(paths, cid: str) -> str:
    """A linked container's current name (its id if it is gone)."""
    from rootless.runtime import state
    try:
        return state.lookup(paths, cid)["name"]
    except Exception:  # noqa: BLE001 - a removed or unreadable record: show the id
        return cid[:12]


def matches(rec: ContainerRecord, filters: list[str]) -> bool:
    """``--filter status=|name=|ancestor=|label=|id=|restart-policy=`` (same key: any; different keys: all)."""
    by_key: dict[str, list[str]] = {}
    for f in filters:
        key, _, value = f.partition("=")
        by_key.setdefault(key, []).append(value)
    spec = rec["spec"]
    for key, values in by_key.items():
        if key == "status":
            ok = docker_status(rec) in values
        elif key == "name":
            ok = any(v in rec["name"] for v in values)
        elif key == "id":
            ok = any(rec["id"].startswith(v) for v in values)
        elif key == "ancestor":
            ok = any(_ancestor(spec, v) for v in values)
        elif key == "label":
            labels = spec.get("labels") or {}
            ok = all(_label(labels, v) for v in values)
        elif key == "restart-policy":  # rootless's own (as Podman's): `start --all --filter restart-policy=always`
            ok = (spec.get("restart") or {}).get("Name", "no") in values
        elif key == "health":
            ok = _health_filter(rec, values)
        else:
            from rootless.base.errors import UsageError
            raise UsageError(f"invalid filter {key!r}",
                             "use status=, name=, id=, ancestor=, label=, health= or restart-policy=")
        if not ok:
            return False
    return True


def _health_filter(rec: ContainerRecord, values: list[str]) -> bool:
    """``health=starting|healthy|unhealthy|none`` (``none``: no healthcheck)."""
    from rootless.runtime import health
    for v in values:
        if v not in health.STATUSES:
            from rootless.base.errors import UsageError
            raise UsageError(f"unrecognised filter value for health: {v}", "use starting, healthy, unhealthy or none")
    return health.status(rec["state"]) in values


def _ancestor(spec: dict, value: str) -> bool:
    name = spec.get("image_name", "")
    if value == name or spec.get("image_id", "").removeprefix("sha256:").startswith(value.removeprefix("sha256:")):
        return True
    wanted = _normalised(value)
    return wanted is not None and wanted == _normalised(name)


def _normalised(ref: str) -> str | None:
    """``busybox``, ``busybox:latest`` and ``docker.io/library/busybox`` alike: the full reference."""
    from layers import reference
    from rootless.base.errors import RootlessError
    try:
        return str(reference.parse(ref))
    except RootlessError:
        return None


def prune_filter(filters) -> Callable[[ContainerRecord], bool]:
    """``container prune --filter`` (the API's ``filters``): ``until=TIME`` (created before: a
    timestamp or a duration ago), ``label=K[=V]``, ``label!=K[=V]``; every one must hold."""
    from rootless.base.errors import UsageError
    from rootless.runtime.logtime import parse_since, parse_time
    until: list[int] = []
    labels: list[tuple[str, bool]] = []
    for f in filters:
        key, eq, value = f.partition("=")
        if key == "until" and eq:
            try:
                until.append(parse_since(value))
            except ValueError:
                raise UsageError(f"invalid filter 'until={value}'", "a timestamp or a duration (24h, 10m)") from None
        elif key in ("label", "label!") and eq:
            labels.append((value, key == "label"))
        else:
            raise UsageError(f"invalid filter {f!r}", "use until=, label= or label!=")

    def chosen(rec: ContainerRecord) -> bool:
        created = parse_time(rec["created"]) if rec.get("created") else None
        if until and (created is None or any(created >= t for t in until)):
            return False
        own = rec["spec"].get("labels") or {}
        return all(_label(own, v) == want for v, want in labels)
    return chosen


def _label(labels: dict, value: str) -> bool:
    k, eq, v = value.partition("=")
    return k in labels and (not eq or labels[k] == v)


def container_pids(pid: int, pid_host: bool = False) -> list[int]:
    """The host pids of the processes in the pid namespace of ``pid`` (a container's PID 1), in
    order; with ``pid_host`` (``--pid host``: the container has none of its own), ``pid`` and its
    descendants. Never the host's own list."""
    import os
    try:
        target = os.readlink(f"/proc/{pid}/ns/pid")
        if pid and pid_host:
            from rootless.runtime.subreaper import descendants
            return sorted(descendants(pid))
        if not pid or target == os.readlink("/proc/self/ns/pid"):
            return []  # not a container's process (a container has a pid namespace of its own)
    except OSError:
        return []
    from rootless.runtime.pause import namespace_members
    return sorted(namespace_members(target))


def top_rows(pid: int, pid_host: bool = False) -> list[list[str]]:
    """The processes of :func:`container_pids`, like ``ps -ef`` (host view)."""
    import os
    import pwd
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    rows = []
    for d in map(str, container_pids(pid, pid_host)):
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{d}").st_uid
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) // ticks
        started = time.localtime(boot + int(fields[19]) // ticks)
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        rows.append([user, d, fields[1], time.strftime("%H:%M", started),
                     f"{cpu // 3600:02d}:{cpu % 3600 // 60:02d}:{cpu % 60:02d}", cmd or f"[{comm}]"])
    return rows


def top_with_ps(pid: int, pid_host: bool, ps_args: list[str]) -> list[str]:
    """``top CONTAINER [ps OPTIONS]`` as Docker's daemon does it: the host's ``ps`` with those
    options, its header and the lines whose PID column is one of the container's processes."""
    from rootless.base import proc
    from rootless.base.errors import RootlessError
    ps = proc.which("ps")
    if ps is None:
        raise RootlessError("top with ps options needs the host's ps", "install procps, or leave the options out")
    cp = proc.run([ps, *ps_args], timeout=30, check=False)
    lines = cp.stdout.decode(errors="replace").splitlines()
    if cp.returncode != 0 or not lines:
        err = cp.stderr.decode(errors="replace").strip().splitlines()
        raise RootlessError(f"ps {' '.join(ps_args)} failed: {err[0] if err else cp.returncode}", exit_code=1)
    header = lines[0].split()
    if "PID" not in header:
        raise RootlessError("couldn't find the PID field in ps output", "give ps options that show PID (-ef, aux)",
                            exit_code=1)
    at, pids = header.index("PID"), {str(p) for p in container_pids(pid, pid_host)}
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > at and fields[at] in pids:
            out.append(line)
    return out
