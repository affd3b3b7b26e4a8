"""``run``'s and ``create``'s flags of Docker settings that have no effect here, or that rootless
cannot give: accepted where Docker on a cgroup v2 host accepts them (kept to be shown by
``inspect``, or discarded with a warning as Docker discards them), refused in one line where the
container would lack what was asked. The API takes the same fields of HostConfig
(``rootless.api.createconfig``)."""

from rootless.cli.params import Opt

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context

# run's, create's, pull's, push's and build's
CONTENT_TRUST = Opt(("--disable-content-trust",), True, "Images are not verified by signature here (false is "
                                                        "refused).")
# name -> (type, declaration): ``params.command``'s ``more``
FLAGS = {
    "runtime": (str, Opt(("--runtime",), None, "runc or rootless: either name is rootless itself.")),
    "isolation": (str, Opt(("--isolation",), None, "default (the only isolation on Linux).")),
    "cgroupns": (str, Opt(("--cgroupns",), None, "private: the container's own cgroup namespace (host is not "
                                                 "supported).")),
    "volume_driver": (str, Opt(("--volume-driver",), None, "local (the only volume driver).")),
    "device_cgroup_rule": (list[str], Opt(("--device-cgroup-rule",), [], "Kept and shown: devices come with --device "
                                                                         "here.")),
    "memory_swappiness": (int, Opt(("--memory-swappiness",), None, "0 to 100: discarded with a warning, as Docker "
                                                                   "does on cgroup v2.")),
    "oom_kill_disable": (bool, Opt(("--oom-kill-disable",), False, "Discarded with a warning, as Docker does on "
                                                                   "cgroup v2.")),
    "storage_opt": (list[str], Opt(("--storage-opt",), [], "Not supported: a writable layer has no size limit of "
                                                           "its own.")),
    "gpus": (str, Opt(("--gpus",), None, "Not supported: pass the GPU's device nodes with --device.")),
    "kernel_memory": (str, Opt(("--kernel-memory",), None, "Discarded with a warning, as Docker does (deprecated; "
                                                           "cgroup v2 has none).")),
    "disable_content_trust": (bool, CONTENT_TRUST),
    "ip": (str, Opt(("--ip",), None, "IPv4 address on the user-defined network (checked and kept, as `network "
                                     "connect --ip`).")),
    "ip6": (str, Opt(("--ip6",), None, "IPv6 address on the user-defined network (checked and kept).")),
    "link_local_ip": (list[str], Opt(("--link-local-ip",), [], "A link-local address on the user-defined network "
                                                               "(kept).")),
}


def endpoint(ip: str | None, ip6: str | None, link_local: list[str]) -> dict | None:
    """``--ip``, ``--ip6``, ``--link-local-ip`` as Docker's EndpointConfig (None: none given)."""
    ipam = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6), ("LinkLocalIPs", list(link_local))) if v}
    return {"IPAMConfig": ipam} if ipam else None


def check(content_trust_disabled: bool, kernel_memory: str | None = None) -> None:
    """``--disable-content-trust=false`` asks for signed images, which rootless cannot verify;
    ``--kernel-memory`` is still a size (discarded later, with a warning)."""
    from rootless.base.errors import UsageError
    if not content_trust_disabled:
        raise UsageError("content trust is not supported by rootless: images are not verified by signature",
                         "leave --disable-content-trust out (or give it true)")
    if kernel_memory:
        from rootless.base.config import parse_size
        try:
            parse_size(kernel_memory)
        except ValueError:
            raise UsageError(f"invalid argument {kernel_memory!r} for \"--kernel-memory\" flag: invalid size") \
                from None


def settings(runtime, isolation, cgroupns, volume_driver, rules, swappiness, storage_opt, gpus,
             volume=(), mount=()) -> list[tuple[str, object]]:
    """The flags checked in Docker's words, as the HostConfig fields ``inspect`` shows (``volume``,
    ``mount``: -v's and --mount's, for the volume driver's check)."""
    from rootless.base.errors import UsageError
    from rootless.engine.dockerview import RUNTIMES
    if gpus is not None:
        raise UsageError(f"--gpus {gpus}: rootless has no GPU device driver",
                         "pass the GPU's device nodes with --device (/dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm) "
                         "and its driver's libraries with -v")
    if storage_opt:
        raise UsageError("--storage-opt is not supported by rootless: a container's writable layer has no size "
                         "limit of its own", "leave --storage-opt out (a volume on a small filesystem can hold "
                                             "what must be limited)")
    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"unknown or invalid runtime name: {runtime}",
                         f"leave --runtime out, or use {' or '.join(RUNTIMES)} (rootless runs every container itself)")
    if isolation not in (None, "", "default"):
        raise UsageError(f"invalid isolation {isolation!r}: on Linux only 'default' is supported")
    if cgroupns not in (None, "", "private"):
        raise UsageError(f"--cgroupns {cgroupns!r} is not supported by rootless",
                         "use --cgroupns private or leave it out")
    if volume_driver not in (None, "", "local") and _makes_volumes(volume, mount):  # as Docker: only then
        raise UsageError(f"--volume-driver {volume_driver!r}: error looking up volume plugin {volume_driver}: "
                         f"plugin {volume_driver!r} not found", "rootless has the local volume driver only")
    if swappiness is not None and not -1 <= swappiness <= 100:
        raise UsageError(f"invalid value: {swappiness}, valid memory swappiness range is 0-100")
    return [("Runtime", runtime), ("Isolation", isolation), ("CgroupnsMode", cgroupns),
            ("VolumeDriver", volume_driver), ("DeviceCgroupRules", list(rules))]


def _makes_volumes(volume, mount) -> bool:
    """Whether -v/--mount make or name a volume (a volume driver's work): not a host path, not a
    bind or a tmpfs mount (--mount's type is volume unless said)."""
    return any(not v.startswith("/") for v in volume) or any(
        "type=bind" not in m and "type=tmpfs" not in m for m in mount)


def say_discarded(ctx: "Context", swappiness, oom_kill_disable, kernel_memory=None) -> None:
    """Docker's warnings on a cgroup v2 host, which has no per-cgroup swappiness, cannot turn the
    OOM killer off and has no kernel memory limit: the flags are discarded, the container runs."""
    if kernel_memory:
        ctx.warn("--kernel-memory discarded: the kernel memory limit is deprecated, and cgroup v2 has none")
    if swappiness not in (None, -1):
        ctx.warn("--memory-swappiness discarded: containers are limited through cgroup v2, which has no "
                 "per-cgroup swappiness")
    if oom_kill_disable:
        ctx.warn("--oom-kill-disable discarded: containers are limited through cgroup v2, which cannot turn the "
                 "OOM killer off")
