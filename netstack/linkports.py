"""Every port a fellow network member listens on, not only its exposed ones (as in Docker, where
EXPOSE means nothing between the members of a user-defined network).

A link's address in the link namespace (``netstack.links``) has listeners on the linked
container's exposed ports for the link's whole life. For a fellow member, the ports its programs
listen on are learned from its network namespace: ``/proc/KEEPER/net/{tcp,tcp6,udp,udp6}`` (the
keeper lives in the container's network namespace; the files are readable by the same user),
TCP sockets in LISTEN and unconnected bound UDP sockets, on any address but loopback (which a
fellow member cannot reach in Docker either). A :class:`Follower` per member, in the linking
container's relay, adds a listener on the link address for each such port and closes it once
nothing listens there any more, so that a connection to a port nobody listens on is refused, as
in Docker. It looks when the link is made, at each DNS query for the member, and every
``PERIOD`` seconds while it has a member to follow (a timer of the relay's loop: no process, no
thread).
"""

from __future__ import annotations

import os
import struct
import time

PERIOD = 1.0  # seconds between two looks at a member's sockets
MIN_GAP = 0.1  # a DNS query looks again, but not more often than this
MAX_PORTS = 256  # ports followed per member: a member cannot push its fellows' relays out of descriptors
_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


def _local_address(hexaddr: str) -> bytes:
    """/proc/net's address: 32-bit words in the host's byte order."""
    return b"".join(struct.pack("=I", int(hexaddr[i:i + 8], 16)) for i in range(0, len(hexaddr), 8))


def _loopback(addr: bytes) -> bool:
    if len(addr) == 4:
        return addr[0] == 127
    return addr == b"\0" * 15 + b"\1" or (addr[:12] == b"\0" * 10 + b"\xff\xff" and addr[12] == 127)


def parse(lines, proto: str) -> set[tuple[int, str]]:
    """``(port, proto)`` of the sockets of one /proc/net/{tcp,tcp6,udp,udp6} text (its lines) that
    a fellow member can reach: TCP listening, UDP bound and unconnected; not on loopback only.
    The kernel lists a namespace's TCP listeners before its connections, so a TCP text is read
    only up to its first connection: thousands of them cost a look nothing."""
    want = _TCP_LISTEN if proto == "tcp" else _UDP_UNCONNECTED
    out = set()
    for n, line in enumerate(lines):
        fields = line.split()
        if not n or len(fields) < 4:
            continue  # the header
        if fields[3] != want:
            if proto == "tcp":
                break
            continue
        local, _, port = fields[1].partition(":")
        remote = fields[2].partition(":")[0]
        try:
            num = int(port, 16)
            if not num or (proto == "udp" and int(remote, 16)) or _loopback(_local_address(local)):
                continue
        except ValueError:
            continue
        out.add((num, proto))
        if len(out) >= MAX_PORTS:
            break
    return out


def listening(proc_fd: int) -> set[tuple[int, str]]:
    """The reachable ports of the network namespace of the process whose /proc directory is
    ``proc_fd`` (at most ``MAX_PORTS`` of each file); OSError once that process has gone."""
    out: set[tuple[int, str]] = set()
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            fd = os.open(f"net/{name}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
        except FileNotFoundError:
            if name.endswith("6"):
                continue  # no IPv6 in that kernel
            raise
        with open(fd, encoding="ascii", errors="replace") as f:
            out |= parse(f, proto)
    return out


def open_proc(pid: int) -> int | None:
    """A descriptor of /proc/PID (which keeps naming that process, not a later one with its pid)."""
    if not pid:
        return None
    try:
        return os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


class Follower:
    """The listeners one link address has for what its member listens on beyond its exposed
    (``fixed``) ports. ``add(ports)`` makes listeners in the link namespace: ``[(socket, port,
    proto)]``."""

    def __init__(self, relay, door_dir: str, fixed, add, keeper: int = 0):
        self.relay, self.door_dir, self.add = relay, door_dir, add
        self.fixed = {(int(p.partition("/")[0]), p.partition("/")[2] or "tcp") for p in fixed}
        self.have: dict[tuple[int, str], object] = {}  # (port, proto) -> the relay's listener
        self.keeper = 0
        self.proc_fd: int | None = None
        self.last = 0.0
        self.follow(keeper)

    def follow(self, keeper: int) -> None:
        """Follow the container whose keeper is ``keeper`` now (a restart gives it another)."""
        if keeper == self.keeper and self.proc_fd is not None:
            return
        self._drop_proc()
        self.keeper, self.proc_fd = keeper, open_proc(keeper)

    def adopt(self, sock, port: int, proto: str) -> bool:
        """Take a listener made with the link (at the start) for a port it listened on then."""
        if (port, proto) in self.fixed or (port, proto) in self.have:
            return False
        self.have[(port, proto)] = self.relay.link(sock, self.door_dir, port, proto)
        return True

    def refresh(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self.last < MIN_GAP:
            return
        self.last = now
        if self.proc_fd is None:
            found: set[tuple[int, str]] = set()
        else:
            try:
                found = set(sorted(listening(self.proc_fd) - self.fixed)[:MAX_PORTS])
            except OSError:  # the member has stopped: its ports lead nowhere
                self._drop_proc()
                found = set()
        for key in [k for k in self.have if k not in found]:
            self.relay.unlink(self.have.pop(key))
        new = sorted(found - self.have.keys())
        if new:
            try:
                made = self.add([f"{port}/{proto}" for port, proto in new])
            except OSError:
                return  # out of descriptors, say: the next look tries again
            for sock, port, proto in made:
                self.have[(port, proto)] = self.relay.link(sock, self.door_dir, port, proto)

    def _drop_proc(self) -> None:
        if self.proc_fd is not None:
            os.close(self.proc_fd)
        self.proc_fd = None

    def close(self) -> None:
        for handler in self.have.values():
            self.relay.unlink(handler)
        self.have.clear()
        self._drop_proc()


class Followers:
    """A relay's followers, by the member's id, and the timer that refreshes them. ``locate(cid)``:
    the member's keeper now (0: not running, None: removed, its follower dropped), asked when a
    follower has lost its member."""

    def __init__(self, relay, locate=None):
        self.relay, self.locate = relay, locate
        self.by_cid: dict[str, Follower] = {}
        self.next = 0.0

    def add(self, cid: str, follower: Follower) -> Follower:
        old = self.by_cid.pop(cid, None)
        if old is not None:
            old.close()
        self.by_cid[cid] = follower
        if self not in self.relay.timers:
            self.relay.timers.append(self)
        return follower

    def touch(self, cid: str, keeper: int | None = None) -> None:
        """Look again now (a DNS query for the member), following its keeper if it has changed."""
        f = self.by_cid.get(cid)
        if f is None:
            return
        if keeper is not None:
            f.follow(keeper)
        f.refresh()

    def close(self) -> None:
        """Every follower closed (their listeners and descriptors): the relay ends."""
        for f in self.by_cid.values():
            f.close()
        self.by_cid.clear()

    def forget(self) -> None:
        """In a fork of the relay's process: close its copies of the followers' descriptors."""
        for f in self.by_cid.values():
            if f.proc_fd is not None:
                os.close(f.proc_fd)
                f.proc_fd = None

    def sweep(self, now: float) -> None:
        if now < self.next:
            return
        self.next = now + PERIOD
        for cid, f in list(self.by_cid.items()):
            if f.proc_fd is None and self.locate is not None:
                try:
                    keeper = self.locate(cid)
                except Exception:  # noqa: BLE001  # a damaged record must not end the relay
                    keeper = 0
                if keeper is None:  # removed: nothing to follow any more
                    del self.by_cid[cid]
                    f.close()
                    continue
                f.follow(keeper)
            f.refresh(now)
