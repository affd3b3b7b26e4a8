"""The user's configuration file, ``$XDG_CONFIG_HOME/rootless/config.toml``.

Example::

    [storage]
    root = "/scratch/me/rootless"   # default: $XDG_DATA_HOME/rootless
    overlay = "auto"                # auto | kernel | fuse | copy

    [userns]
    idmap = "auto"                  # auto | single

    [registries]
    search = ["myhost:5000", "docker.io"]   # where short names (busybox) are looked for, in order
    insecure = ["myhost:5000"]      # plain HTTP or unverified TLS

    [registries."docker.io"]        # one table per registry (host[:port])
    mirrors = ["mirror.example:5000"]   # tried first, in order; then the registry itself
    blocked = false                 # true: never contacted (pulls and pushes fail at once)
    insecure = false
"""

from __future__ import annotations

import os
import re
import sys
from collections import namedtuple

from rootless.base.errors import RootlessError

OVERLAY_METHODS = ("auto", "kernel", "fuse", "copy")
IDMAP_MODES = ("auto", "single")


# ``registries``: host -> {"mirrors": [...], "blocked": bool, "insecure": bool} (the keys that are set)
# ``search``: registries for short names, in order (empty: docker.io alone)
Config = namedtuple("Config", "path root overlay idmap insecure registries search",
                    defaults=(None, None, "auto", "auto", (), {}, ()))


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
                         search=user.search or system.search)


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
    for section, value in (("storage", storage), ("userns", userns), ("registries", registries)):
        if not isinstance(value, dict):
            raise RootlessError(f"bad config {where((section,))}: [{section}] must be a table", "see README: Configuration")
    for key, value in (("storage.root", storage.get("root", "")), ("storage.overlay", storage.get("overlay", "")),
                       ("userns.idmap", userns.get("idmap", ""))):
        if not isinstance(value, str):
            raise RootlessError(f"bad config {where(tuple(key.split('.')[:1]), key.split('.')[1])}: {key} must be a string")
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
        raise RootlessError(f"bad config {where(('registries',), 'insecure')}: registries.insecure must be a list of host[:port] strings")
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
            raise RootlessError(f"bad config {where(('registries', host), sorted(unknown)[0])}: registries.{host}: unknown key {sorted(unknown)[0]!r}",
                                "known: mirrors, blocked, insecure")
        mirrors = table.get("mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
            raise RootlessError(f"bad config {where(('registries', host), 'mirrors')}: registries.{host}.mirrors must be a list of host[:port]")
        for key in ("blocked", "insecure"):
            if not isinstance(table.get(key, False), bool):
                raise RootlessError(f"bad config {where(('registries', host), key)}: registries.{host}.{key} must be true or false")
        per_registry[host] = dict(table)  # only what is set: a system file's other keys stay
    root = storage.get("root")
    return Config(path=path, root=os.path.expanduser(root) if root else None, overlay=overlay, idmap=idmap,
                  insecure=tuple(insecure), registries=per_registry, search=tuple(dict.fromkeys(search)))


_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


def _is_registry(host: str) -> bool:
    """host[:port], as a reference's first component may name a registry."""
    return bool(_HOST_RE.match(host))
