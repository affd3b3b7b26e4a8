"""The shapes of the objects Docker Engine API 1.41 answers with, field by field, and a walker that
checks an object of ours against them (tests/e2e/test_api_schema.py).

A description of the v1.41 schema written for these tests (the types of each field as Docker
documents and sends them), not a copy of Docker's file. A shape is:

- a type name: ``"str"``, ``"int"``, ``"bool"``, ``"num"`` (int or float), ``"any"``;
- a dict: an object with those fields, every one required; a field named ``"KEY?"`` may be left
  out (Docker's ``omitempty``); a dict ``{"*": SHAPE}`` is a map whose values are SHAPE;
- a one-item list ``[SHAPE]``: a list of SHAPE;
- :func:`null` of a shape: that shape or JSON null (Docker's nil slices, maps and pointers).
"""

from __future__ import annotations


class _Nullable:
    def __init__(self, shape):
        self.shape = shape


def null(shape):
    return _Nullable(shape)


STRS = null(["str"])
STRMAP = null({"*": "str"})
ANYMAP = null({"*": "any"})

PORT_BINDING = {"HostIp": "str", "HostPort": "str"}
ENDPOINT = {
    "IPAMConfig": null({"IPv4Address?": "str", "IPv6Address?": "str", "LinkLocalIPs?": STRS}),
    "Links": STRS, "Aliases": STRS, "NetworkID": "str", "EndpointID": "str", "Gateway": "str", "IPAddress": "str",
    "IPPrefixLen": "int", "IPv6Gateway": "str", "GlobalIPv6Address": "str", "GlobalIPv6PrefixLen": "int",
    "MacAddress": "str", "DriverOpts": STRMAP,
}
MOUNT_POINT = {"Type": "str", "Name?": "str", "Source": "str", "Destination": "str", "Driver?": "str", "Mode": "str",
               "RW": "bool", "Propagation": "str"}
DEVICE_RATE = {"Path": "str", "Rate": "int"}
RESOURCES = {
    "CpuShares": "int", "Memory": "int", "CgroupParent": "str", "BlkioWeight": "int",
    "BlkioWeightDevice": null([{"Path": "str", "Weight": "int"}]), "BlkioDeviceReadBps": null([DEVICE_RATE]),
    "BlkioDeviceWriteBps": null([DEVICE_RATE]), "BlkioDeviceReadIOps": null([DEVICE_RATE]),
    "BlkioDeviceWriteIOps": null([DEVICE_RATE]), "CpuPeriod": "int", "CpuQuota": "int", "CpuRealtimePeriod": "int",
    "CpuRealtimeRuntime": "int", "CpusetCpus": "str", "CpusetMems": "str",
    "Devices": null([{"PathOnHost": "str", "PathInContainer": "str", "CgroupPermissions": "str"}]),
    "DeviceCgroupRules": STRS, "DeviceRequests": null([ANYMAP]), "KernelMemory": "int", "KernelMemoryTCP": "int",
    "MemoryReservation": "int", "MemorySwap": "int", "MemorySwappiness": null("int"), "NanoCpus": "int",
    "OomKillDisable": null("bool"), "Init": null("bool"), "PidsLimit": null("int"),
    "Ulimits": null([{"Name": "str", "Soft": "int", "Hard": "int"}]), "CpuCount": "int", "CpuPercent": "int",
    "IOMaximumIOps": "int", "IOMaximumBandwidth": "int",
}
HOST_CONFIG = {
    **RESOURCES,
    "Binds": STRS, "ContainerIDFile": "str", "LogConfig": {"Type": "str", "Config": STRMAP}, "NetworkMode": "str",
    "PortBindings": null({"*": null([PORT_BINDING])}), "RestartPolicy": {"Name": "str", "MaximumRetryCount": "int"},
    "AutoRemove": "bool", "VolumeDriver": "str", "VolumesFrom": STRS, "Mounts?": null([ANYMAP]), "CapAdd": STRS,
    "CapDrop": STRS, "CgroupnsMode": "str", "Dns": STRS, "DnsOptions": STRS, "DnsSearch": STRS, "ExtraHosts": STRS,
    "GroupAdd": STRS, "IpcMode": "str", "Cgroup": "str", "Links": STRS, "OomScoreAdj": "int", "PidMode": "str",
    "Privileged": "bool", "PublishAllPorts": "bool", "ReadonlyRootfs": "bool", "SecurityOpt": STRS,
    "StorageOpt?": STRMAP, "Tmpfs?": STRMAP, "UTSMode": "str", "UsernsMode": "str", "ShmSize": "int",
    "Sysctls?": STRMAP, "Runtime": "str", "ConsoleSize": null(["int"]), "Isolation": "str", "MaskedPaths": STRS,
    "ReadonlyPaths": STRS,
}
HEALTH_CONFIG = {"Test?": STRS, "Interval?": "int", "Timeout?": "int", "Retries?": "int", "StartPeriod?": "int"}
CONTAINER_CONFIG = {
    "Hostname": "str", "Domainname": "str", "User": "str", "AttachStdin": "bool", "AttachStdout": "bool",
    "AttachStderr": "bool", "ExposedPorts?": null({"*": ANYMAP}), "Tty": "bool", "OpenStdin": "bool",
    "StdinOnce": "bool", "Env": STRS, "Cmd": STRS, "Healthcheck?": HEALTH_CONFIG, "ArgsEscaped?": "bool",
    "Image": "str", "Volumes": null({"*": ANYMAP}), "WorkingDir": "str", "Entrypoint": STRS,
    "NetworkDisabled?": "bool", "MacAddress?": "str", "OnBuild": STRS, "Labels": STRMAP, "StopSignal?": "str",
    "StopTimeout?": "int", "Shell?": STRS,
}
CONTAINER_STATE = {
    "Status": "str", "Running": "bool", "Paused": "bool", "Restarting": "bool", "OOMKilled": "bool", "Dead": "bool",
    "Pid": "int", "ExitCode": "int", "Error": "str", "StartedAt": "str", "FinishedAt": "str",
    "Health?": {"Status": "str", "FailingStreak": "int",
                "Log": null([{"Start": "str", "End": "str", "ExitCode": "int", "Output": "str"}])},
}
NETWORK_SETTINGS = {
    "Bridge": "str", "SandboxID": "str", "HairpinMode": "bool", "LinkLocalIPv6Address": "str",
    "LinkLocalIPv6PrefixLen": "int", "Ports": null({"*": null([PORT_BINDING])}), "SandboxKey": "str",
    "SecondaryIPAddresses": null([ANYMAP]), "SecondaryIPv6Addresses": null([ANYMAP]), "EndpointID": "str",
    "Gateway": "str", "GlobalIPv6Address": "str", "GlobalIPv6PrefixLen": "int", "IPAddress": "str",
    "IPPrefixLen": "int", "IPv6Gateway": "str", "MacAddress": "str", "Networks": {"*": ENDPOINT},
}
CONTAINER_INSPECT = {
    "Id": "str", "Created": "str", "Path": "str", "Args": ["str"], "State": CONTAINER_STATE, "Image": "str",
    "ResolvConfPath": "str", "HostnamePath": "str", "HostsPath": "str", "LogPath": "str", "Name": "str",
    "RestartCount": "int", "Driver": "str", "Platform": "str", "MountLabel": "str", "ProcessLabel": "str",
    "AppArmorProfile": "str", "ExecIDs": STRS, "HostConfig": HOST_CONFIG,
    "GraphDriver": {"Name": "str", "Data": STRMAP}, "SizeRw?": "int", "SizeRootFs?": "int",
    "Mounts": [MOUNT_POINT], "Config": CONTAINER_CONFIG, "NetworkSettings": NETWORK_SETTINGS,
}
PORT = {"IP?": "str", "PrivatePort": "int", "PublicPort?": "int", "Type": "str"}
CONTAINER_SUMMARY = {
    "Id": "str", "Names": ["str"], "Image": "str", "ImageID": "str", "Command": "str", "Created": "int",
    "Ports": [PORT], "SizeRw?": "int", "SizeRootFs?": "int", "Labels": STRMAP, "State": "str", "Status": "str",
    "HostConfig": {"NetworkMode": "str"}, "NetworkSettings": {"Networks": {"*": ENDPOINT}}, "Mounts": [MOUNT_POINT],
}
IMAGE_CONFIG = {k: v for k, v in CONTAINER_CONFIG.items()}
IMAGE_INSPECT = {
    "Id": "str", "RepoTags": ["str"], "RepoDigests": ["str"], "Parent": "str", "Comment": "str", "Created": "str",
    "Container": "str", "ContainerConfig": ANYMAP, "DockerVersion": "str", "Author": "str", "Config": IMAGE_CONFIG,
    "Architecture": "str", "Variant?": "str", "Os": "str", "OsVersion?": "str", "Size": "int", "VirtualSize": "int",
    "GraphDriver": {"Name": "str", "Data": STRMAP}, "RootFS": {"Type": "str", "Layers": STRS},
    "Metadata": {"LastTagTime": "str"},
}
IMAGE_SUMMARY = {
    "Id": "str", "ParentId": "str", "RepoTags": STRS, "RepoDigests": STRS, "Created": "int", "Size": "int",
    "SharedSize": "int", "VirtualSize": "int", "Labels": STRMAP, "Containers": "int",
}
VOLUME = {
    "Name": "str", "Driver": "str", "Mountpoint": "str", "CreatedAt?": "str", "Status?": ANYMAP, "Labels": STRMAP,
    "Scope": "str", "Options": STRMAP, "UsageData?": null({"Size": "int", "RefCount": "int"}),
}
NETWORK = {
    "Name": "str", "Id": "str", "Created": "str", "Scope": "str", "Driver": "str", "EnableIPv6": "bool",
    "IPAM": {"Driver": "str", "Config": null([STRMAP]), "Options": STRMAP}, "Internal": "bool",
    "Attachable": "bool", "Ingress": "bool",
    "Containers": null({"*": {"Name": "str", "EndpointID": "str", "MacAddress": "str", "IPv4Address": "str",
                              "IPv6Address": "str"}}),
    "Options": STRMAP, "Labels": STRMAP,
}
EXEC_INSPECT = {
    "CanRemove": "bool", "DetachKeys": "str", "ID": "str", "Running": "bool", "ExitCode": null("int"),
    "ProcessConfig": {"privileged": "bool", "user": "str", "tty": "bool", "entrypoint": "str", "arguments": STRS},
    "OpenStdin": "bool", "OpenStderr": "bool", "OpenStdout": "bool", "ContainerID": "str", "Pid": "int",
}
VERSION = {
    "Platform": {"Name": "str"}, "Components": [{"Name": "str", "Version": "str", "Details?": ANYMAP}],
    "Version": "str", "ApiVersion": "str", "MinAPIVersion": "str", "GitCommit": "str", "GoVersion": "str",
    "Os": "str", "Arch": "str", "KernelVersion": "str", "Experimental?": "bool", "BuildTime": "str",
}
COMMIT = {"ID": "str", "Expected": "str"}
INFO = {
    "ID": "str", "Containers": "int", "ContainersRunning": "int", "ContainersPaused": "int",
    "ContainersStopped": "int", "Images": "int", "Driver": "str", "DriverStatus": null([["str"]]),
    "DockerRootDir": "str",
    "Plugins": {"Volume": STRS, "Network": STRS, "Authorization": STRS, "Log": STRS},
    "MemoryLimit": "bool", "SwapLimit": "bool", "KernelMemory?": "bool", "KernelMemoryTCP?": "bool",
    "CpuCfsPeriod": "bool", "CpuCfsQuota": "bool", "CPUShares": "bool", "CPUSet": "bool", "PidsLimit": "bool",
    "OomKillDisable": "bool", "IPv4Forwarding": "bool", "BridgeNfIptables": "bool", "BridgeNfIp6tables": "bool",
    "Debug": "bool", "NFd": "int", "NGoroutines": "int", "SystemTime": "str", "LoggingDriver": "str",
    "CgroupDriver": "str", "CgroupVersion": "str", "NEventsListener": "int", "KernelVersion": "str",
    "OperatingSystem": "str", "OSVersion": "str", "OSType": "str", "Architecture": "str", "NCPU": "int",
    "MemTotal": "int", "IndexServerAddress": "str", "RegistryConfig": null(ANYMAP),
    "GenericResources": null([ANYMAP]), "HttpProxy": "str", "HttpsProxy": "str", "NoProxy": "str", "Name": "str",
    "Labels": STRS, "ExperimentalBuild": "bool", "ServerVersion": "str",
    "Runtimes": {"*": {"path": "str", "runtimeArgs?": STRS}}, "DefaultRuntime": "str",
    "Swarm": {"NodeID": "str", "NodeAddr": "str", "LocalNodeState": "str", "ControlAvailable": "bool",
              "Error": "str", "RemoteManagers": null([ANYMAP])},
    "LiveRestoreEnabled": "bool", "Isolation": "str", "InitBinary": "str", "ContainerdCommit": COMMIT,
    "RuncCommit": COMMIT, "InitCommit": COMMIT, "SecurityOptions": STRS, "Warnings": STRS,
}
BUILD_CACHE = {
    "ID": "str", "Parent?": "str", "Type": "str", "Description": "str", "InUse": "bool", "Shared": "bool",
    "Size": "int", "CreatedAt": "str", "LastUsedAt": null("str"), "UsageCount": "int",
}
SYSTEM_DF = {
    "LayersSize": "int", "Images": null([IMAGE_SUMMARY]), "Containers": null([CONTAINER_SUMMARY]),
    "Volumes": null([VOLUME]), "BuildCache": null([BUILD_CACHE]),
}
CREATE_RESPONSE = {"Id": "str", "Warnings": STRS}
PRUNE_CONTAINERS = {"ContainersDeleted": STRS, "SpaceReclaimed": "int"}
PRUNE_VOLUMES = {"VolumesDeleted": STRS, "SpaceReclaimed": "int"}


def _type_ok(value, name: str) -> bool:
    if name == "any":
        return True
    if name == "str":
        return isinstance(value, str)
    if name == "bool":
        return isinstance(value, bool)
    if name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    raise ValueError(f"unknown type {name!r}")


def problems(value, shape, where: str = "") -> list[str]:
    """Every difference between ``value`` and ``shape``: a missing field, or a field of another
    JSON type (fields beyond the schema are allowed: later API versions add some)."""
    if isinstance(shape, _Nullable):
        return [] if value is None else problems(value, shape.shape, where)
    if value is None:
        return [f"{where or '.'}: null where Docker has {_name(shape)}"]
    if isinstance(shape, str):
        return [] if _type_ok(value, shape) else [f"{where}: {type(value).__name__} {value!r:.60} is not {shape}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__} is not a list"]
        return [p for i, item in enumerate(value) for p in problems(item, shape[0], f"{where}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__} is not an object"]
    if set(shape) == {"*"}:
        return [p for k, v in value.items() for p in problems(v, shape["*"], f"{where}.{k}")]
    out = []
    for key, sub in shape.items():
        optional = key.endswith("?")
        key = key.rstrip("?")
        if key not in value:
            if not optional:
                out.append(f"{where}.{key}: missing")
            continue
        out += problems(value[key], sub, f"{where}.{key}")
    return out


def _name(shape) -> str:
    if isinstance(shape, str):
        return shape
    return "a list" if isinstance(shape, list) else "an object"
