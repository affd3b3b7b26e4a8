"""What a container is: its options from the command line and the spec built from them.

``build`` is pure: the image's config plus the options give a frozen
``ContainerSpec``, which the record stores and the launcher executes.
"""

from __future__ import annotations

import os

from rootless.base.errors import UsageError
from rootless.base.valuetype import KeywordRecord, keyword_record

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@keyword_record
class RunOptions(KeywordRecord):
    """The options of ``run``/``create`` (the CLI's flags; the API's create maps onto them)."""
    image: str
    command: Sequence[str] = ()
    entrypoint: str | Sequence[str] | None = None  # see split_command
    env: Sequence[str] = ()
    env_files: Sequence[str] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    name: str | None = None
    network: str = "slirp4netns"
    init: bool = False
    rm: bool = False
    interactive: bool = False
    stdin_once: bool = False  # Docker's Config.StdinOnce: an attach client's end of input closes the input
    tty: bool = False
    publish: Sequence[str] = ()
    publish_all: bool = False
    expose: Sequence[str] = ()
    links: Sequence[str] = ()
    add_hosts: Sequence[str] = ()
    dns: Sequence[str] = ()
    dns_search: Sequence[str] = ()
    dns_options: Sequence[str] = ()
    mac_address: str | None = None
    pull: str = "missing"
    quiet: bool = False  # -q: no pull output
    endpoint: dict | None = None  # --ip, --ip6, --link-local-ip: Docker's EndpointConfig on its user-defined network
    tls_verify: bool = True
    platform: str | None = None
    log_driver: str | None = None
    log_opts: Sequence[str] = ()
    volumes: Sequence[str] = ()
    mounts: Sequence[str] = ()
    tmpfs: Sequence[str] = ()
    volumes_from: Sequence[str] = ()
    read_only: bool = False
    limits: dict[str, Any] | None = None
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    privileged: bool = False
    security_opts: Sequence[str] = ()
    devices: Sequence[str] = ()
    userns: str = ""
    labels: dict[str, str] | None = None
    network_aliases: Sequence[str] = ()  # --network-alias
    # the user-defined networks, resolved by the engine to (network id, aliases) pairs
    # (``network`` is then the mode their members run in)
    networks: Sequence[tuple[str, Sequence[str]]] = ()
    restart: str | None = None  # --restart: no, always, unless-stopped, on-failure[:N]
    # Docker's Config.Healthcheck from --health-* or the API (runtime.health); None: the image's
    healthcheck: dict[str, Any] | None = None
    group_add: Sequence[str] = ()  # --group-add: supplementary groups, names or gids
    stop_timeout: int | None = None  # --stop-timeout: stop's default wait before SIGKILL
    raw_env: Sequence[str] = ()  # the API's Config.Env: kept as the client sent it (no host lookup)
    stop_signal: str | None = None  # --stop-signal (None: the image's, else SIGTERM)
    # runtime.procsettings: Docker's HostConfig.Ulimits items, Sysctls, OomScoreAdj, ShmSize (bytes), Domainname
    ulimits: Sequence[dict[str, Any]] = ()
    sysctls: dict[str, str] | None = None
    oom_score_adj: int | None = None
    shm_size: int | None = None
    domainname: str | None = None
    cidfile: str | None = None  # --cidfile: the file the container's id is written to once it is made
    asked: dict[str, Any] | None = None  # Docker settings kept only to show them (see ContainerSpec)


@keyword_record
class _ContainerSpecFields(KeywordRecord):
    id: str
    name: str
    image_id: str
    image_name: str
    layers: tuple[str, ...]
    argv: tuple[str, ...]
    env: tuple[str, ...]
    user: str
    workdir: str
    hostname: str
    network: str = "none"
    init: bool = False
    tty: bool = False
    interactive: bool = False
    remove: bool = False
    labels: dict[str, str] | None = None
    stop_signal: str = "SIGTERM"
    entrypoint: tuple[str, ...] | None = None
    ports: tuple[Any, ...] = ()
    publish_all: bool = False
    exposed: tuple[str, ...] = ()
    links: tuple[Any, ...] = ()
    add_hosts: tuple[Any, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    mac: str | None = None
    log: dict[str, Any] | None = None
    mounts: tuple[dict[str, Any], ...] = ()
    read_only: bool = False
    no_new_privs: bool = False
    limits: dict[str, Any] | None = None
    caps: Any = None  # the capability names kept (a list or tuple), None: Docker's default set
    privileged: bool = False
    devices: tuple[Any, ...] = ()
    seccomp: Any = True  # True, False or {"profile": ...}
    root_emulation: str = "auto"
    userns: str = ""
    networks: tuple[Any, ...] = ()
    restart: dict[str, Any] | None = None  # Docker's RestartPolicy (rootless.runtime.restart); None: no
    healthcheck: dict[str, Any] | None = None
    group_add: tuple[str, ...] = ()
    stop_timeout: int | None = None
    asked: dict[str, Any] | None = None
    stdin_once: bool = False
    ulimits: tuple[Any, ...] = ()
    sysctls: dict[str, str] | None = None
    oom_score_adj: int | None = None
    shm_size: int | None = None
    domainname: str = ""


# fields a record holds only when set (older records, and most containers, have none of them)
_OPTIONAL = {"stdin_once": False, "ulimits": [], "sysctls": None, "oom_score_adj": None, "shm_size": None,
             "domainname": ""}


class ContainerSpec(_ContainerSpecFields):
    """What a container runs. ``layers``: diff ids, bottom first; ``argv``: entrypoint + cmd;
    ``entrypoint``: the part of argv that is the entrypoint (Docker's Config.Entrypoint; None when
    unknown); ``env``: KEY=VALUE (HOME is added from the user's passwd entry at start);
    ``labels``: a dict (None becomes {}). Network: ``network`` as given (``container:ID`` resolved
    to an id); ``ports``: PortMapping fields as lists; ``exposed``: "80/tcp" strings (the image's,
    --expose'd and published); ``links``: [linked id, alias]; ``add_hosts``: [host, ip].
    ``log``: the log settings (``rootless.runtime.logs.log_config``; None in older records).
    ``mounts``: volumes and bind mounts, dicts (``rootless.engine.volumes.mounts_for``).
    ``no_new_privs``: set the flag before exec (false for a build's RUN steps).
    ``limits``: resource limits (``rootless.runtime.cgroups.parse``; None or {}: none).
    ``caps``: the capability names the container keeps (None: Docker's default set);
    ``privileged``: no masked paths, the host devices the user may open; ``devices``: (host node,
    container path) pairs to bind; ``seccomp``: True for the default seccomp profile, false for
    none (``--privileged``, ``--security-opt seccomp=unconfined``), ``{"profile": ...}`` for a
    profile of Docker's format given with ``--security-opt seccomp=FILE``; ``root_emulation``:
    "on", "off" or "auto" (on in a single-uid user namespace); ``userns``: "" or "keep-id" (the
    user's own uid and gid inside, :func:`rootless.base.idmap.keep_id`); ``networks``: the
    user-defined networks it is a member of, [network id, [aliases]] pairs (each start links it to
    their running members, ``rootless.runtime.network``; ``network`` is then ``slirp4netns``, or
    ``none`` for an internal network); ``restart``: Docker's RestartPolicy (``rootless.runtime.restart``;
    None: ``no``, and then not written into the record); ``healthcheck``: Docker's ``Config.Healthcheck``,
    the flags' over the image's (``rootless.runtime.health``; None: none);
    ``group_add``: supplementary groups of the container's
    process (names in the image's /etc/group, or gids); ``stop_timeout``: seconds ``stop`` waits
    before SIGKILL when not told (None: 10); ``asked``: Docker's settings that rootless keeps only
    to show them in ``inspect`` as the client gave them (``rootless.engine.dockerview``): HostConfig
    fields of no effect here (``Isolation``, ``DeviceCgroupRules``, ...), the log options asked for,
    and limits this host could not enforce (``discarded_limits``, said in the create's warnings);
    ``stdin_once``: Docker's ``Config.StdinOnce``, the end of an API attach client's input closes the
    container's input (without it, and with a terminal, the attach ends and the input stays open);
    ``ulimits`` (Docker's ``{"Name", "Soft", "Hard"}``), ``sysctls``, ``oom_score_adj``, ``shm_size``
    (bytes of /dev/shm; None: 64 MiB), ``domainname``: ``runtime.procsettings``."""

    __slots__ = ()

    if not TYPE_CHECKING:  # the checker checks the fields' keywords against the declaration
        def __new__(cls, *args, **kwargs):
            self = super().__new__(cls, *args, **kwargs)
            return self if self.labels is not None else self._replace(labels={})

    def to_json(self) -> dict:
        d = self._asdict()
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        if d.get("restart") is None:  # no policy: the record keeps the shape older versions read
            del d["restart"]
        if d["healthcheck"] is None:  # no healthcheck: the record has no such key (as before there was one)
            del d["healthcheck"]
        for key, default in _OPTIONAL.items():  # likewise
            if d[key] == default:
                del d[key]
        return d

    @classmethod
    def from_json(cls, d: dict) -> ContainerSpec:
        kw: dict[str, Any] = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
              for k, v in d.items() if k in cls._fields}
        return cls(**kw)


def parse_env_file(text: str, path: str, host_env: dict[str, str]) -> list[str]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.lstrip()  # Docker keeps a value's trailing spaces
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            line = line.rstrip()
        out.extend(merge_env_arg(line, host_env, f"{path}:{n}"))
    return out


def merge_env_arg(arg: str, host_env: dict[str, str], where: str = "-e") -> list[str]:
    """``K=V`` as is; ``K`` takes the host's value or is dropped (Docker's rule)."""
    key, eq, _ = arg.partition("=")
    check_env_name(arg, where)
    if eq:
        return [arg]
    return [f"{key}={host_env[key]}"] if key in host_env else []


def check_env_name(arg: str, where: str = "-e") -> None:
    key = arg.partition("=")[0]
    if not key or key != key.strip() or " " in key:
        raise UsageError(f"invalid environment variable {arg!r} ({where})")


def parse_labels(items, flag: str = "--label", need_value: bool = False) -> dict[str, str]:
    """``--label KEY=VALUE`` (KEY alone: an empty value, unless ``need_value``), as ``build`` and
    ``volume create`` take them (and ``volume create --opt``, which needs the value)."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or (need_value and not eq):
            raise UsageError(f"invalid {flag} {item!r}", "use KEY=VALUE")
        out[key] = value
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Later values win; order of first appearance is kept; an item without ``=`` (the API's
    variable given without a value) stays as it was given."""
    env: dict[str, str] = {}
    for item in list(base) + list(overrides):
        env[item.partition("=")[0]] = item
    return list(env.values())


def split_command(image_cfg: dict, command: Sequence[str], entrypoint: str | Sequence[str] | None) -> tuple[list, list]:
    """(entrypoint, cmd) by Docker's rule: --entrypoint replaces the image's entrypoint and drops its
    CMD. ``entrypoint``: None (the image's), a string (the flag's; "" resets it) or a list (the
    API's; an empty list resets it and keeps the image's CMD, as Docker's daemon does)."""
    if entrypoint is None:
        return list(image_cfg.get("Entrypoint") or []), list(command) or list(image_cfg.get("Cmd") or [])
    if isinstance(entrypoint, str):
        return ([entrypoint] if entrypoint else []), list(command)
    ep = list(entrypoint)
    return ep, list(command) if ep else list(command) or list(image_cfg.get("Cmd") or [])


def command_line(image_cfg: dict, command: Sequence[str], entrypoint: str | Sequence[str] | None) -> list[str]:
    """Docker's rule: --entrypoint replaces the image's entrypoint and drops its CMD."""
    ep, cmd = split_command(image_cfg, command, entrypoint)
    argv = ep + cmd
    if not argv:
        raise UsageError("no command specified", "give a command after the image name")
    return argv


def build(opts: RunOptions, cid: str, name: str, image: dict, image_config: dict, image_name: str,
          host_env: dict[str, str], env_file_texts: dict[str, str], log: dict | None = None,
          mounts: tuple[dict, ...] = ()) -> ContainerSpec:
    """``log``: the container's log settings (``logs.log_config``); None: from the flags over the
    built-in defaults."""
    if log is None:
        from rootless.base.config import LOG_DEFAULTS
        from rootless.runtime.logs import log_config
        log = log_config(opts.log_driver, opts.log_opts, LOG_DEFAULTS)
    cfg = image_config.get("config") or {}
    net = network_fields(opts, cfg.get("ExposedPorts"))
    workdir = opts.workdir if opts.workdir is not None else (cfg.get("WorkingDir") or "/")
    if not workdir.startswith("/"):
        raise UsageError(f"the working directory {workdir!r} is invalid, it needs to be an absolute path")
    hostname = opts.hostname or cid[:12]
    if (opts.asked or {}).get("UTSMode") == "host":  # the host's UTS namespace: its name
        if opts.hostname:
            raise UsageError("conflicting options: hostname and the UTS mode host")
        hostname = os.uname().nodename
    elif opts.network == "host" and not opts.hostname:  # Docker's: the host's network, the host's name
        hostname = os.uname().nodename
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    extra = []
    for path in opts.env_files:
        extra += parse_env_file(env_file_texts[path], path, host_env)
    for arg in opts.env:
        extra += merge_env_arg(arg, host_env)
    for arg in opts.raw_env:
        check_env_name(arg)
        extra.append(arg)
    env = merge_env([f"HOSTNAME={hostname}"] + env, extra)
    if opts.userns not in ("", "keep-id"):
        raise UsageError(f"--userns {opts.userns!r} is not supported", "use --userns=keep-id, or leave it out")
    keep_id = opts.userns == "keep-id"
    from rootless.runtime import restart
    restart_policy = restart.parse(opts.restart)
    restart.check(restart_policy, opts.rm)
    if keep_id and opts.network.startswith("container:"):
        raise UsageError("--userns=keep-id cannot join another container's namespaces (--network container:)")
    return ContainerSpec(
        id=cid, name=name, image_id=image["id"], image_name=image_name,
        layers=tuple(lr["diff_id"] for lr in image["layers"]),
        argv=tuple(command_line(cfg, opts.command, opts.entrypoint)),
        env=tuple(env),
        user=opts.user if opts.user is not None else (cfg.get("User") or "") if not keep_id
        else f"{os.getuid()}:{os.getgid()}",  # keep-id: the user's own ids unless -u says otherwise
        workdir=os.path.normpath(workdir),
        hostname=hostname, init=opts.init, tty=opts.tty, **net,
        interactive=opts.interactive, stdin_once=opts.stdin_once, remove=opts.rm, restart=restart_policy,
        labels={**(cfg.get("Labels") or {}), **(opts.labels or {})},  # the image's, then --label's
        stop_signal=opts.stop_signal or cfg.get("StopSignal") or "SIGTERM",
        entrypoint=tuple(split_command(cfg, opts.command, opts.entrypoint)[0]),
        log=log,
        mounts=tuple(mounts),
        read_only=opts.read_only,
        limits=dict(opts.limits or {}),
        userns=opts.userns,
        group_add=tuple(opts.group_add),
        stop_timeout=opts.stop_timeout,
        asked=_asked(opts, log),
        **_security_fields(opts),
        **_health_fields(opts, cfg),
        **_process_fields(opts),
    )


def _process_fields(opts: RunOptions) -> dict:
    """``--ulimit``, ``--sysctl``, ``--oom-score-adj``, ``--shm-size``, ``--domainname`` and
    ``--stop-signal``, checked (``runtime.procsettings``); only those given."""
    if not (opts.ulimits or opts.sysctls or opts.oom_score_adj is not None or opts.shm_size or opts.domainname
            or opts.stop_signal):
        return {}
    from rootless.runtime import procsettings as ps
    asked = opts.asked or {}
    out: dict[str, Any] = {}
    if opts.stop_signal:
        ps.signal_number(opts.stop_signal)
    if opts.ulimits:
        by_name = {u["Name"]: ps.check_ulimit(u) for u in opts.ulimits}  # a name given twice: the last
        out["ulimits"] = tuple(by_name.values())
    if opts.sysctls:
        out["sysctls"] = ps.check_sysctls(opts.sysctls, opts.network, asked.get("IpcMode") == "host")
    if opts.oom_score_adj is not None:
        out["oom_score_adj"] = ps.check_oom_score_adj(opts.oom_score_adj)
    if opts.shm_size:
        if asked.get("IpcMode") == "host":
            raise UsageError("conflicting options: --shm-size and --ipc host", "the host's /dev/shm keeps its size")
        out["shm_size"] = ps.parse_shm_size(opts.shm_size)
    if opts.domainname:
        if asked.get("UTSMode") == "host":
            raise UsageError("conflicting options: domainname and the UTS mode host")
        out["domainname"] = ps.check_domainname(opts.domainname)
    return out


def _health_fields(opts: RunOptions, cfg: dict) -> dict:
    """The spec's ``healthcheck``: the options' over the image's (no field at all when neither has one)."""
    if not opts.healthcheck and not cfg.get("Healthcheck"):
        return {}
    from rootless.runtime import health
    return {"healthcheck": health.merge(opts.healthcheck, cfg.get("Healthcheck"))}


def _asked(opts: RunOptions, log: dict) -> dict:
    """What inspect shows as given: ``--volumes-from``, ``--tmpfs`` (Docker's HostConfig.Tmpfs map),
    the log options asked for (not the configured defaults), over the face's own (the API's)."""
    asked = dict(opts.asked or {})
    if opts.volumes_from:
        asked["VolumesFrom"] = list(opts.volumes_from)
    if opts.tmpfs:
        asked["Tmpfs"] = {t.partition(":")[0]: t.partition(":")[2] for t in opts.tmpfs}
    asked["LogConfig"] = {"Type": log["driver"],
                          "Config": {k: v for k, _, v in (o.partition("=") for o in opts.log_opts)}}
    return asked


def _security_fields(opts: RunOptions) -> dict:
    from rootless.runtime import security
    sec = security.security_opts(opts.security_opts)
    seccomp = False if opts.privileged else sec["seccomp"]
    if isinstance(seccomp, str):
        from rootless.runtime import seccompprofile
        seccomp = seccompprofile.setting_for(seccomp)
    return dict(caps=security.capabilities(opts.cap_add, opts.cap_drop, opts.privileged),
                privileged=bool(opts.privileged), no_new_privs=sec["no_new_privs"],
                seccomp=seccomp, root_emulation=sec["root_emulation"],
                devices=tuple(tuple(d) for d in security.devices(opts.devices)))


def network_fields(opts: RunOptions, image_exposed: dict | None) -> dict:
    """The spec's network fields from the flags, with Docker's conflicts refused."""
    from netstack import spec as netspec
    mode = netspec.parse_network(opts.network)
    ports = [m for text in opts.publish for m in netspec.parse_publish(text)]
    links = [netspec.parse_link(text) for text in opts.links]
    add_hosts = [netspec.parse_add_host(text) for text in opts.add_hosts]
    dns = netspec.check_dns(tuple(opts.dns))
    mac = netspec.check_mac(opts.mac_address)
    if mode.kind == "container":
        for given, what in ((ports or opts.publish_all, "port publishing"), (links, "links"),
                            (dns or opts.dns_search or opts.dns_options, "DNS settings"),
                            (add_hosts, "--add-host"), (opts.hostname, "--hostname"), (mac, "--mac-address"),
                            (opts.expose, "--expose")):
            if given:
                raise UsageError(f"conflicting options: {what} and the container type network mode",
                                 "the container shares the network of the other container: set these there")
    if mode.kind == "host" and links:
        raise UsageError("conflicting options: host type networking can't be used with links")
    if opts.network_aliases and not opts.networks:
        raise UsageError("network-scoped aliases are only supported for user-defined networks",
                         "create one (rootless network create NAME) and run with --network NAME")
    if mac and mode.kind != "slirp4netns":
        raise UsageError(f"--mac-address needs the slirp4netns network, not {mode.kind}")
    exposed = netspec.exposed_ports(image_exposed, tuple(opts.expose), tuple(ports))
    network = opts.network if mode.kind in ("container", "slirp4netns") and ":" in opts.network else mode.kind
    return dict(network=network, ports=tuple(tuple(m) for m in ports), publish_all=bool(opts.publish_all),
                exposed=tuple(exposed), links=tuple(tuple(lk) for lk in links), add_hosts=tuple(add_hosts),
                dns=dns, dns_search=tuple(opts.dns_search), dns_options=tuple(opts.dns_options), mac=mac,
                networks=tuple((nid, list(aliases)) for nid, aliases in opts.networks))
