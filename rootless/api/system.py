"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``."""

from __future__ import annotations

import os
import platform

from rootless.api import swarm
from rootless.api.routes import API_VERSION, MIN_API_VERSION
from rootless.base.clock import now_iso

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.api.http import Request
    from rootless.engine.context import Context

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def ping(ctx: Context, req: Request):
    headers = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"),
               ("Builder-Version", "1")]
    body = b"" if req.method == "HEAD" else b"OK"
    req.conn.send(200, body, content_type="text/plain; charset=utf-8", headers=headers)


def _version() -> str:
    from rootless import __version__
    return __version__


def version(ctx: Context, req: Request):
    ver = _version()
    kernel = platform.release()
    arch = _ARCH.get(platform.machine(), platform.machine())
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch,
               "KernelVersion": kernel, "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
               "BuildTime": "", "Experimental": "false"}
    return 200, {
        "Platform": {"Name": f"rootless {ver}"},
        "Components": [{"Name": "Engine", "Version": ver, "Details": details}],
        "Version": ver, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": details["GoVersion"], "Os": "linux", "Arch": arch, "KernelVersion": kernel,
        "BuildTime": "", "Experimental": False,
    }


def info(ctx: Context, req: Request):
    from layers import registry
    from rootless.engine import containers, dockerview
    from rootless.runtime import cgroups
    recs = containers.all_current(ctx)
    running = sum(1 for r in recs if containers.is_running(r))
    paused = sum(1 for r in recs if dockerview.docker_status(r) == "paused")
    try:
        n_images = len(ctx.store.images())
    except Exception:  # noqa: BLE001 - a damaged store still answers info
        n_images = 0
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    from rootless.engine.dockerview import RUNTIMES
    host = cgroups.detect()
    version2 = host.version == "v2"
    can = set(cgroups.enforceable(host))  # what a limit asked on the API is kept for, not discarded
    return 200, {
        "ID": "rootless", "Containers": len(recs), "ContainersRunning": running - paused,
        "ContainersPaused": paused,
        "ContainersStopped": len(recs) - running, "Images": n_images,
        "Driver": ctx.overlay_method(), "DriverStatus": [["Backing Filesystem", "overlay"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": None,
                    "Log": ["json-file", "k8s-file", "local", "none"]},
        "MemoryLimit": "--memory" in can, "SwapLimit": "--memory-swap" in can, "CpuCfsPeriod": "--cpus" in can,
        "CpuCfsQuota": "--cpus" in can, "CPUShares": "--cpu-shares" in can, "CPUSet": "--cpuset-cpus" in can,
        "PidsLimit": "--pids-limit" in can, "OomKillDisable": False,
        "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")), "NGoroutines": 1, "SystemTime": now_iso(),
        "LoggingDriver": "json-file", "CgroupDriver": "systemd" if version2 else "none",
        "CgroupVersion": "2" if version2 else "1", "NEventsListener": 0,
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry.service_config(ctx.config.insecure, ctx.config.registries),
        "NCPU": os.cpu_count() or 1, "MemTotal": mem, "DockerRootDir": ctx.paths.root, "Name": platform.node(),
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": _version(),
        "Runtimes": {name: {"path": "rootless"} for name in RUNTIMES},
        "DefaultRuntime": RUNTIMES[0], "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "rootless-init",
        "GenericResources": None, "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
        "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or "",
        "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"],
        "Swarm": swarm.INACTIVE,
        "Warnings": [],
    }




def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def events(ctx: Context, req: Request):
    from rootless.engine import events as events_uc
    since, until = req.arg("since"), req.arg("until")
    events = events_uc.stream(ctx, since or None, until or None, req.filters())  # bad input: a 400, before the stream
    stream = req.conn.start_stream(200, "application/json")
    for event in events:
        stream.write_json(event)
    stream.end()


def df(ctx: Context, req: Request):
    from rootless.api import containers as api_containers
    from rootless.api import images as api_images
    from rootless.engine import containers, volumes
    imgs = api_images.summaries(ctx)
    return 200, {
        "LayersSize": ctx.store.stored_size(ctx.store.images()), "Images": imgs,  # on disk, shared layers once
        "Containers": [api_containers.summary(ctx, r) for r in containers.all_current(ctx)],
        "Volumes": [volumes.inspect(ctx, v["name"]) for v in volumes.ls(ctx)], "BuildCache": [],
    }
