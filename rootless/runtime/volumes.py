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
from collections import namedtuple

from rootless.base import atomic, locking
from rootless.base.errors import RootlessError, UsageError, VolumeNotFound
from rootless.base.paths import Paths

VOLUME_VERSION = 1
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
MODES = ("ro", "rw", "z", "Z")  # z/Z (SELinux relabelling) are accepted and have nothing to do here

# type: volume | bind; source: a volume name ("" for a new anonymous one) or a host path
Mount = namedtuple("Mount", "type source target readonly")


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or len(name) > 255:
        raise UsageError(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                         "a host directory is given by its absolute path: -v /host/dir:/dst")


def parse(text: str) -> Mount:
    """One ``-v``/``--volume`` value."""
    parts = text.split(":")
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
    bad = [o for o in opts if o not in MODES]
    if bad or ("ro" in opts and "rw" in opts):
        raise UsageError(f"invalid mode {mode!r} in volume specification {text!r}", "use ro or rw")
    if src.startswith("/"):
        return Mount("bind", os.path.normpath(src), os.path.normpath(dst), "ro" in opts)
    if src:
        check_name(src)
    return Mount("volume", src, os.path.normpath(dst), "ro" in opts)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    rec = _read(paths, name) if _NAME.fullmatch(name or "") else None
    if rec is None:
        raise VolumeNotFound(f"no such volume: {name}")
    return rec


def all_volumes(paths: Paths) -> list[dict]:
    try:
        names = sorted(n for n in os.listdir(paths.volumes) if not n.startswith("."))
    except FileNotFoundError:
        return []
    return [r for r in (_read(paths, n) for n in names) if r is not None]


def create(paths: Paths, name: str, labels: dict | None = None, anonymous: bool = False) -> tuple[dict, bool]:
    """The volume ``name``, made if missing; (record, made now)."""
    check_name(name)
    with locking.locked(paths.volumes_lock):
        existing = _read(paths, name)
        if existing is not None:
            return existing, False
        rec = {"version": VOLUME_VERSION, "name": name, "created": now_iso(), "labels": dict(labels or {}),
               "anonymous": anonymous}
        os.makedirs(paths.volumes, 0o700, exist_ok=True)
        tmp = os.path.join(paths.volumes, f".new-{name}")
        try:
            os.mkdir(tmp, 0o700)
            os.mkdir(os.path.join(tmp, "_data"), 0o755)
            atomic.write_json(os.path.join(tmp, "volume.json"), rec)
            os.rename(tmp, paths.volume(name))
        except BaseException:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return rec, True


def doom(paths: Paths, name: str) -> str | None:
    """Take a volume out of every listing at once (renamed aside); the path to remove, or None."""
    src = paths.volume(name)
    doomed = os.path.join(paths.volumes, f".del-{name}-{os.getpid()}")
    try:
        os.rename(src, doomed)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RootlessError(f"cannot remove volume {name}: {e.strerror}") from None
    return doomed
