"""Registry credentials in Docker's ``config.json`` format.

``rootless login`` writes ``$XDG_CONFIG_HOME/rootless/auth.json`` (mode 0600; or
``$REGISTRY_AUTH_FILE``, as podman reads it); lookups read that file, then
``~/.docker/config.json``. Docker Hub's key is Docker's ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import json
import os

from rootless.base import atomic, locking
from rootless.base.errors import RootlessError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def auth_file() -> str:
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return os.environ["REGISTRY_AUTH_FILE"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "rootless", "auth.json")


def docker_file() -> str:
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


def _key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in ("docker.io", "index.docker.io", "registry-1.docker.io") else registry


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise RootlessError(f"cannot read the credentials in {path}: {e}",
                            "fix or remove the file (rootless logout removes entries)") from None
    return data if isinstance(data, dict) else {}


def _entry_creds(entry: object) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    return None


def lookup(registry: str) -> tuple[str, str] | None:
    """(user, password) for ``registry``, from our file, then Docker's."""
    key = _key(registry)
    for path in (auth_file(), docker_file()):
        auths = _read(path).get("auths") or {}
        for k in (key, f"https://{key}", f"http://{key}", f"https://{key}/v1/", f"https://{key}/v2/"):
            creds = _entry_creds(auths.get(k))
            if creds:
                return creds
    return None


def store(registry: str, user: str, password: str) -> str:
    """Save credentials for ``registry`` (atomically, mode 0600, under a lock); the file's path."""
    path = auth_file()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with locking.locked(path + ".lock"):
        data = _read(path)
        data.setdefault("auths", {})[_key(registry)] = {
            "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        atomic.write_json(path, data, mode=0o600)
    return path


def remove(registry: str) -> bool:
    """Forget ``registry``'s credentials; False if there were none."""
    path = auth_file()
    if not os.path.exists(path):
        return False
    with locking.locked(path + ".lock"):
        data = _read(path)
        auths = data.get("auths") or {}
        if _key(registry) not in auths:
            return False
        del auths[_key(registry)]
        atomic.write_json(path, data, mode=0o600)
    return True
