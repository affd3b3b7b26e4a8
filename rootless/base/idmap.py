"""User-namespace id maps: subordinate ranges, newuidmap/newgidmap, the single-uid fallback.

Container uid 0 is the invoking user; container uids 1..N map to the user's
``/etc/subuid`` ranges, or those libsubid gives (SSSD, LDAP) through ``getsubids`` (likewise for
gids). Without a range or without the
setuid helpers the map is a single uid (container root = the user).
"""

from __future__ import annotations

import os
import pwd
from collections import namedtuple

from rootless.base import proc
from rootless.base.atomic import read_text
from rootless.base.errors import RootlessError

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


Range = namedtuple("Range", "inside outside count")


class IdMapping(namedtuple("IdMapping", "mode uids gids warning", defaults=(None,))):
    """``mode`` is "subid" or "single"; ``uids``/``gids`` are tuples of Range; ``warning`` says
    why the single-uid fallback was taken (None when it was asked for or not taken)."""

    __slots__ = ()

    @property
    def key(self) -> str:
        """A stable description, recorded with the store's unpacked layers."""
        def fmt(ranges: tuple[Range, ...]) -> str:
            return ",".join(f"{r.inside}:{r.outside}:{r.count}" for r in ranges)
        return f"{self.mode} uid={fmt(self.uids)} gid={fmt(self.gids)}"

    @property
    def size(self) -> int:
        return sum(r.count for r in self.uids)


def parse_subids(text: str, user: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges of ``user`` (by name or uid) in a subuid/subgid file."""
    ranges = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0 and start >= 0:
            ranges.append((start, count))
    return ranges



def current_user() -> tuple[str, int, int]:
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return name, uid, gid


def helper_usable(path: str | None) -> bool:
    """newuidmap/newgidmap must be setuid root or carry file capabilities."""
    if not path:
        return False
    st = os.stat(path)
    if st.st_mode & 0o4000 and st.st_uid == 0:
        return True
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def parse_getsubids(text: str) -> list[tuple[int, int]]:
    """The ranges ``getsubids`` prints (``N: USER START COUNT`` a line)."""
    ranges = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].endswith(":") and parts[2].isdigit() and parts[3].isdigit() \
                and int(parts[3]) > 0:
            ranges.append((int(parts[2]), int(parts[3])))
    return ranges


def from_getsubids(user: str, groups: bool) -> list[tuple[int, int]]:
    """The ranges libsubid knows for ``user`` (``/etc/nsswitch.conf``'s ``subid:`` source, such as
    SSSD, or the files), through shadow's ``getsubids``; none when it is missing or says none."""
    tool = proc.which("getsubids")
    if not tool:
        return []
    try:
        cp = proc.run([tool, *(["-g"] if groups else []), user], timeout=10, check=False)
    except RootlessError:
        return []
    return parse_getsubids(cp.stdout.decode(errors="replace")) if cp.returncode == 0 else []


def plan(mode: str = "auto", subuid_text: str | None = None, subgid_text: str | None = None,
         helpers_ok: bool | None = None, user: tuple[str, int, int] | None = None,
         use_getsubids: bool | None = None) -> IdMapping:
    """Decide the mapping (pure given its inputs; reads the host for those not given). Ranges
    the files lack are asked of libsubid (``getsubids``) unless the file texts were given."""
    name, uid, gid = user or current_user()
    single = IdMapping("single", (Range(0, uid, 1),), (Range(0, gid, 1),))
    if mode == "single":
        return single
    if helpers_ok is None:
        helpers_ok = helper_usable(proc.which("newuidmap")) and helper_usable(proc.which("newgidmap"))
    subuids = parse_subids(read_text(SUBUID) if subuid_text is None else subuid_text, name, uid)
    subgids = parse_subids(read_text(SUBGID) if subgid_text is None else subgid_text, name, uid)
    if use_getsubids if use_getsubids is not None else subuid_text is None:
        subuids = subuids or from_getsubids(name, groups=False)
        subgids = subgids or from_getsubids(name, groups=True)
    fix = (f"ask an administrator to run `usermod --add-subuids 100000-165535 "
           f"--add-subgids 100000-165535 {name}` (package uidmap)")
    if not helpers_ok:
        why = "newuidmap/newgidmap are missing or not setuid"
    elif not subuids or not subgids:
        why = f"no subordinate id range for {name} in {SUBUID} or {SUBGID}"
    else:
        return IdMapping("subid", _ranges(uid, subuids), _ranges(gid, subgids))
    return IdMapping("single", single.uids, single.gids,
                     warning=f"{why}: using a single-uid map (files of other uids become yours); to fix, {fix}")


def keep_id(mapping: IdMapping, uid: int, gid: int) -> IdMapping:
    """``--userns=keep-id``: the user's own uid and gid are the same inside (a file of theirs in a
    bind mount is theirs there too). With subordinate ids, inside 0..uid-1 and uid+1.. take the
    ranges in order; in a single-uid map only the user exists inside."""
    return IdMapping(mapping.mode, _keep(mapping.uids, uid, "uid"), _keep(mapping.gids, gid, "gid"),
                     mapping.warning)


def _keep(ranges: tuple[Range, ...], own: int, what: str) -> tuple[Range, ...]:
    mine = ranges[0].outside  # inside 0 of the usual map: the user
    if len(ranges) == 1:
        return (Range(own, mine, 1),)
    subs = [(r.outside, r.count) for r in ranges[1:]]
    if sum(c for _, c in subs) < own:
        raise RootlessError(f"--userns=keep-id needs at least {own} subordinate {what}s below yours; "
                            f"you have {sum(c for _, c in subs)}", f"ask for a larger range in /etc/sub{what}")
    out, inside = [], 0
    for start, count in subs:
        while count:
            if inside == own:
                out.append(Range(own, mine, 1))
                inside += 1
            take = count if inside > own else min(count, own - inside)
            out.append(Range(inside, start, take))
            inside, start, count = inside + take, start + take, count - take
    if inside == own:
        out.append(Range(own, mine, 1))
    return tuple(sorted(out))


def fuse_shift(mapping: IdMapping, own: int, gids: bool = False) -> str | None:
    """fuse-overlayfs's ``uidmapping=`` (``gidmapping=``) for a keep-id container: the store's
    layers were unpacked with the usual map (image id 0 is the user, 1.. the subordinate ids),
    which keep-id shifts; this shows each file under its image id again (triples of the id in
    the namespace, the id shown, the count). None in a single-uid map (nothing to shift)."""
    ranges = mapping.gids if gids else mapping.uids
    if len(ranges) == 1:
        return None
    subs = sum(r.count for r in ranges[1:])
    triples = [(own, 0, 1), (0, 1, own)] + ([(own + 1, own + 1, subs - own)] if subs > own else [])
    return ":".join(f"{a}:{b}:{c}" for a, b, c in triples if c)


def _ranges(own: int, subs: list[tuple[int, int]]) -> tuple[Range, ...]:
    out = [Range(0, own, 1)]
    inside = 1
    for start, count in subs:
        out.append(Range(inside, start, count))
        inside += count
    return tuple(out)


def nested(mapping: IdMapping, outer: IdMapping) -> IdMapping:
    """``mapping`` (host ids outside) for a user namespace made inside ``outer``'s: the same host
    ids, as ids of the outer namespace (what its children's maps name). RootlessError for an id
    the outer namespace does not map."""
    def down(ranges: tuple[Range, ...], outers: tuple[Range, ...], what: str) -> tuple[Range, ...]:
        out = []
        for r in ranges:
            start, left, inside = r.outside, r.count, r.inside
            while left:
                o = next((o for o in outers if o.outside <= start < o.outside + o.count), None)
                if o is None:
                    raise RootlessError(f"{what} {start} is not in the shared network's user namespace",
                                        "set ROOTLESS_SHARED_NETWORK=0 and report this")
                take = min(left, o.outside + o.count - start)
                out.append(Range(inside, o.inside + start - o.outside, take))
                start, left, inside = start + take, left - take, inside + take
        return tuple(out)
    return IdMapping(mapping.mode, down(mapping.uids, outer.uids, "uid"), down(mapping.gids, outer.gids, "gid"),
                     mapping.warning)


def write_nested(pid: int, mapping: IdMapping) -> None:
    """Write the maps of ``pid``'s user namespace, a child of one this user owns (``nested``'s
    ids): the kernel lets its owner write any map within it, no setuid helper needed."""
    try:
        for kind, ranges in (("gid_map", mapping.gids), ("uid_map", mapping.uids)):
            with open(f"/proc/{pid}/{kind}", "w") as f:
                f.write("".join(f"{r.inside} {r.outside} {r.count}\n" for r in ranges))
    except OSError as e:
        raise RootlessError(f"cannot write the id map of pid {pid}: {e.strerror}",
                            "check `rootless info` (user namespaces)") from None


def write_maps(pid: int, mapping: IdMapping) -> None:
    """Write the maps of the user namespace of ``pid`` (the child waits for this)."""
    if mapping.mode == "single":
        try:
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
            for kind, rng in (("uid_map", mapping.uids[0]), ("gid_map", mapping.gids[0])):
                with open(f"/proc/{pid}/{kind}", "w") as f:
                    f.write(f"{rng.inside} {rng.outside} {rng.count}\n")
        except OSError as e:
            raise RootlessError(f"cannot write the id map of pid {pid}: {e.strerror}",
                                "check `rootless info` (user namespaces)") from None
        return
    argvs = []
    for helper, ranges in (("newgidmap", mapping.gids), ("newuidmap", mapping.uids)):
        argv = [proc.which(helper) or helper, str(pid)]
        for r in ranges:
            argv += [str(r.inside), str(r.outside), str(r.count)]
        argvs.append(argv)
    proc.run_all(argvs, timeout=10)  # both at once: the container waits for them
