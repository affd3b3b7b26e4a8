"""The user's configuration file, ``$XDG_CONFIG_HOME/rootless/config.toml``.

Example::

    [storage]
    root = "/scratch/me/rootless"   # default: $XDG_DATA_HOME/rootless
    overlay = "auto"                # auto | kernel | fuse | copy
    additional_stores = ["/shared/images"]   # read-only image stores used beside this one (filled
                                    # with `rootless pull --store DIR`); $ROOTLESS_ADDITIONAL_STORES
                                    # (colon-separated) overrides it

    [userns]
    idmap = "auto"                  # auto | single

    [registries]
    search = ["myhost:5000", "docker.io"]   # where short names (busybox) are looked for, in order
    insecure = ["myhost:5000", "10.0.0.0/8"]   # unverified TLS, then plain HTTP (names or CIDRs;
                                    # the loopback is insecure by default, as in Docker)

    [logs]                          # each container's log (Docker's --log-driver/--log-opt)
    driver = "json-file"            # json-file | k8s-file | none
    max_size = "20m"                # rotated at this size ("0": never; --log-opt max-size=0 is refused, as in Docker)
    max_file = 5                    # files kept per container, the current one included

    [registries."docker.io"]        # one table per registry (host[:port])
    mirrors = ["mirror.example:5000"]   # tried first, in order; then the registry itself
    blocked = false                 # true: never contacted (pulls and pushes fail at once)
    insecure = false                # false: verified even on the loopback; true: as if listed
"""

from __future__ import annotations

import os
import re
import sys
from collections import namedtuple

from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

OVERLAY_METHODS = ("auto", "kernel", "fuse", "copy")
IDMAP_MODES = ("auto", "single")
LOG_DRIVERS = ("json-file", "k8s-file", "local", "none")  # local: Docker's name, kept in json-file's format
# Bounded by default, as Docker's ``local`` driver is: 5 files of 20 MB per container.
LOG_DEFAULTS = {"driver": "json-file", "max_size": 20 * 1024 * 1024, "max_file": 5}


# ``registries``: host -> {"mirrors": [...], "blocked": bool, "insecure": bool} (the keys that are set)
# ``search``: registries for short names, in order (empty: docker.io alone)
# ``logs``: the [logs] keys that are set (driver, max_size in bytes, max_file); see log_defaults
# ``additional_stores``: read-only image stores used beside the own one (storage.additional_stores)
Config = namedtuple("Config", "path root overlay idmap insecure registries search logs additional_stores",
                    defaults=(None, None, "auto", "auto", (), {}, (), {}, ()))


def log_defaults(cfg: Config) -> dict:
    """Every container's log settings unless --log-driver/--log-opt say otherwise."""
    return {**LOG_DEFAULTS, **cfg.logs}


def parse_size(text: str) -> int:
    """Docker's sizes (``max-size``): ``1048576``, ``100k``, ``10m``, ``1.5g`` (k = 1024), also
    with ``b``/``ib`` after the unit (``10MB``, ``10MiB``). ValueError for anything else."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?", text.strip(), re.ASCII)
    if m is None:
        raise ValueError(f"invalid size: {text!r}")
    return int(float(m[1]) * 1024 ** " kmgtp".index((m[2] or " ").lower()))


def format_size(n: int) -> str:
    """A size as ``parse_size`` reads it back, in the largest whole unit (``20m``, ``512k``)."""
    for unit, scale in (("g", 1024 ** 3), ("m", 1024 ** 2), ("k", 1024)):
        if n and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def additional_stores(cfg: Config) -> tuple[str, ...]:
    """The read-only image stores to use beside the own one: ``$ROOTLESS_ADDITIONAL_STORES``
    (colon-separated; set empty: none), else ``storage.additional_stores``."""
    env = os.environ.get("ROOTLESS_ADDITIONAL_STORES")
    if env is not None:
        return tuple(dict.fromkeys(os.path.abspath(os.path.expanduser(p)) for p in env.split(":") if p))
    return tuple(dict.fromkeys(cfg.additional_stores))


def config_path() -> str:
    if os.environ.get("ROOTLESS_CONFIG"):
        return os.environ["ROOTLESS_CONFIG"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "rootless", "config.toml")


SYSTEM_CONFIG = "/etc/rootless/config.toml"


def _line_of(text: str, table: tuple[str, ...], key: str | None) -> int:
    """The line that sets ``key`` in ``[table]`` (or the table's header), 0 if not found."""
    current: tuple[str, ...] = ()
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inner = stripped.strip("[]").strip()
            current = tuple(part.strip().strip('"') for part in re.findall(r'"[^"]*"|[^.]+', inner))
            if key is None and current == table:
                return n
            continue
        name = stripped.split("=", 1)[0].strip().strip('"')
        if key is not None and current == table and name == key:
            return n
    return 0


def load(path: str | None = None) -> Config:
    """The system-wide file (``/etc/rootless/config.toml``, or ``$ROOTLESS_SYSTEM_CONFIG``), then the
    user's, whose settings win (a value left at its default does not override); the insecure lists
    add up and registry tables merge host by host."""
    path = path or config_path()
    system = _load_one(os.environ.get("ROOTLESS_SYSTEM_CONFIG") or SYSTEM_CONFIG)
    user = _load_one(path)
    if system is None:
        return user or Config()
    if user is None:
        return system._replace(path=path)
    registries = {h: dict(system.registries.get(h, {}), **user.registries.get(h, {}))
                  for h in {*system.registries, *user.registries}}
    return user._replace(root=user.root or system.root,
                         overlay=user.overlay if user.overlay != "auto" else system.overlay,
                         idmap=user.idmap if user.idmap != "auto" else system.idmap,
                         insecure=tuple(dict.fromkeys(system.insecure + user.insecure)), registries=registries,
                         search=user.search or system.search, logs={**system.logs, **user.logs},
                         additional_stores=user.additional_stores or system.additional_stores)


def _load_one(path: str) -> Config | None:
    """One file's settings (None when it does not exist)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RootlessError(f"cannot read config {path}: {e.strerror}") from None
    if sys.version_info >= (3, 11):  # noqa: UP036 - tomli stays the fallback the design names
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RootlessError(f"bad config {path}: {e}", "fix the TOML syntax at that line") from None
    text = raw.decode()

    def where(table: tuple[str, ...], key: str | None = None) -> str:
        n = _line_of(text, table, key)
        return f"{path}:{n}" if n else path

    storage = data.get("storage", {})
    userns = data.get("userns", {})
    registries = data.get("registries", {})
    logs = data.get("logs", {})
    for section, value in (("storage", storage), ("userns", userns), ("registries", registries), ("logs", logs)):
        if not isinstance(value, dict):
            raise RootlessError(f"bad config {where((section,))}: [{section}] must be a table",
                                "see README: Configuration")
    for key, value in (("storage.root", storage.get("root", "")), ("storage.overlay", storage.get("overlay", "")),
                       ("userns.idmap", userns.get("idmap", ""))):
        if not isinstance(value, str):
            raise RootlessError(f"bad config {where(tuple(key.split('.')[:1]), key.split('.')[1])}: "
                                f"{key} must be a string")
    overlay = storage.get("overlay", "auto")
    idmap = userns.get("idmap", "auto")
    if overlay not in OVERLAY_METHODS:
        raise RootlessError(f"bad config {where(('storage',), 'overlay')}: storage.overlay = {overlay!r}",
                            f"use one of: {', '.join(OVERLAY_METHODS)}")
    if idmap not in IDMAP_MODES:
        raise RootlessError(f"bad config {where(('userns',), 'idmap')}: userns.idmap = {idmap!r}",
                            f"use one of: {', '.join(IDMAP_MODES)}")
    insecure = registries.get("insecure", [])
    if not isinstance(insecure, list) or not all(isinstance(x, str) for x in insecure):
        raise RootlessError(f"bad config {where(('registries',), 'insecure')}: "
                            "registries.insecure must be a list of host[:port] or CIDR strings")
    search = registries.get("search", [])
    if not isinstance(search, list) or not all(isinstance(x, str) and _is_registry(x) for x in search):
        raise RootlessError(f"bad config {where(('registries',), 'search')}: registries.search must be a list of "
                            "registry hosts (host[:port])", 'for example: search = ["docker.io"]')
    per_registry = {}
    for host, table in registries.items():
        if host in ("insecure", "search"):
            continue
        if not isinstance(table, dict):
            raise RootlessError(f"bad config {where(('registries',), host)}: registries.{host} must be a table",
                                'write it as [registries."host:port"]')
        unknown = set(table) - {"mirrors", "blocked", "insecure"}
        if unknown:
            raise RootlessError(f"bad config {where(('registries', host), sorted(unknown)[0])}: "
                                f"registries.{host}: unknown key {sorted(unknown)[0]!r}",
                                "known: mirrors, blocked, insecure")
        mirrors = table.get("mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
            raise RootlessError(f"bad config {where(('registries', host), 'mirrors')}: "
                                f"registries.{host}.mirrors must be a list of host[:port]")
        for key in ("blocked", "insecure"):
            if not isinstance(table.get(key, False), bool):
                raise RootlessError(f"bad config {where(('registries', host), key)}: "
                                    f"registries.{host}.{key} must be true or false")
        per_registry[host] = dict(table)  # only what is set: a system file's other keys stay
    root = storage.get("root")
    return Config(path=path, root=os.path.expanduser(root) if root else None, overlay=overlay, idmap=idmap,
                  insecure=tuple(insecure), registries=per_registry, search=tuple(dict.fromkeys(search)),
                  logs=_logs_table(logs, where),
                  additional_stores=_directories(storage.get("additional_stores", []), where))


def _directories(value: object, where: Callable[..., str]) -> tuple[str, ...]:
    """``storage.additional_stores``, checked: a list of directories (absolute, ``~`` expanded)."""
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise RootlessError(f"bad config {where(('storage',), 'additional_stores')}: "
                            "storage.additional_stores must be a list of directories",
                            'for example: additional_stores = ["/shared/rootless-images"]')
    return tuple(os.path.abspath(os.path.expanduser(x)) for x in value)


def _logs_table(table: dict, where: Callable[..., str]) -> dict:
    """The [logs] keys that are set, checked: driver, max_size (bytes; 0 = no limit), max_file."""
    unknown = set(table) - {"driver", "max_size", "max_file"}
    if unknown:
        key = sorted(unknown)[0]
        raise RootlessError(f"bad config {where(('logs',), key)}: logs: unknown key {key!r}",
                            "known: driver, max_size, max_file")
    out = {}
    if "driver" in table:
        if table["driver"] not in LOG_DRIVERS:
            raise RootlessError(f"bad config {where(('logs',), 'driver')}: logs.driver = {table['driver']!r}",
                                f"use one of: {', '.join(LOG_DRIVERS)}")
        out["driver"] = table["driver"]
    if "max_size" in table:
        value = table["max_size"]
        try:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError
            out["max_size"] = value if isinstance(value, int) else parse_size(value)
            if out["max_size"] < 0:
                raise ValueError
        except ValueError:
            raise RootlessError(f"bad config {where(('logs',), 'max_size')}: logs.max_size = {value!r}",
                                'use a size like "20m" or "512k" ("0": never rotate)') from None
    if "max_file" in table:
        value = table["max_file"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RootlessError(f"bad config {where(('logs',), 'max_file')}: logs.max_file = {value!r}",
                                "use a whole number of at least 1")
        out["max_file"] = value
    return out


_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
                      r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


def _is_registry(host: str) -> bool:
    """host[:port], as a reference's first component may name a registry."""
    return bool(_HOST_RE.match(host))
