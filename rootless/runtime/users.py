"""``-u name|uid[:group|gid]`` resolved through the image's /etc/passwd and /etc/group."""

from __future__ import annotations

from collections import namedtuple

from rootless.base.errors import RootlessError, UsageError

# Value types on the start-up path are namedtuples: importing dataclasses costs ~8 ms per command.
User = namedtuple("User", "uid gid groups home")
MAX_ID = 4294967294  # (uid_t)-1 is "leave unchanged" to setresuid: it is nobody's id


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check(spec: str, uids: int | None = None, gids: int | None = None) -> None:
    """``-u``'s numeric uid and gid, checked before anything starts: 0 to 4294967294 and, with a
    subordinate id map, among the ids it maps (``uids``/``gids``: how many; None: not checked)."""
    user_part, _, group_part = (spec or "").partition(":")
    for what, part, mapped in (("uid", user_part, uids), ("gid", group_part, gids)):
        if not _number(part):
            continue
        n = int(part)
        if n > MAX_ID:
            raise UsageError(f"invalid user {spec!r}: {what} {n} is out of range", "ids go from 0 to 4294967294")
        if mapped is not None and n >= mapped:
            raise UsageError(f"invalid user {spec!r}: {what} {n} is not mapped in the user namespace "
                             f"(this host maps container {what}s 0 to {mapped - 1})",
                             f"use a {what} below {mapped}, or give your user a larger range in "
                             f"/etc/sub{what}")


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
    if _number(user_part):
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
        if _number(group_part):
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
    for what, n in (("uid", uid), ("gid", gid)):
        if n > MAX_ID:
            raise RootlessError(f"invalid user {spec!r}: its {what} {n} is out of range", "ids go from 0 to 4294967294")
    return User(uid, gid, tuple(supplementary), home)


def with_groups(user: User, names, group: str) -> User:
    """``--group-add``'s groups (a name in the image's /etc/group, or a gid) added to the user's
    supplementary groups, as Docker adds them."""
    groups = list(user.groups)
    table = _table(group, 4)
    for name in names:
        if _number(name):
            gid = int(name)
        else:
            g = next((g for g in table if g[0] == name), None)
            if g is None or not _number(g[2]):
                raise RootlessError(f"unable to find group {name}: no matching entries in group file",
                                    "--group-add takes a gid or a group of the image's /etc/group")
            gid = int(g[2])
        if gid > MAX_ID:
            raise RootlessError(f"invalid group {name!r}: gid {gid} is out of range", "ids go from 0 to 4294967294")
        if gid not in groups:
            groups.append(gid)
    return user._replace(groups=tuple(groups))
