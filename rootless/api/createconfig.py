"""Docker's container config (``POST /containers/create``'s body) as the CLI's run options: each
field checked for its JSON type, translated into the flag ``rootless run`` has for it, or refused
in Docker's words where rootless cannot have it; limits this host cannot enforce discarded with a
warning, as Docker does on a host without the capability."""

from __future__ import annotations

from rootless.api import http
from rootless.base.errors import UsageError
from rootless.engine import containerstats, dockerview

# The JSON types of the fields read here (as Docker's decoder, a value of another type is refused):
# "strs" a list of strings, "dicts" a list of objects, "map" an object of strings, "ints" a number.
CONFIG = {"Image": str, "Cmd": "cmd", "Entrypoint": "cmd", "Env": "strs", "WorkingDir": str, "User": str,
           "Hostname": str, "Tty": bool, "OpenStdin": bool, "StdinOnce": bool, "Labels": "map", "ExposedPorts": dict,
           "Volumes": dict, "MacAddress": str, "HostConfig": dict, "NetworkingConfig": dict, "StopSignal": str,
           "Domainname": str}
HOST = {"PortBindings": dict, "Mounts": "dicts", "Binds": "strs", "NetworkMode": str, "LogConfig": dict,
         "SecurityOpt": "strs", "Devices": "dicts", "RestartPolicy": dict, "Links": "strs", "ExtraHosts": "strs",
         "Dns": "strs", "DnsSearch": "strs", "DnsOptions": "strs", "Tmpfs": "map", "VolumesFrom": "strs",
         "CapAdd": "strs", "CapDrop": "strs", "UsernsMode": str, "Init": bool, "AutoRemove": bool,
         "PublishAllPorts": bool, "ReadonlyRootfs": bool, "Privileged": bool, "Memory": int,
         "MemoryReservation": int, "MemorySwap": int, "NanoCpus": int, "CpuShares": int, "CpusetCpus": str,
         "CpuQuota": int, "CpuPeriod": int, "CpusetMems": str, "BlkioWeightDevice": "dicts",
         "BlkioDeviceReadIOps": "dicts", "BlkioDeviceWriteIOps": "dicts",
         "PidsLimit": int, "BlkioWeight": int, "BlkioDeviceReadBps": "dicts", "BlkioDeviceWriteBps": "dicts",
         "GroupAdd": "strs", "PidMode": str, "IpcMode": str, "UTSMode": str, "CgroupnsMode": str, "Isolation": str,
         "Runtime": str, "DeviceCgroupRules": "strs", "VolumeDriver": str, "Ulimits": "dicts", "Sysctls": "map",
         "OomScoreAdj": int, "ShmSize": int, "ContainerIDFile": str}


NESTED: dict[str, dict[str, type | str]] = {  # HostConfig's lists of objects, and objects, field by field
    "Mounts": {"Type": str, "Source": str, "Target": str, "ReadOnly": bool, "TmpfsOptions": dict,
               "BindOptions": dict, "VolumeOptions": dict},
    "Devices": {"PathOnHost": str, "PathInContainer": str, "CgroupPermissions": str},
    "BlkioDeviceReadBps": {"Path": str, "Rate": int}, "BlkioDeviceWriteBps": {"Path": str, "Rate": int},
    "LogConfig": {"Type": str, "Config": "map"}, "RestartPolicy": {"Name": str, "MaximumRetryCount": int},
    "Ulimits": {"Name": str, "Soft": int, "Hard": int},
}


def check_types_of(body: dict) -> None:
    http.check_types(body, CONFIG)
    hc = body.get("HostConfig") or {}
    http.check_types(hc, HOST, "HostConfig.")
    for key, shapes in NESTED.items():
        value = hc.get(key) or []
        for item in value if isinstance(value, list) else [value]:
            http.check_types(item, shapes, f"HostConfig.{key}.")
    for m in hc.get("Mounts") or []:
        http.check_types(m.get("TmpfsOptions") or {}, {"SizeBytes": int, "Mode": int},
                         "HostConfig.Mounts.TmpfsOptions.")
        http.check_types(m.get("BindOptions") or {}, {"Propagation": str}, "HostConfig.Mounts.BindOptions.")
        http.check_types(m.get("VolumeOptions") or {}, {"NoCopy": bool, "Subpath": str},
                         "HostConfig.Mounts.VolumeOptions.")
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
    check_types_of(body)
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
        parts += _mount_options(m)
        mounts.append(",".join(parts))
    volumes = list(hc.get("Binds") or [])
    bound = {v.split(":")[1] for v in volumes if v.count(":") >= 1}
    volumes += [t for t in (body.get("Volumes") or {}) if t not in bound]  # anonymous volumes
    network = hc.get("NetworkMode") or "default"
    if network in ("default", "bridge"):
        network = "slirp4netns"
    log = hc.get("LogConfig") or {}
    limits = limits_of(hc)
    security = list(hc.get("SecurityOpt") or [])
    devices = [f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:{d.get('CgroupPermissions') or 'rwm'}"
               for d in hc.get("Devices") or []]
    from rootless.runtime import restart
    return RunOptions(
        image=image, command=tuple(cmd or ()), entrypoint=None if entrypoint is None else tuple(entrypoint),
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        hostname=body.get("Hostname") or None, name=name or None, network=network,
        init=bool(hc.get("Init")), rm=bool(hc.get("AutoRemove")), interactive=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")), tty=bool(body.get("Tty")), publish=tuple(publish),
        publish_all=bool(hc.get("PublishAllPorts")),
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
        restart=restart.from_api(hc.get("RestartPolicy")),
        healthcheck=_healthcheck(body.get("Healthcheck")),
        **_docker_settings(body, hc),
    )


def _healthcheck(hc) -> dict | None:
    """``Config.Healthcheck``, checked (None: not given, the image's holds)."""
    if hc is None:
        return None
    from rootless.runtime import health
    return health.check(hc)


def _mount_options(m: dict) -> list[str]:
    """A Mount's BindOptions.Propagation and VolumeOptions (NoCopy, Subpath) as ``--mount`` keys."""
    out = []
    bind, volume = m.get("BindOptions") or {}, m.get("VolumeOptions") or {}
    if bind.get("Propagation"):
        out.append(f"bind-propagation={bind['Propagation']}")
    if volume.get("NoCopy"):
        out.append("volume-nocopy")
    if volume.get("Subpath"):
        out.append(f"volume-subpath={volume['Subpath']}")
    return out


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
    driver = hc.get("VolumeDriver") or ""
    if driver not in ("", "local") and _makes_volumes(body, hc):
        # Docker takes any driver's name and fails only when a volume is made with it
        raise UsageError(f"VolumeDriver {driver!r}: error looking up volume plugin {driver}: "
                         f"plugin {driver!r} not found",
                         "rootless has the local volume driver only: leave VolumeDriver out")
    for key, allowed in (("PidMode", ("", "host")), ("UTSMode", ("", "host")), ("CgroupnsMode", ("", "private")),
                         ("IpcMode", ("", "private", "shareable", "host"))):
        value = hc.get(key) or ""
        if value not in allowed:
            other = [repr(a) for a in allowed if a]
            raise UsageError(f"{key} {value!r} is not supported by rootless",
                             f"use {other[0]} or leave {key} out" if other else f"leave {key} out")
    asked = {"Isolation": isolation, "Runtime": runtime, "DeviceCgroupRules": list(hc.get("DeviceCgroupRules") or ()),
             "PidMode": hc.get("PidMode") or "", "UTSMode": hc.get("UTSMode") or "", "IpcMode": hc.get("IpcMode") or "",
             "CgroupnsMode": hc.get("CgroupnsMode") or "", "VolumeDriver": hc.get("VolumeDriver") or "",
             "ContainerIDFile": hc.get("ContainerIDFile") or ""}
    if swappiness not in (None, -1):
        asked["discarded_swappiness"] = swappiness
    oom = hc.get("OomScoreAdj")
    return dict(raw_env=tuple(body.get("Env") or ()), group_add=tuple(hc.get("GroupAdd") or ()),
                stop_timeout=stop_timeout, asked={k: v for k, v in asked.items() if v},
                stop_signal=body.get("StopSignal") or None, ulimits=tuple(hc.get("Ulimits") or ()),
                sysctls=dict(hc.get("Sysctls") or {}) or None, oom_score_adj=oom or None,
                shm_size=hc.get("ShmSize") or None, domainname=body.get("Domainname") or None)


def _makes_volumes(body: dict, hc: dict) -> bool:
    """Whether the create makes or names a volume: an anonymous one (``Volumes``), a named one in
    ``Binds`` (not a host path) or a ``Mounts`` entry of type volume."""
    return bool(body.get("Volumes")) or any(not b.startswith("/") for b in hc.get("Binds") or ()) \
        or any((m.get("Type") or "volume") == "volume" for m in hc.get("Mounts") or ())


def _link(text: str) -> str:
    """``/db:/web/db`` (Docker's stored form) or ``db:alias`` as ``--link`` takes it."""
    name, _, alias = text.partition(":")
    return f"{name.lstrip('/')}:{alias.rsplit('/', 1)[-1]}" if alias else name.lstrip("/")


def limits_of(hc: dict) -> dict | None:
    from rootless.runtime import cgroups
    flags = cgroups.LimitOptions(
        memory=str(hc["Memory"]) if hc.get("Memory") else None,
        memory_reservation=str(hc["MemoryReservation"]) if hc.get("MemoryReservation") else None,
        memory_swap=str(hc["MemorySwap"]) if hc.get("MemorySwap") else None,
        cpus=str(hc["NanoCpus"] / 1e9) if hc.get("NanoCpus") else None,
        cpu_shares=str(hc["CpuShares"]) if hc.get("CpuShares") else None,
        cpu_quota=str(hc["CpuQuota"]) if hc.get("CpuQuota") else None,
        cpu_period=str(hc["CpuPeriod"]) if hc.get("CpuPeriod") else None,
        cpuset_cpus=hc.get("CpusetCpus") or None, cpuset_mems=hc.get("CpusetMems") or None,
        pids_limit=str(hc["PidsLimit"]) if hc.get("PidsLimit") else None,
        blkio_weight=str(hc["BlkioWeight"]) if hc.get("BlkioWeight") else None,
        blkio_weight_device=tuple(f"{d['Path']}:{d['Weight']}" for d in hc.get("BlkioWeightDevice") or ()),
        **{key: tuple(f"{d['Path']}:{d['Rate']}" for d in hc.get(name) or ())
           for key, name in (("device_read_bps", "BlkioDeviceReadBps"), ("device_write_bps", "BlkioDeviceWriteBps"),
                             ("device_read_iops", "BlkioDeviceReadIOps"),
                             ("device_write_iops", "BlkioDeviceWriteIOps"))})
    return cgroups.parse(flags) if any(flags) else None



def discard_unenforceable(opts):
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


LIMIT_FIELDS = ("Memory", "MemoryReservation", "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
                "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
                "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")
