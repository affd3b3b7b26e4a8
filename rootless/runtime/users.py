"""``-u name|uid[:group|gid]`` resolved through the image's /etc/passwd and /etc/group."""

from __future__ import annotations

from collections import namedtuple

from rootless.base.errors import RootlessError

# Value types on the start-up path are namedtuples: importing dataclasses costs ~8 ms per command.
User = namedtuple("User", "uid gid groups home")


def _table(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= width:
            rows.append(parts)
    return rows


def resolve(spec: str, passwd: str, group: str) -> User:
    """Docker's rules: numeric ids need no entry; names must exist; HOME from passwd or "/"."""
    user_part, _, group_part = (spec or "0").partition(":")
    users = _table(passwd, 7)
    groups = _table(group, 4)
    entry = None
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((u for u in users if u[2] == user_part), None)
    else:
        entry = next((u for u in users if u[0] == user_part), None)
        if entry is None:
            raise RootlessError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry and entry[5] else "/"
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((g for g in groups if g[0] == group_part), None)
            if g is None:
                raise RootlessError(f"unable to find group {group_part}: no matching entries in group file")
            gid = int(g[2])
    supplementary = [gid]
    if entry is not None and not group_part:
        name = entry[0]
        for g in groups:
            members = [m for m in g[3].split(",") if m]
            if name in members and g[2].isdigit() and int(g[2]) not in supplementary:
                supplementary.append(int(g[2]))
    return User(uid, gid, tuple(supplementary), home)
