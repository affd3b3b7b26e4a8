"""Settings of a container's processes beside its command, as Docker's flags and fields name them:
``--ulimit`` (HostConfig.Ulimits), ``--sysctl`` (HostConfig.Sysctls), ``--oom-score-adj``
(HostConfig.OomScoreAdj), ``--shm-size`` (HostConfig.ShmSize), ``--domainname``
(Config.Domainname). Parsed and checked here, in Docker's words, when the container is made; the
keeper writes the sysctls in the container's namespaces, PID 1 takes the rlimits and the OOM score
(``runtime.ocistart.prepare``, which the OCI face's settings go through too), the mount plan
sizes /dev/shm."""

from __future__ import annotations

from rootless.base.errors import UsageError

# Docker's names (go-units' ulimit table): the resource each sets
ULIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
           "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
           "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
           "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
           "stack": "RLIMIT_STACK", "as": "RLIMIT_AS"}
# the sysctls of a container's own namespaces (Docker's list): IPC's, and every net.* of its network
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced")


def parse_ulimit(text: str) -> dict:
    """``NAME=SOFT[:HARD]`` (HARD: SOFT when not given; -1: unlimited) as Docker's
    ``{"Name", "Soft", "Hard"}``."""
    name, eq, value = text.partition("=")
    if not eq or not value:
        raise UsageError(f"invalid ulimit argument: {text}", "use --ulimit NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft, _, hard = value.partition(":")
    try:
        limits = (int(soft), int(hard) if hard else int(soft))
    except ValueError:
        raise UsageError(f"invalid ulimit argument: {text}", "the limits are whole numbers (-1: unlimited)") from None
    return check_ulimit({"Name": name, "Soft": limits[0], "Hard": limits[1]})


def check_ulimit(u: dict) -> dict:
    """One of HostConfig.Ulimits, checked (the API's and the flag's)."""
    name, soft, hard = u.get("Name"), u.get("Soft"), u.get("Hard")
    if name not in ULIMITS:
        raise UsageError(f"invalid ulimit type: {name}", f"use one of {', '.join(sorted(ULIMITS))}")
    if not (_limit(soft) and _limit(hard)):
        raise UsageError(f"invalid ulimit {name}: {soft!r}:{hard!r}", "the limits are whole numbers (-1: unlimited)")
    assert isinstance(soft, int) and isinstance(hard, int)
    if _unlimited(soft) > _unlimited(hard):
        raise UsageError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


def _limit(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= -1


def _unlimited(v: int) -> float:
    return float("inf") if v == -1 else v


def rlimits(ulimits) -> tuple[tuple[int, int, int], ...]:
    """(resource number, soft, hard) for ``setrlimit``; Docker's -1 is ``RLIM_INFINITY``."""
    import resource
    return tuple((getattr(resource, ULIMITS[u["Name"]]), resource.RLIM_INFINITY if u["Soft"] == -1 else u["Soft"],
                  resource.RLIM_INFINITY if u["Hard"] == -1 else u["Hard"]) for u in ulimits)


def parse_sysctls(items) -> dict[str, str]:
    """``--sysctl KEY=VALUE`` as Docker's HostConfig.Sysctls map."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid sysctl argument: {item}", "use --sysctl KEY=VALUE, e.g. net.core.somaxconn=1024")
        out[key.strip()] = value
    return out


def check_sysctls(sysctls: dict, network: str, ipc_host: bool) -> dict[str, str]:
    """Only the sysctls of the container's own namespaces, as Docker allows: its IPC namespace's
    (not with ``--ipc host``) and its network's (not with ``--network host`` nor ``container:``)."""
    for key, value in sysctls.items():
        if not isinstance(value, str):
            raise UsageError(f"invalid sysctl {key}: its value must be a string")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_host:
                raise UsageError(f"sysctl {key!r} not allowed with --ipc host",
                                 "it would change the host's IPC namespace")
        elif key.startswith("net."):
            if network == "host" or network.startswith("container:"):
                raise UsageError(f"sysctl {key!r} not allowed in host network namespace"
                                 if network == "host" else f"sysctl {key!r} not allowed with --network container:",
                                 "set it on a container with a network of its own")
        elif key in ("kernel.domainname", "kernel.hostname"):
            raise UsageError(f"sysctl {key!r} is not allowed", "use --domainname or --hostname")
        else:
            raise UsageError(f"sysctl {key!r} is not allowed: not of the container's own namespaces",
                             "rootless sets only net.*, fs.mqueue.* and the IPC sysctls (kernel.shm*, kernel.msg*, "
                             "kernel.sem)")
    return dict(sysctls)


def parse_shm_size(value) -> int:
    """``--shm-size`` (bytes, or with a unit: ``64m``, ``1g``), or the API's ShmSize (0: the default)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        from rootless.base.config import parse_size
        try:
            n = parse_size(str(value))
        except ValueError:
            raise UsageError(f"invalid size: {value!r} (--shm-size)", "use a size such as 64m or 1g") from None
    if n < 0:
        raise UsageError("SHM size can not be less than 0")
    return n


def check_oom_score_adj(n) -> int:
    """Docker's range; and, rootless, not below this process's own score: an unprivileged process
    may raise its OOM score, never lower it."""
    if not isinstance(n, int) or isinstance(n, bool) or not -1000 <= n <= 1000:
        raise UsageError(f"invalid value {n}, range for oom score adj is [-1000, 1000]")
    own = _own_oom_score_adj()
    if own is not None and n < own:
        raise UsageError(f"--oom-score-adj {n}: a rootless container cannot have a lower OOM score than its "
                         f"user's processes ({own})", f"use a value of at least {own}")
    return n


def _own_oom_score_adj() -> int | None:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def check_domainname(name: str) -> str:
    if len(name.encode()) > 64 or "\0" in name:
        raise UsageError(f"invalid domain name {name!r}", "at most 64 bytes")
    return name


def signal_number(name: str | int) -> int:
    """``KILL``, ``SIGKILL``, ``9``: a signal this kernel has (UsageError for anything else)."""
    import signal
    s = str(name).upper().removeprefix("SIG")
    if s.isascii() and s.isdigit():
        if int(s) in {int(v) for v in signal.valid_signals()}:
            return int(s)
        raise UsageError(f"invalid signal: {name}", "use a name (TERM, KILL, HUP, ...) or a number from 1 to 64")
    try:
        return int(signal.Signals["SIG" + s])
    except KeyError:
        raise UsageError(f"invalid signal: {name}") from None


def write_sysctls(items) -> None:
    """The keeper, in the container's namespaces: each ``(key, value)``."""
    from rootless.base.errors import RootlessError
    for key, value in items:
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        except OSError as e:
            hint = "leave that sysctl out"
            if key == "net.ipv4.ping_group_range":  # Docker's usual "0 2147483647" names unmapped groups
                hint = f"its groups must be mapped in the container's user namespace: use \"0 {_mapped_gids() - 1}\""
            raise RootlessError(f"cannot set the sysctl {key}={value}: {e.strerror}", hint) from None


def _mapped_gids() -> int:
    """How many group ids the caller's user namespace maps."""
    try:
        with open("/proc/self/gid_map") as f:
            return sum(int(line.split()[2]) for line in f if line.strip())
    except (OSError, ValueError, IndexError):
        return 1
