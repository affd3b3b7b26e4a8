"""Volumes: ``volumes/NAME/_data`` with ``volume.json`` beside it (Docker's layout), and the
``-v`` flag as data.

A volume is made aside (``volumes/.new-NAME``) and renamed into place under the volumes lock, so a
listing never sees one half made; its data belongs to whoever writes it in a container (the
user for container root, a subordinate uid for the others), which is why removing one is done in
the user namespace by the engine. ``parse`` is pure: ``NAME:/dst[:opts]`` (a named volume,
created when missing), ``/host/path:/dst[:opts]`` (a bind mount) and ``/dst`` (an anonymous
volume).
"""

from __future__ import annotations

import os
import re
import time

from rootless.base import atomic, locking
from rootless.base.clock import now_iso
from rootless.base.errors import RootlessError, UsageError, VolumeNotFound
from rootless.base.paths import Paths
from rootless.base.valuetype import KeywordRecord, record

VOLUME_VERSION = 1
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # what may be looked up (a store may hold 1-character names)
_NEW_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # what may be made: Docker's rule for local volumes
MAX_NAME = 255  # a directory name; the names made aside (``.new-``, ``.del-``) never contain it
MODES = ("ro", "rw", "z", "Z", "U")  # z/Z (SELinux relabelling) are accepted and have nothing to do here
PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")  # a bind's, Docker's words
CONSISTENCY = ("consistent", "cached", "delegated")  # Docker Desktop's: nothing to do on Linux

@record
class Mount(KeywordRecord):
    """One ``-v``, ``--mount`` or ``--tmpfs``, parsed."""
    type: str  # volume | bind | tmpfs
    source: str  # a volume name ("" for a new anonymous one) or a host path
    target: str
    readonly: bool
    chown: bool = False  # give the source to the container's user first (``:U``, as podman has it)
    copy: bool = True  # an empty volume gets the image's files first (off: volume-nocopy)
    options: str = ""  # a tmpfs's mount options
    must_exist: bool = False  # a --mount bind's source must exist
    propagation: str = ""  # a bind's mount propagation in the container (Docker's default: rprivate)
    subpath: str = ""  # a volume's directory mounted instead of the whole volume (volume-subpath)
TMPFS_FLAGS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
               "relatime", "strictatime"}


def check_name(name: str) -> None:
    if len(name) > MAX_NAME:
        raise UsageError(f"invalid volume name {name[:20]}...: {len(name)} characters, at most {MAX_NAME}")
    if not _NEW_NAME.fullmatch(name):
        raise UsageError(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
                         "at least 2 characters", "a host directory is given by its absolute path: -v /host/dir:/dst")


def _aside(paths: Paths, kind: str) -> str:
    """A name beside the volumes for one being made (``new``) or removed (``del``): never the
    volume's name with more around it, which the longest names would take past NAME_MAX."""
    return os.path.join(paths.volumes, f".{kind}-{os.getpid()}-{time.monotonic_ns()}")


def parse(text: str) -> Mount:
    """One ``-v``/``--volume`` value."""
    parts = text.split(":")
    if "" in parts[:-1] or (len(parts) > 1 and not parts[-1]):
        raise UsageError(f"invalid volume specification {text!r}: empty section between colons")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        src, dst, mode = (parts[0], parts[1], "") if parts[1].startswith("/") else ("", parts[0], parts[1])
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise UsageError(f"invalid volume specification {text!r}", "use [SOURCE:]DESTINATION[:ro|rw]")
    if not dst.startswith("/"):
        raise UsageError(f"invalid volume specification {text!r}: the destination {dst!r} is not an absolute path")
    if os.path.normpath(dst) == "/":
        raise UsageError(f"invalid volume specification {text!r}: the destination can't be '/'")
    opts = [o for o in mode.split(",") if o] if mode else []
    bad = [o for o in opts if o not in MODES + PROPAGATIONS + CONSISTENCY + ("nocopy",)]
    propagation = [o for o in opts if o in PROPAGATIONS]
    if (bad or ("ro" in opts and "rw" in opts) or len(propagation) > 1
            or (propagation and not src.startswith("/")) or ("nocopy" in opts and src.startswith("/"))):
        raise UsageError(f"invalid mode {mode!r} in volume specification {text!r}",
                         "use ro or rw, and for a host directory one of " + ", ".join(PROPAGATIONS))
    if src.startswith("/"):
        return Mount("bind", os.path.normpath(src), os.path.normpath(dst), "ro" in opts, "U" in opts,
                     propagation="".join(propagation))
    if "nocopy" in opts:
        if src:
            check_name(src)
        return Mount("volume", src, os.path.normpath(dst), "ro" in opts, "U" in opts, copy=False)
    if src:
        check_name(src)
    return Mount("volume", src, os.path.normpath(dst), "ro" in opts, "U" in opts)


def _target(dst: str, text: str) -> str:
    if not dst.startswith("/"):
        raise UsageError(f"invalid mount {text!r}: the destination {dst!r} is not an absolute path")
    if os.path.normpath(dst) == "/":
        raise UsageError(f"invalid mount {text!r}: the destination can't be '/'")
    return os.path.normpath(dst)


def _truth(value: str, key: str, text: str) -> bool:
    if value in ("", "true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise UsageError(f"invalid mount {text!r}: {key} takes true or false")


def parse_mount(text: str) -> Mount:
    """One ``--mount type=bind|volume|tmpfs,src=...,dst=...[,readonly][,volume-nocopy]
    [,tmpfs-size=...][,tmpfs-mode=...]`` (Docker's keys and their aliases)."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if not key:
            continue
        key = {"source": "src", "destination": "dst", "target": "dst", "ro": "readonly"}.get(key, key)
        if key in fields:
            raise UsageError(f"invalid mount {text!r}: {key} given twice")
        fields[key] = value
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise UsageError(f"invalid mount {text!r}: type {kind!r}", "use type=bind, volume or tmpfs")
    if "dst" not in fields:
        raise UsageError(f"invalid mount {text!r}: a destination (dst=) is needed")
    dst = _target(fields.pop("dst"), text)
    readonly = _truth(fields.pop("readonly"), "readonly", text) if "readonly" in fields else False
    propagation = fields.pop("bind-propagation", "")
    if propagation and (kind != "bind" or propagation not in PROPAGATIONS):
        raise UsageError(f"invalid mount {text!r}: bind-propagation {propagation!r}",
                         "a bind mount takes one of " + ", ".join(PROPAGATIONS))
    subpath = _subpath(fields.pop("volume-subpath", ""), text) if kind == "volume" else ""
    fields.pop("consistency", None)
    if kind == "tmpfs":
        opts = []
        if "tmpfs-size" in fields:
            size = fields.pop("tmpfs-size")
            if not re.fullmatch(r"[0-9]+[kKmMgG%]?", size):
                raise UsageError(f"invalid mount {text!r}: tmpfs-size {size!r}")
            opts.append(f"size={size}")
        if "tmpfs-mode" in fields:
            mode = fields.pop("tmpfs-mode")
            if not re.fullmatch(r"[0-7]{1,4}", mode):
                raise UsageError(f"invalid mount {text!r}: tmpfs-mode {mode!r} (octal, such as 1777)")
            opts.append(f"mode={mode}")
        if fields.pop("src", ""):
            raise UsageError(f"invalid mount {text!r}: a tmpfs has no source")
        _no_more(fields, text)
        return Mount("tmpfs", "", dst, readonly, options=",".join(opts))
    src = fields.pop("src", "")
    nocopy = _truth(fields.pop("volume-nocopy"), "volume-nocopy", text) if "volume-nocopy" in fields else False
    _no_more(fields, text)
    if kind == "bind":
        if not src.startswith("/"):
            raise UsageError(f"invalid mount {text!r}: a bind mount's source must be an absolute path")
        return Mount("bind", os.path.normpath(src), dst, readonly, must_exist=True, propagation=propagation)
    if src:
        check_name(src)
    elif subpath:
        raise UsageError(f"invalid mount {text!r}: volume-subpath needs a named volume (src=)")
    return Mount("volume", src, dst, readonly, copy=not nocopy and not subpath, subpath=subpath)


def _subpath(path: str, text: str) -> str:
    """A volume's subpath: relative, inside the volume (Docker's rule), normalised."""
    if not path:
        return ""
    norm = os.path.normpath(path)
    if path.startswith("/") or norm == ".." or norm.startswith("../"):
        raise UsageError(f"invalid mount {text!r}: volume-subpath {path!r} must be a relative path inside the volume")
    return "" if norm == "." else norm


def _no_more(fields: dict, text: str) -> None:
    if fields:
        raise UsageError(f"invalid mount {text!r}: unknown key {sorted(fields)[0]!r}")


def parse_tmpfs(text: str) -> Mount:
    """One ``--tmpfs /path[:opts]`` (mount options: size=, mode=, uid=, gid=, and flags)."""
    dst, _, opts = text.partition(":")
    target = _target(dst, text)
    for opt in [o for o in opts.split(",") if o]:
        key, eq, value = opt.partition("=")
        if (eq and key in ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks")
                and re.fullmatch(r"[0-9]+[kKmMgG%]?", value)):
            continue
        if not eq and opt in TMPFS_FLAGS:
            continue
        raise UsageError(f"invalid tmpfs option {opt!r} in {text!r}", "use size=, mode=, uid=, gid= or ro, noexec, ...")
    return Mount("tmpfs", "", target, "ro" in opts.split(","), options=opts)


def _read(paths: Paths, name: str) -> dict | None:
    try:
        rec = atomic.read_json(paths.volume_record(name))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        rec = {}
    if not isinstance(rec, dict) or rec.get("name") != name:  # damaged: still a volume with its data
        rec = {"version": VOLUME_VERSION, "name": name, "created": "", "labels": {}, "anonymous": False}
    return rec


def get(paths: Paths, name: str) -> dict:
    rec = _read(paths, name) if _NAME.fullmatch(name or "") and len(name) <= MAX_NAME else None
    if rec is None:
        raise VolumeNotFound(f"no such volume: {name}")
    return rec


def options(paths: Paths, name: str) -> dict[str, str]:
    """A volume's local driver options ({} for none, or no such volume)."""
    return (_read(paths, name) or {}).get("options") or {}


def all_volumes(paths: Paths) -> list[dict]:
    try:
        names = sorted(n for n in os.listdir(paths.volumes) if not n.startswith("."))
    except FileNotFoundError:
        return []
    return [r for r in (_read(paths, n) for n in names) if r is not None]


def check_options(opts: dict) -> dict[str, str]:
    """The local driver's options (Docker's ``--opt``, ``DriverOpts``, Compose's ``driver_opts``)
    that rootless can have: a host directory bound as the volume (``type=none``, ``o=bind``,
    ``device=/a/dir``) or a tmpfs (``type=tmpfs``, ``device=tmpfs``, ``o=size=64m,uid=1000``).
    Other types (nfs, cifs, a block device) need mounts only the host's root may make."""
    if not opts:
        return {}
    for key, value in opts.items():
        if key not in ("type", "o", "device"):
            raise UsageError(f"invalid option key: {key!r}", "the local driver takes type, o and device")
        if not isinstance(value, str):
            raise UsageError(f"invalid option {key}: its value must be a string")
    kind, o, device = opts.get("type", ""), opts.get("o", ""), opts.get("device", "")
    if not device:
        raise UsageError('missing required option: "device"', "e.g. --opt type=none --opt o=bind --opt device=/a/dir")
    if kind == "tmpfs":
        parse_tmpfs(f"/volume:{o}" if o else "/volume")  # the same options as --tmpfs
    elif kind in ("none", "") and "bind" in o.split(","):
        if not os.path.isabs(device):
            raise UsageError(f"invalid device {device!r}: a bind volume's device is an absolute host path")
        if set(o.split(",")) - {"bind", "rbind", "ro", "rw"}:
            raise UsageError(f"invalid o={o!r} for a bind volume", "use o=bind (or bind,ro)")
    else:
        raise UsageError(f"the local driver's type={kind or 'none'} o={o} needs a mount only the host's root may "
                         "make", "rootless has bind (type=none,o=bind,device=/a/dir) and tmpfs volumes")
    return dict(opts)


def create(paths: Paths, name: str, labels: dict | None = None, anonymous: bool = False,
           options: dict | None = None) -> tuple[dict, bool]:
    """The volume ``name``, made if missing; (record, made now). ``options``: the local driver's
    (:func:`check_options`), kept in the record."""
    check_name(name)
    options = check_options(options or {})
    with locking.locked(paths.volumes_lock):
        existing = _read(paths, name)
        if existing is not None:
            return existing, False
        rec = {"version": VOLUME_VERSION, "name": name, "created": now_iso(nanoseconds=False),
               "labels": dict(labels or {}), "anonymous": anonymous}
        if options:
            rec["options"] = options
        os.makedirs(paths.volumes, 0o700, exist_ok=True)
        tmp = _aside(paths, "new")
        try:
            os.mkdir(tmp, 0o700)
            os.mkdir(os.path.join(tmp, "_data"), 0o755)
            atomic.write_json(os.path.join(tmp, "volume.json"), rec)
            os.rename(tmp, paths.volume(name))
        except BaseException:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    from rootless.runtime import events
    events.append(paths, "volume", "create", name, {"driver": "local"})
    return rec, True


def doom(paths: Paths, name: str) -> str | None:
    """Take a volume out of every listing at once (renamed aside); the path to remove, or None."""
    src = paths.volume(name)
    doomed = _aside(paths, "del")
    try:
        os.rename(src, doomed)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RootlessError(f"cannot remove volume {name}: {e.strerror}") from None
    return doomed
