"""Container commands: run, create, start, stop, restart, kill, rm, wait, exec, top, stats, update,
port, commit, export, cp, attach, mount, unmount, rename, container prune, ps, inspect and logs."""

import sys

from rootless.cli import dockerflags
from rootless.cli.params import Arg, Opt, alias, command

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context

# The resource-limit flags, shared by `run`/`create` and `update`.
LIMIT = {
    "memory": Opt(("-m", "--memory"), None, "Memory limit (512m, 1g)."),
    "memory_reservation": Opt(("--memory-reservation",), None, "Memory soft limit."),
    "memory_swap": Opt(("--memory-swap",), None, "Memory plus swap limit (-1: unlimited swap)."),
    "cpus": Opt(("--cpus",), None, "Number of CPUs (1.5)."),
    "cpu_shares": Opt(("-c", "--cpu-shares"), None, "CPU shares (relative weight, 2-262144)."),
    "cpu_quota": Opt(("--cpu-quota",), None, "CPU time in each --cpu-period, in microseconds (-1: no limit)."),
    "cpu_period": Opt(("--cpu-period",), None, "The CFS period of --cpu-quota, in microseconds (default 100000)."),
    "cpuset_cpus": Opt(("--cpuset-cpus",), None, "CPUs to run on (0-3, 0,1)."),
    "cpuset_mems": Opt(("--cpuset-mems",), None, "Memory (NUMA) nodes to allocate from (0-3, 0,1)."),
    "pids_limit": Opt(("--pids-limit",), None, "Process limit (-1: unlimited)."),
    "blkio_weight": Opt(("--blkio-weight",), None, "Block IO weight (10-1000)."),
}
# run's and create's device flags of the io controller
# (name -> (type, declaration): ``params.command``'s ``more``)
DEVICE_IO = {
    "blkio_weight_device": (list[str], Opt(("--blkio-weight-device",), [], "Block IO weight of a device "
                                                                           "(/dev/sda:200).")),
    "device_read_bps": (list[str], Opt(("--device-read-bps",), [], "Read rate limit of a device (/dev/sda:1mb).")),
    "device_write_bps": (list[str], Opt(("--device-write-bps",), [], "Write rate limit of a device (/dev/sda:1mb).")),
    "device_read_iops": (list[str], Opt(("--device-read-iops",), [], "Read operations a second of a device "
                                                                     "(/dev/sda:1000).")),
    "device_write_iops": (list[str], Opt(("--device-write-iops",), [], "Write operations a second of a device "
                                                                       "(/dev/sda:1000).")),
}

def _check_tty(stdin: bool, tty: bool) -> None:
    """Docker's CLI: a container's terminal fed from this one's input needs a terminal here (`run
    -it`, `exec -it`, `attach` to a `-t` container); piped or redirected input is refused."""
    if stdin and tty and not sys.stdin.isatty():
        from rootless.base.errors import RootlessError
        raise RootlessError("the input device is not a TTY",
                            "run it from a terminal, or leave out -t (or -i) to pipe the input", exit_code=1)


# --ipc's values: Docker's that rootless honours ("shareable" is private here: nothing joins it)
IPC_MODES = ("", "private", "shareable", "host")

# The healthcheck flags of `run`/`create` (rootless.runtime.health.from_flags reads them).
HEALTH = {
    "health_cmd": (str, Opt(("--health-cmd",), None, "Command to run to check health (run by sh -c).")),
    "health_interval": (str, Opt(("--health-interval",), None, "Time between checks (ms|s|m|h; default 30s).")),
    "health_timeout": (str, Opt(("--health-timeout",), None, "Maximum time a check may run (default 30s).")),
    "health_retries": (str, Opt(("--health-retries",), None, "Failures in a row that make it unhealthy "
                                                              "(default 3).")),
    "health_start_period": (str, Opt(("--health-start-period",), None,
                                     "Time to start before failures count (default 0s).")),
    "health_start_interval": (str, Opt(("--health-start-interval",), None,
                                       "Time between checks during the start period (default 5s).")),
    "no_healthcheck": (bool, Opt(("--no-healthcheck",), False, "Disable the image's HEALTHCHECK.")),
}


# run's own: how its CLI stays with the container (create has none of them)
ATTACH = {
    "detach": Opt(("-d", "--detach"), False, "Run in the background and print the container ID."),
    "attach": Opt(("-a", "--attach"), [], "Attach to STDIN, STDOUT or STDERR (default: the outputs, and stdin "
                                          "with -i)."),
    "keys": Opt(("--detach-keys",), "ctrl-p,ctrl-q", "Keys that detach from a -it session."),
    "sig_proxy": Opt(("--sig-proxy",), True, "Pass the signals the CLI gets on to the container (without -t); "
                                            "false: they end the CLI, the container runs on."),
}
NAMESPACES = {
    "pid": Opt(("--pid",), "", "host: share the host's pid namespace (its processes, its /proc)."),
    "ipc": Opt(("--ipc",), "", "host: share the host's IPC namespace and /dev/shm (MPI); or private."),
    "uts": Opt(("--uts",), "", "host: share the host's UTS namespace (its host name)."),
}
# the container's process beside its command (runtime.procsettings), its id file, its labels
PROCESS = {
    "stop_timeout": Opt(("--stop-timeout",), None, "Seconds `stop` waits before SIGKILL (default 10)."),
    "stop_signal": Opt(("--stop-signal",), None, "Signal that stops the container (default: the image's "
                                                 "STOPSIGNAL, else SIGTERM)."),
    "ulimit": Opt(("--ulimit",), [], "A resource limit: NAME=SOFT[:HARD] (-1: unlimited), e.g. nofile=1024:2048."),
    "sysctl": Opt(("--sysctl",), [], "A kernel parameter of the container's namespaces: KEY=VALUE "
                                     "(net.*, fs.mqueue.*, kernel.shm*, kernel.msg*, kernel.sem)."),
    "oom_score_adj": Opt(("--oom-score-adj",), None, "Tune the OOM killer's preference (-1000 to 1000; "
                                                     "not below your own)."),
    "shm_size": Opt(("--shm-size",), None, "Size of /dev/shm (default 64m)."),
    "domainname": Opt(("--domainname",), None, "The container's NIS domain name."),
    "cidfile": Opt(("--cidfile",), None, "Write the container ID to the file."),
    "label_file": Opt(("--label-file",), [], "Read labels from a file of KEY=VALUE lines."),
    "label": Opt(("-l", "--label"), [], "Set a label on the container (KEY=VALUE)."),
    "init": Opt(("--init",), False, "Run an init that forwards signals and reaps zombies."),
}


@command("run", interspersed=False, more={**DEVICE_IO, **HEALTH, **dockerflags.FLAGS})
def run(ctx: "Context",
        image: str = Arg(metavar="IMAGE"),
        command: list[str] = Arg(None, metavar="[COMMAND] [ARG...]"),
        rm: bool = Opt(("--rm",), False, "Remove the container when it exits."),
        interactive: bool = Opt(("-i", "--interactive"), False, "Keep stdin open."),
        tty: bool = Opt(("-t", "--tty"), False, "Allocate a pseudo-terminal."),
        env: list[str] = Opt(("-e", "--env"), [], "Set environment variables (K=V, or K to take the host's)."),
        env_file: list[str] = Opt(("--env-file",), [], "Read environment variables from a file."),
        workdir: str = Opt(("-w", "--workdir"), None, "Working directory inside the container."),
        user: str = Opt(("-u", "--user"), None, "name|uid[:group|gid]"),
        entrypoint: str = Opt(("--entrypoint",), None, "Override the image's entrypoint."),
        hostname: str = Opt(("-h", "--hostname"), None, "Container host name."),
        name: str = Opt(("--name",), None, "Name the container."),
        network: str = Opt(("--network", "--net"), "slirp4netns",
                           "slirp4netns[:OPTIONS] | none | host | container:NAME | a network's NAME"),
        network_alias: list[str] = Opt(("--network-alias", "--net-alias"), [],
                                       "Another name of the container on its user-defined network."),
        publish: list[str] = Opt(("-p", "--publish"), [], "Publish a port: [IP:][HOSTPORT:]PORT[/PROTO]."),
        publish_all: bool = Opt(("-P", "--publish-all"), False, "Publish every exposed port on a free port."),
        expose: list[str] = Opt(("--expose",), [], "Expose a port or a range (PORT[-END][/PROTO])."),
        link: list[str] = Opt(("--link",), [], "Link to another container (NAME[:ALIAS])."),
        add_host: list[str] = Opt(("--add-host",), [], "Add a line to /etc/hosts (HOST:IP)."),
        dns: list[str] = Opt(("--dns",), [], "Set a DNS server."),
        dns_search: list[str] = Opt(("--dns-search",), [], "Set a DNS search domain."),
        dns_option: list[str] = Opt(("--dns-option", "--dns-opt"), [], "Set a DNS option."),
        mac_address: str = Opt(("--mac-address",), None, "The container's MAC address (slirp4netns)."),
        log_driver: str = Opt(("--log-driver",), None, "Logging driver: json-file, k8s-file or none."),
        log_opt: list[str] = Opt(("--log-opt",), [], "Log driver options: max-size=SIZE, max-file=N."),
        volume: list[str] = Opt(("-v", "--volume"), [], "Mount a volume or a host path: [NAME|/HOST:]/DST[:ro|rw|U]."),
        mount: list[str] = Opt(("--mount",), [], "type=bind|volume|tmpfs,src=,dst=[,readonly][,tmpfs-size=]"),
        tmpfs: list[str] = Opt(("--tmpfs",), [], "Mount a tmpfs: /DST[:size=64m,mode=1777,...]."),
        volumes_from: list[str] = Opt(("--volumes-from",), [], "Mount every volume of a container: NAME[:ro|rw]."),
        read_only: bool = Opt(("--read-only",), False, "Mount the root filesystem read-only."),
        memory: str = LIMIT["memory"], memory_reservation: str = LIMIT["memory_reservation"],
        memory_swap: str = LIMIT["memory_swap"], cpus: str = LIMIT["cpus"], cpu_shares: str = LIMIT["cpu_shares"],
        cpu_quota: str = LIMIT["cpu_quota"], cpu_period: str = LIMIT["cpu_period"],
        cpuset_cpus: str = LIMIT["cpuset_cpus"], cpuset_mems: str = LIMIT["cpuset_mems"],
        pids_limit: str = LIMIT["pids_limit"], blkio_weight: str = LIMIT["blkio_weight"],
        cap_add: list[str] = Opt(("--cap-add",), [], "Add a Linux capability (or ALL)."),
        cap_drop: list[str] = Opt(("--cap-drop",), [], "Drop a Linux capability (or ALL)."),
        privileged: bool = Opt(("--privileged",), False,
                               "All capabilities, no masked paths, the host devices you may open."),
        security_opt: list[str] = Opt(("--security-opt",), [], "no-new-privileges, seccomp=unconfined, ..."),
        device: list[str] = Opt(("--device",), [], "Add a host device: /dev/HOST[:/dev/CONTAINER][:rwm]."),
        userns: str = Opt(("--userns",), "", "keep-id: your own uid and gid inside the container."),
        pid: str = NAMESPACES["pid"], ipc: str = NAMESPACES["ipc"], uts: str = NAMESPACES["uts"],
        group_add: list[str] = Opt(("--group-add",), [], "Add a supplementary group (a name or a gid)."),
        stop_timeout: int = PROCESS["stop_timeout"], stop_signal: str = PROCESS["stop_signal"],
        ulimit: list[str] = PROCESS["ulimit"], sysctl: list[str] = PROCESS["sysctl"],
        oom_score_adj: int = PROCESS["oom_score_adj"], shm_size: str = PROCESS["shm_size"],
        domainname: str = PROCESS["domainname"], cidfile: str = PROCESS["cidfile"], init: bool = PROCESS["init"],
        label_file: list[str] = PROCESS["label_file"], label: list[str] = PROCESS["label"],
        restart: str = Opt(("--restart",), None, "Restart policy: no, always, unless-stopped, on-failure[:N]."),
        pull: str = Opt(("--pull",), "missing", "Pull the image: missing, always or never."),
        quiet: bool = Opt(("-q", "--quiet"), False, "Suppress the pull output."),
        tls_verify: str = Opt(("--tls-verify",), "true", "false: pull over plain HTTP or unverified TLS."),
        platform: str = Opt(("--platform",), None, "os/arch[/variant]: the image for that platform."),
        detach: bool = ATTACH["detach"], attach: list[str] = ATTACH["attach"], detach_keys: str = ATTACH["keys"],
        sig_proxy: bool = ATTACH["sig_proxy"], **docker):
    """Run a command in a new container."""
    flags = dict(locals())  # the flags above, by name: declared once, passed on by name
    for name in ("ctx", "detach", "detach_keys", "attach", "sig_proxy", "docker"):
        del flags[name]
    flags.update(docker)  # the ``more`` groups
    streams = _streams(attach, detach)
    if not detach:
        _check_tty(interactive and (not streams or "stdin" in streams), tty)
    from rootless.engine import attach as attaching
    from rootless.engine import containers
    # Docker's CLI asks for StdinOnce with -i, but not with -d
    opts = _run_options(**flags, stdin_once=interactive and not detach)
    dockerflags.say_discarded(ctx, docker["memory_swappiness"], docker["oom_kill_disable"], docker["kernel_memory"])
    result = containers.run(ctx, opts, detach, attaching.parse_detach_keys(detach_keys), streams, sig_proxy)
    if detach:
        print(result)
        return 0
    return result


def _streams(attach: list[str], detach: bool) -> tuple[str, ...]:
    """``-a``'s streams, checked in Docker's words (none: the default)."""
    from rootless.base.errors import UsageError
    streams = tuple(dict.fromkeys(a.lower() for a in attach))
    for s in streams:
        if s not in ("stdin", "stdout", "stderr"):
            raise UsageError(f'invalid argument "{s}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and '
                             "STDERR")
    if streams and detach:
        raise UsageError("conflicting options: cannot specify both --attach and --detach")
    return streams


def _run_options(*, image, command, rm, interactive, tty, env, env_file, workdir, user, entrypoint, hostname,
                 name, network, network_alias, publish, publish_all, expose, link, add_host, dns, dns_search,
                 dns_option, mac_address, log_driver, log_opt, volume, mount, tmpfs, volumes_from, read_only,
                 memory, memory_reservation, memory_swap, cpus, cpu_shares, cpuset_cpus, pids_limit,
                 blkio_weight, device_read_bps, device_write_bps, cap_add, cap_drop, privileged, security_opt,
                 device, userns, label, init, restart, pull, tls_verify, platform, group_add=(), stop_timeout=None,
                 pid="", ipc="", uts="", stdin_once=False, stop_signal=None, ulimit=(), sysctl=(),
                 oom_score_adj=None, shm_size=None, domainname=None, cidfile=None, label_file=(), cpu_quota=None,
                 cpu_period=None, cpuset_mems=None, blkio_weight_device=(), device_read_iops=(),
                 device_write_iops=(), runtime=None, isolation=None, cgroupns=None, volume_driver=None,
                 device_cgroup_rule=(), memory_swappiness=None, oom_kill_disable=False, storage_opt=(), gpus=None,
                 quiet=False, kernel_memory=None, disable_content_trust=True, ip=None, ip6=None, link_local_ip=(),
                 **health_flags):
    """``run``'s and ``create``'s flags (each by the name ``run`` declares it under) as RunOptions;
    ``stdin_once``: Docker's StdinOnce, which its CLI sends with -i unless -d."""
    from rootless.runtime.spec import RunOptions
    limit_flags = dict(memory=memory, memory_reservation=memory_reservation, memory_swap=memory_swap, cpus=cpus,
                       cpu_shares=cpu_shares, cpu_quota=cpu_quota, cpu_period=cpu_period, cpuset_cpus=cpuset_cpus,
                       cpuset_mems=cpuset_mems, pids_limit=pids_limit, blkio_weight=blkio_weight,
                       blkio_weight_device=tuple(blkio_weight_device), device_read_bps=tuple(device_read_bps),
                       device_write_bps=tuple(device_write_bps), device_read_iops=tuple(device_read_iops),
                       device_write_iops=tuple(device_write_iops))
    limits = None
    if any(limit_flags.values()):
        from rootless.runtime import cgroups
        limits = cgroups.parse(cgroups.LimitOptions(**limit_flags))
    from rootless.engine.images import registry_options
    registry_options(tls_verify)  # checks the value
    dockerflags.check(disable_content_trust, kernel_memory)
    if pid not in ("", "host"):
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid --pid {pid!r}: rootless supports 'host' only", "use --pid host or leave it out")
    if uts not in ("", "host"):
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid --uts {uts!r}: rootless supports 'host' only", "use --uts host or leave it out")
    if ipc not in IPC_MODES:
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid --ipc {ipc!r}: rootless supports 'host', 'private' and 'shareable'",
                         "use --ipc host (the host's /dev/shm, for MPI) or leave it out")
    if platform:
        from layers import manifest
        manifest.parse_platform(platform)
    labels = _labels(label_file, label)
    ulimits = ()
    if ulimit:
        from rootless.runtime.procsettings import parse_ulimit
        ulimits = tuple(parse_ulimit(u) for u in ulimit)
    sysctls = None
    if sysctl:
        from rootless.runtime.procsettings import parse_sysctls
        sysctls = parse_sysctls(sysctl)
    return RunOptions(image=image, command=tuple(command or ()), entrypoint=entrypoint, env=tuple(env),
                      env_files=tuple(env_file), workdir=workdir, user=user, hostname=hostname, name=name,
                      network=network, init=init, rm=rm, interactive=interactive, stdin_once=stdin_once, tty=tty,
                      publish=tuple(publish), publish_all=publish_all, expose=tuple(expose), links=tuple(link),
                      add_hosts=tuple(add_host), dns=tuple(dns), dns_search=tuple(dns_search),
                      dns_options=tuple(dns_option), mac_address=mac_address, pull=pull, quiet=quiet,
                      endpoint=dockerflags.endpoint(ip, ip6, link_local_ip),
                      tls_verify=tls_verify == "true", platform=platform, log_driver=log_driver,
                      log_opts=tuple(log_opt), volumes=tuple(volume), mounts=tuple(mount), tmpfs=tuple(tmpfs),
                      volumes_from=tuple(volumes_from), read_only=read_only, limits=limits,
                      cap_add=tuple(cap_add), cap_drop=tuple(cap_drop), privileged=privileged,
                      security_opts=tuple(security_opt), devices=tuple(device), userns=userns or "",
                      labels=labels, network_aliases=tuple(network_alias),
                      restart=restart, healthcheck=_healthcheck(**health_flags), group_add=tuple(group_add),
                      stop_timeout=stop_timeout, stop_signal=stop_signal, ulimits=ulimits, sysctls=sysctls,
                      oom_score_adj=oom_score_adj, shm_size=shm_size, domainname=domainname, cidfile=cidfile,
                      asked={k: v for k, v in (("PidMode", pid), ("IpcMode", ipc), ("UTSMode", uts),
                                               ("ContainerIDFile", cidfile),
                                               *dockerflags.settings(runtime, isolation, cgroupns, volume_driver,
                                                                     device_cgroup_rule, memory_swappiness,
                                                                     storage_opt, gpus, volume, mount))
                             if v} or None)


def _labels(files, flags) -> dict[str, str] | None:
    """``--label-file`` (lines KEY=VALUE; blank and ``#`` lines skipped), then ``--label`` over them."""
    from rootless.runtime.spec import parse_labels
    items = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            from rootless.base.errors import UsageError
            raise UsageError(f"open {path}: {str(e.strerror or e).lower()}") from None
        items += [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    items += list(flags)
    return parse_labels(items, "--label-file" if files else "--label") if items else None


def _healthcheck(*, health_cmd=None, health_interval=None, health_timeout=None, health_retries=None,
                 health_start_period=None, health_start_interval=None, no_healthcheck=False):
    """The --health-* flags as Docker's Config.Healthcheck (None: none given)."""
    if not (health_cmd or health_interval or health_timeout or health_retries or health_start_period
            or health_start_interval or no_healthcheck):
        return None
    from rootless.runtime import health
    return health.from_flags(health_cmd, health_interval, health_timeout, health_retries, health_start_period,
                             health_start_interval, no_healthcheck)


@command("create", interspersed=False, params_of=run, without=("detach", "detach_keys", "attach", "sig_proxy"))
def create(ctx: "Context", **kw):
    """Create a new container without starting it."""
    from rootless.engine import containers
    opts = _run_options(**kw, stdin_once=kw["interactive"])
    dockerflags.say_discarded(ctx, kw["memory_swappiness"], kw["oom_kill_disable"], kw["kernel_memory"])
    print(containers.create(ctx, opts)["id"])


@command("start")
def start(ctx: "Context", containers_: list[str] = Arg(None, metavar="CONTAINER..."),
          attach: bool = Opt(("-a", "--attach"), False, "Attach stdout/stderr and wait for the exit."),
          interactive: bool = Opt(("-i", "--interactive"), False, "Attach stdin."),
          all_: bool = Opt(("--all",), False, "Start every stopped container (that the filters choose)."),
          filter_: list[str] = Opt(("-f", "--filter"), [],
                                   "With --all: restart-policy=always, status=, name=, label=, ...")):
    """Start one or more stopped containers."""
    from rootless.base.errors import UsageError
    from rootless.engine import containers
    if all_:
        if containers_:
            raise UsageError("give either --all or containers, not both")
        containers_ = [r["name"] for r in containers.stopped(ctx, filter_)]
        if attach:
            raise UsageError("you cannot start and attach multiple containers at once")
        return _each(ctx, containers_, lambda rec: containers.start(ctx, rec, attached=False))
    if filter_:
        raise UsageError("--filter chooses among --all", "add --all")
    if not containers_:
        raise UsageError("\"start\" requires at least 1 argument", "give containers, or --all")
    if attach and len(containers_) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    code = 0
    for ref in containers_:
        rec = containers.lookup(ctx, ref)
        if attach:
            code = _start_as_docker(ctx, rec, attached=True, stdin=interactive)
        elif not containers.is_running(rec) and rec["state"]["status"] != "restarting":
            _start_as_docker(ctx, rec, attached=False)
            print(ref)
        else:
            print(ref)
    return code


def _start_as_docker(ctx: "Context", rec, **how):
    """``containers.start``'s result; a command that cannot be exec'd fails it with 1, not 127 or 126: Docker's
    ``start`` (with or without ``-a``) says the daemon's error and exits 1, only ``run`` exits 127/126."""
    from rootless.base.errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, RootlessError
    from rootless.engine import containers
    try:
        return containers.start(ctx, rec, **how)
    except RootlessError as e:
        if e.exit_code not in (EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE):
            raise
        e.exit_code = 1
        raise


def _each(ctx: "Context", refs: list[str], action) -> int:
    """Apply ``action`` to each container and print its reference; like Docker, an error for one
    container is reported and the others still get done; the exit code is then 1."""
    from rootless.base.errors import RootlessError
    from rootless.engine import containers
    code = 0
    for ref in refs:
        try:
            action(containers.lookup(ctx, ref))
            print(ref, flush=True)
        except RootlessError as e:
            print(f"rootless: error: {e.message}", file=sys.stderr)
            code = 1
    return code


def _each_link(ctx: "Context", refs: list[str]) -> int:
    """``rm --link``: each CONTAINER/ALIAS link removed, as ``_each`` reports."""
    from rootless.base.errors import RootlessError
    from rootless.engine import containers
    code = 0
    for ref in refs:
        try:
            containers.remove_link(ctx, ref)
            print(ref, flush=True)
        except RootlessError as e:
            print(f"rootless: error: {e.message}", file=sys.stderr)
            code = 1
    return code


@command("stop")
def stop(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER..."),
         time_: int = Opt(("-t", "--time"), None, "Seconds to wait before killing (default 10)."),
         signal_: str = Opt(("-s", "--signal"), None, "Signal to stop with (default: the container's stop signal).")):
    """Stop running containers: the stop signal, then SIGKILL after the grace period."""
    from rootless.engine import containers
    _check_signal(signal_)
    return _each(ctx, containers_, lambda rec: containers.stop(ctx, rec, time_, signal_))


def _check_signal(name: str | None) -> None:
    """``-s``'s signal, checked before any container is stopped."""
    if name is not None:
        from rootless.runtime.procsettings import signal_number
        signal_number(name)


@command("restart")
def restart(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER..."),
            time_: int = Opt(("-t", "--time"), None, "Seconds to wait before killing (default 10)."),
            signal_: str = Opt(("-s", "--signal"), None, "Signal to stop with (default: the container's stop "
                                                         "signal).")):
    """Restart containers."""
    from rootless.engine import containers
    _check_signal(signal_)
    return _each(ctx, containers_, lambda rec: containers.restart(ctx, rec, time_, signal_))


@command("kill")
def kill(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER..."),
         signal_: str = Opt(("-s", "--signal"), "KILL", "Signal to send (name or number).")):
    """Send a signal to running containers."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.kill(ctx, rec, signal_))


@command("pause")
def pause(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER...")):
    """Pause all processes within one or more containers."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.pause(ctx, rec))


@command("unpause")
def unpause(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER...")):
    """Unpause all processes within one or more containers."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.unpause(ctx, rec))


@command("rm")
def rm(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER..."),
       force: bool = Opt(("-f", "--force"), False, "Kill and remove a running container."),
       volumes: bool = Opt(("-v", "--volumes"), False, "Remove anonymous volumes too."),
       link: bool = Opt(("-l", "--link"), False, "Remove the specified link (CONTAINER/ALIAS).")):
    """Remove containers."""
    from rootless.engine import containers
    if link:
        return _each_link(ctx, containers_)
    return _each(ctx, containers_, lambda rec: containers.remove(ctx, rec, force, volumes))


@command("wait")
def wait(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER...")):
    """Block until containers stop, then print their exit codes."""
    from rootless.engine import containers
    for ref in containers_:
        rec = containers.wait_exit(ctx, containers.lookup(ctx, ref))
        print(rec["state"].get("exit_code", 0))


@command("exec", interspersed=False)
def exec_(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
          command: list[str] = Arg(metavar="COMMAND [ARG...]"),
          detach: bool = Opt(("-d", "--detach"), False, "Run the command in the background."),
          interactive: bool = Opt(("-i", "--interactive"), False, "Keep stdin open."),
          tty: bool = Opt(("-t", "--tty"), False, "Allocate a pseudo-terminal."),
          env: list[str] = Opt(("-e", "--env"), [], "Set environment variables."),
          env_file: list[str] = Opt(("--env-file",), [], "Read environment variables from a file."),
          user: str = Opt(("-u", "--user"), None, "name|uid[:group|gid]"),
          workdir: str = Opt(("-w", "--workdir"), None, "Working directory inside the container."),
          privileged: bool = Opt(("--privileged",), False, "Every capability (of the container's user namespace).")):
    """Run a command in a running container."""
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    if not detach:
        _check_tty(interactive, tty)
    return containers.exec_in(ctx, rec, command, env, user, workdir, tty, interactive, detach,
                              env_files=env_file, privileged=privileged) or 0


@command("top", interspersed=False)
def top(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
        ps_args: list[str] = Arg(None, metavar="[ps OPTIONS]")):
    """Show the processes of a container (host pids); with ps options, the host's ps with them."""
    from rootless.cli import render, views
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    if not containers.is_running(rec):
        from rootless.base.errors import Conflict
        raise Conflict(f"container {rec['id'][:12]} is not running", exit_code=1)
    pid, pid_host = rec["state"]["pid"], (rec["spec"].get("asked") or {}).get("PidMode") == "host"
    if ps_args:
        from rootless.engine import dockerview
        print("\n".join(dockerview.top_with_ps(pid, pid_host, ps_args)))
        return
    print(render.table(["UID", "PID", "PPID", "STIME", "TIME", "CMD"], views.top_rows(pid, pid_host)))


@command("stats")
def stats(ctx: "Context", containers_: list[str] = Arg(None, metavar="[CONTAINER...]"),
          all_: bool = Opt(("-a", "--all"), False, "Show every container (default: running ones)."),
          no_stream: bool = Opt(("--no-stream",), False, "Print one sample and exit."),
          format_: str = Opt(("--format",), None, "Go template, or table TEMPLATE."),
          no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate output.")):
    """Show containers' resource use (CPU, memory, network, block I/O, processes)."""
    from rootless.cli import render, views
    from rootless.engine import containers, containerstats
    while True:
        recs = [containers.lookup(ctx, c) for c in containers_] if containers_ else containers.all_current(ctx)
        if not all_ and not containers_:
            recs = [r for r in recs if containers.is_running(r)]
        rows = [views.stats_row(r, trunc=not no_trunc) for r in containerstats.stats(ctx, recs)]
        if format_:
            out = render.formatted(format_, rows, views.STATS_HEADERS)
        else:
            out = render.table([views.STATS_HEADERS[k] for k in views.STATS_DEFAULT],
                               [[r[k] for k in views.STATS_DEFAULT] for r in rows])
        if not no_stream and sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(out, flush=True)
        if no_stream:
            return


@command("update")
def update(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER..."),
           memory: str = LIMIT["memory"], memory_reservation: str = LIMIT["memory_reservation"],
           memory_swap: str = LIMIT["memory_swap"], cpus: str = LIMIT["cpus"], cpu_shares: str = LIMIT["cpu_shares"],
           cpu_quota: str = LIMIT["cpu_quota"], cpu_period: str = LIMIT["cpu_period"],
           cpuset_cpus: str = LIMIT["cpuset_cpus"], cpuset_mems: str = LIMIT["cpuset_mems"],
           pids_limit: str = LIMIT["pids_limit"], blkio_weight: str = LIMIT["blkio_weight"],
           restart: str = Opt(("--restart",), None, "Restart policy: no, always, unless-stopped, on-failure[:N].")):
    """Change the resource limits or the restart policy of containers (running ones at once)."""
    from rootless.base.errors import UsageError
    from rootless.engine import containers, containerstats
    from rootless.runtime import cgroups
    limits = cgroups.parse(cgroups.LimitOptions(
        memory=memory, memory_reservation=memory_reservation, memory_swap=memory_swap, cpus=cpus,
        cpu_shares=cpu_shares, cpu_quota=cpu_quota, cpu_period=cpu_period, cpuset_cpus=cpuset_cpus,
        cpuset_mems=cpuset_mems, pids_limit=pids_limit, blkio_weight=blkio_weight))
    if not limits and restart is None:
        raise UsageError("you must provide one or more flags when using this command")
    if restart is not None:
        from rootless.runtime import restart as policy
        policy.parse(restart)  # checked once, before any container changes

    def one(rec) -> None:
        if limits:
            containerstats.update(ctx, rec, limits)
        if restart is not None:
            containers.set_restart_policy(ctx, containers.lookup(ctx, rec["id"]), restart)
    return _each(ctx, containers_, one)


@command("port")
def port(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
         private_port: str = Arg(None, metavar="[PRIVATE_PORT[/PROTO]]")):
    """List the port mappings of a container, or the host side of one port."""
    from rootless.base.errors import RootlessError
    from rootless.cli import views
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    lines = views.port_lines(rec, private_port)
    if private_port and not lines:
        port_ = private_port if "/" in private_port else f"{private_port}/tcp"
        raise RootlessError(f"no public port '{port_}' published for {container}", exit_code=1)
    if lines:
        print("\n".join(lines))


@command("commit")
def commit(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
           reference: str = Arg(None, metavar="[REPOSITORY[:TAG]]"),
           message: str = Opt(("-m", "--message"), None, "Commit message."),
           author: str = Opt(("-a", "--author"), None, "Author."),
           change: list[str] = Opt(("-c", "--change"), [], "Dockerfile instruction (CMD, ENV, ...)."),
           pause: bool = Opt(("-p", "--pause"), True, "Accepted for compatibility: commits do not pause.")):
    """Create a new image from a container's changes."""
    from rootless.engine import containerfs, containers
    print(containerfs.commit(ctx, containers.lookup(ctx, container), reference, author, message, change))


@command("diff")
def diff(ctx: "Context", container: str = Arg(metavar="CONTAINER")):
    """Inspect changes to files or directories on a container's filesystem (A added, C changed, D deleted)."""
    from rootless.engine import containerfs, containers
    for path, kind in containerfs.diff(ctx, containers.lookup(ctx, container)):
        print(f"{'CAD'[kind]} {path}")


@command("export")
def export(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
           output: str = Opt(("-o", "--output"), None, "Write to a file instead of stdout.")):
    """Export a container's filesystem as a tar archive."""
    import os as _os

    from rootless.base.errors import UsageError
    from rootless.engine import containerfs, containers
    rec = containers.lookup(ctx, container)
    if output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to write a tar archive to a terminal", "use -o FILE or redirect")
    if output is None:
        sys.stdout.flush()
        containerfs.export(ctx, rec, _os.dup(1))
        return
    tmp = f"{output}.tmp-{_os.getpid()}"
    fd = _os.open(tmp, _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC, 0o644)
    try:
        containerfs.export(ctx, rec, fd)
        _os.rename(tmp, output)
    finally:
        if _os.path.exists(tmp):
            _os.unlink(tmp)


@command("cp")
def cp(ctx: "Context", src: str = Arg(metavar="SRC"), dest: str = Arg(metavar="DEST"),
       follow_link: bool = Opt(("-L", "--follow-link"), False, "Follow a symbolic link named by SRC."),
       archive: bool = Opt(("-a", "--archive"), False, "Into a container: keep the files' numeric owners (else "
                                                        "its root's); out of one they are always yours.")):
    ("""Copy files between a container and the host: CONTAINER:PATH HOST_PATH or the reverse """
     """(`-`: a tar on stdout or stdin).""")
    from rootless.base.errors import UsageError
    from rootless.engine import containerfs, containers

    def split(arg: str):
        head, sep, path = arg.partition(":")
        return (head, path) if sep and "/" not in head and head else (None, arg)

    (sc, sp), (dc, dp) = split(src), split(dest)
    if (sc is None) == (dc is None):
        raise UsageError("copying between containers or between host paths is not supported",
                         "give exactly one side as CONTAINER:PATH")
    if sc is not None:
        containerfs.copy_out(ctx, containers.lookup(ctx, sc), sp, dp, follow_link)
    else:
        containerfs.copy_in(ctx, containers.lookup(ctx, dc), sp, dp, archive)


@command("attach")
def attach(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
           no_stdin: bool = Opt(("--no-stdin",), False, "Do not attach stdin."),
           detach_keys: str = Opt(("--detach-keys",), "ctrl-p,ctrl-q",
                                  "Keys that detach (the container keeps running)."),
           sig_proxy: bool = ATTACH["sig_proxy"]):
    """Attach to a running container's input and output."""
    from rootless.engine import attach as attachmod
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    _check_tty(not no_stdin, bool(rec["spec"].get("tty")))
    return attachmod.attach(ctx, rec, not no_stdin and bool(rec["spec"].get("interactive")),
                            attachmod.parse_detach_keys(detach_keys), sig_proxy) or 0


@command("mount")
def mount(ctx: "Context", container: str = Arg(metavar="CONTAINER")):
    """Print a path to a container's root filesystem (chroot-like access from the host)."""
    from rootless.engine import containerfs, containers
    print(containerfs.mount(ctx, containers.lookup(ctx, container)))


@command("unmount")
def unmount(ctx: "Context", container: str = Arg(metavar="CONTAINER")):
    """Release what `rootless mount` holds for a stopped container."""
    from rootless.engine import containerfs, containers
    containerfs.unmount(ctx, containers.lookup(ctx, container))
    print(container)


@command("rename")
def rename(ctx: "Context", container: str = Arg(metavar="CONTAINER"), new_name: str = Arg(metavar="NEW_NAME")):
    """Rename a container."""
    from rootless.engine import containers
    containers.rename(ctx, containers.lookup(ctx, container), new_name)


@command("container", "prune")
def container_prune(ctx: "Context", force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation."),
                    filter_: list[str] = Opt(("--filter",), [], "until=TIME (created before), label=K[=V], "
                                                                "label!=K[=V].")):
    """Remove all stopped containers."""
    from rootless.cli import render
    from rootless.engine import system
    removed, freed = system.container_prune(ctx, filter_)
    if removed:
        print("Deleted Containers:\n" + "\n".join(removed) + "\n")
    print(f"Total reclaimed space: {render.human_size(freed)}")


@command("ps")
def ps(ctx: "Context", all_: bool = Opt(("-a", "--all"), False, "Show all containers (default: running)."),
       quiet: bool = Opt(("-q", "--quiet"), False, "Only show container IDs."),
       last: int = Opt(("-n", "--last"), None, "Show the N last created containers (all states)."),
       latest: bool = Opt(("-l", "--latest"), False, "Show the latest created container."),
       filter_: list[str] = Opt(("-f", "--filter"), [],
                                "status=, name=, id=, ancestor=, label=, health=, restart-policy="),
       format_: str = Opt(("--format",), None, "Go template, or table TEMPLATE."),
       no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate output."),
       size: bool = Opt(("-s", "--size"), False, "Show the writable layer's size (and the image's: virtual).")):
    """List containers."""
    from rootless.cli import render, views
    from rootless.engine.containerlist import ListOptions, list_containers, sizes
    recs = list_containers(ctx, ListOptions(all=all_, limit=last, latest=latest, filters=tuple(filter_)))
    rows = [views.ps_row(r, trunc=not no_trunc, sizes=sizes(ctx, r) if size else None) for r in recs]
    if quiet:
        if rows:
            print("\n".join(r["ID"] for r in rows))
        return
    if format_:
        out = render.formatted(format_, [views.template_data(r) for r in rows], views.PS_HEADERS)
        if rows or out:
            print(out)
        return
    columns = views.PS_DEFAULT + (["Size"] if size else [])
    print(render.table([views.PS_HEADERS[k] for k in columns], [[r[k] for k in columns] for r in rows]))


@command("inspect")
def inspect(ctx: "Context", objects: list[str] = Arg(metavar="NAME|ID..."),
            format_: str = Opt(("-f", "--format"), None, "Go template."),
            type_: str = Opt(("--type",), None, "container or image"),
            size: bool = Opt(("-s", "--size"), False, "A container's SizeRw and SizeRootFs too.")):
    """Low-level information on containers (and images) as JSON."""
    from rootless.base.errors import ContainerNotFound, RootlessError
    from rootless.cli import render, views
    from rootless.engine import containers
    found, errors = [], []
    for ref in objects:
        try:
            if type_ in (None, "container"):
                try:
                    rec = containers.lookup(ctx, ref)
                    found.append(views.inspect(rec, ctx.paths))
                    if size:
                        from rootless.engine.containerlist import sizes
                        found[-1]["SizeRw"], found[-1]["SizeRootFs"] = sizes(ctx, rec)
                    continue
                except ContainerNotFound:
                    if type_ == "container":
                        raise
            from rootless.engine import images as image_ops
            found.append(image_ops.image_inspect(ctx, ref))
        except RootlessError:
            errors.append(ref)
    if format_:
        out = render.formatted(format_, [views.template_data(f) for f in found], {})
        if found:
            print(out)  # one line per object, empty ones included (as Docker)
    else:
        import json
        print(json.dumps(found, indent=4))
    if errors:  # Docker's words: the kind asked for, else an object
        raise ContainerNotFound(f"No such {type_ if type_ in ('container', 'image') else 'object'}: {errors[0]}")


@command("logs")
def logs(ctx: "Context", container: str = Arg(metavar="CONTAINER"),
         follow: bool = Opt(("-f", "--follow"), False, "Follow the output until the container stops."),
         tail: str = Opt(("-n", "--tail"), "all", "Number of lines from the end (or all)."),
         timestamps: bool = Opt(("-t", "--timestamps"), False, "Show timestamps."),
         since: str = Opt(("--since",), None, "Since a timestamp or a relative time (10m, 1h30m)."),
         until: str = Opt(("--until",), None, "Until a timestamp or a relative time."),
         details: bool = Opt(("--details",), False, "Show each line's details: the labels and environment "
                                                     "variables its --log-opt labels=/env= name.")):
    """Show what a container wrote to stdout and stderr."""
    from rootless.base.errors import UsageError
    from rootless.cli import logview
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    n = None if tail in ("all", "-1") else (int(tail) if tail.isdigit() else None)
    if n is None and tail not in ("all", "-1"):
        raise UsageError(f"invalid --tail value {tail!r}")
    entries = containers.log_entries(ctx, rec, follow, n, since, until)
    logview.render(entries, timestamps, sys.stdout.buffer, sys.stderr.buffer,
                   containers.log_details(rec) if details else None)
    hint = containers.daemon_hint(ctx, rec)
    if hint:
        print(f"rootless: hint: {hint}", file=sys.stderr)


@command("container", "inspect")
def container_inspect(ctx: "Context", containers_: list[str] = Arg(metavar="CONTAINER..."),
                      format_: str = Opt(("-f", "--format"), None, "Go template."),
                      size: bool = Opt(("-s", "--size"), False, "SizeRw and SizeRootFs too.")):
    """Low-level information on containers as JSON."""
    return inspect(ctx, containers_, format_, "container", size)


# Docker's ``container VERB``: the same commands under the noun (``container ls`` is ``ps``)
for _verb, _target in (("ls", ps), ("list", ps), ("ps", ps), ("run", run), ("create", create), ("start", start),
                       ("stop", stop), ("restart", restart), ("kill", kill), ("rm", rm), ("wait", wait),
                       ("exec", exec_), ("top", top), ("stats", stats), ("update", update), ("port", port),
                       ("commit", commit), ("diff", diff), ("export", export), ("cp", cp), ("attach", attach),
                       ("rename", rename), ("pause", pause), ("unpause", unpause), ("logs", logs),
                       ("mount", mount), ("unmount", unmount)):
    alias(("container", _verb), _target)
