"""Resource limits: Docker's flags as cgroup v2 files, where the host delegates them to the user.

Pure parts first: :func:`parse` turns ``--memory``, ``--cpus``, ``--pids-limit``, ... into a
limits dict (Docker's units and refusals), :func:`files` into the cgroup v2 files and values
that enforce them, :func:`controllers` into the controllers they need. Then the host:
:func:`detect` reads what this process may use (the cgroup version, a writable delegated
cgroup, its controllers) and :func:`check` refuses, in one line naming the missing controller
and the fix, any limit the host cannot enforce: a limit is never silently ignored. Placing a
container in its cgroup is :class:`Placement`'s (a transient systemd scope when a user manager
runs, else a directory below a delegated cgroup).
"""

from __future__ import annotations

import os
from collections import namedtuple

from rootless.base.errors import HostError, UsageError
from rootless.base.valuetype import KeywordRecord, keyword_record

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence

    from rootless.runtime.userbus import ScopeRequest

CGROUP_ROOT = "/sys/fs/cgroup"
DELEGATE_FIX = ("let systemd delegate the controllers to users: a drop-in /etc/systemd/system/user@.service.d/"
                "delegate.conf with [Service] Delegate=yes, then `systemctl daemon-reload` and log in again")
UNIFIED_FIX = "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2), then " + DELEGATE_FIX

# flag -> (limits key, controller)
FLAGS = {
    "--memory": ("memory", "memory"), "--memory-reservation": ("memory_reservation", "memory"),
    "--memory-swap": ("memory_swap", "memory"), "--cpus": ("nano_cpus", "cpu"),
    "--cpu-shares": ("cpu_shares", "cpu"), "--cpu-quota": ("cpu_quota", "cpu"), "--cpu-period": ("cpu_period", "cpu"),
    "--cpuset-cpus": ("cpuset_cpus", "cpuset"), "--cpuset-mems": ("cpuset_mems", "cpuset"),
    "--pids-limit": ("pids_limit", "pids"), "--blkio-weight": ("blkio_weight", "io"),
    "--blkio-weight-device": ("blkio_weight_device", "io"),
    "--device-read-bps": ("device_read_bps", "io"), "--device-write-bps": ("device_write_bps", "io"),
    "--device-read-iops": ("device_read_iops", "io"), "--device-write-iops": ("device_write_iops", "io"),
}
CONTROLLER_OF = {key: ctl for key, ctl in FLAGS.values()}
FLAG_OF = {key: flag for flag, (key, _ctl) in FLAGS.items()}
MIN_MEMORY = 6 * 1024 * 1024  # Docker's minimum
CPU_PERIOD = 100_000

@keyword_record
class LimitOptions(KeywordRecord):
    """Docker's resource flags as given (text; None or (): not given), for :func:`parse`."""
    memory: str | None = None
    memory_reservation: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: str | None = None
    cpu_quota: str | None = None
    cpu_period: str | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: str | None = None
    blkio_weight: str | None = None
    blkio_weight_device: Sequence[str] = ()
    device_read_bps: Sequence[str] = ()
    device_write_bps: Sequence[str] = ()
    device_read_iops: Sequence[str] = ()
    device_write_iops: Sequence[str] = ()


# ---- flags -> limits ---------------------------------------------------------------------------
def parse(opts: LimitOptions) -> dict:
    """The limits the flags ask for (only those given), in Docker's units and with its checks."""
    out: dict = {}
    if opts.memory is not None:
        out["memory"] = _bytes(opts.memory, "--memory")
        if out["memory"] < MIN_MEMORY:
            raise UsageError("minimum memory limit allowed is 6MB", "give --memory 6m or more")
    if opts.memory_reservation is not None:
        out["memory_reservation"] = _bytes(opts.memory_reservation, "--memory-reservation")
        if "memory" in out and out["memory_reservation"] > out["memory"]:
            raise UsageError("minimum memory limit can not be less than memory reservation limit, "
                             "see usage", "give --memory-reservation at most --memory")
    if opts.memory_swap is not None:
        swap = -1 if opts.memory_swap.strip() == "-1" else _bytes(opts.memory_swap, "--memory-swap")
        if "memory" not in out:
            raise UsageError("you should always set the memory limit when using memoryswap limit, see usage",
                             "add --memory")
        if swap != -1 and swap < out["memory"]:
            raise UsageError("minimum memoryswap limit should be larger than memory limit, see usage",
                             "--memory-swap is memory plus swap: give at least --memory")
        out["memory_swap"] = swap
    if opts.cpus is not None:
        try:
            cpus = float(opts.cpus)
        except ValueError:
            raise UsageError(f"invalid argument {opts.cpus!r} for \"--cpus\" flag") from None
        ncpu = os.cpu_count() or 1
        if not 0.01 <= cpus <= ncpu:  # also NaN, which compares false with everything
            raise UsageError(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
        out["nano_cpus"] = int(round(cpus * 1e9))
    if opts.cpu_shares is not None:
        out["cpu_shares"] = _int(opts.cpu_shares, "--cpu-shares", 2, 262144)
    _cfs(opts, out)
    if opts.cpuset_cpus is not None:
        out["cpuset_cpus"] = _cpuset(opts.cpuset_cpus)
    if opts.cpuset_mems is not None:
        out["cpuset_mems"] = _cpuset(opts.cpuset_mems, nodes=True)
    if opts.pids_limit is not None:
        n = _int(opts.pids_limit, "--pids-limit", -1, 2 ** 62)
        if n > 0:  # 0 and -1: unlimited (Docker)
            out["pids_limit"] = n
    if opts.blkio_weight is not None:
        w = _int(opts.blkio_weight, "--blkio-weight", 0, 1000)
        if w and w < 10:
            raise UsageError("range of blkio weight is from 10 to 1000")
        if w:
            out["blkio_weight"] = w
    if opts.blkio_weight_device:
        out["blkio_weight_device"] = [_device_weight(text) for text in opts.blkio_weight_device]
    for key, items in (("device_read_bps", opts.device_read_bps), ("device_write_bps", opts.device_write_bps),
                       ("device_read_iops", opts.device_read_iops), ("device_write_iops", opts.device_write_iops)):
        if items:
            out[key] = [_device_rate(text, FLAG_OF[key]) for text in items]
    return out


def _cfs(opts: LimitOptions, out: dict) -> None:
    """``--cpu-quota``/``--cpu-period`` (microseconds; 0: not set), in Docker's words; ``--cpus``
    is the same limit said otherwise, so not both."""
    for key, flag in (("cpu_quota", "--cpu-quota"), ("cpu_period", "--cpu-period")):
        text = getattr(opts, key)
        if text is None:
            continue
        n = _int(text, flag, -1 if key == "cpu_quota" else 0, 2 ** 62)
        if not n:
            continue  # 0: Docker's "not set"
        if "nano_cpus" in out:
            what = "CPU Quota" if key == "cpu_quota" else "CPU Period"
            raise UsageError(f"conflicting options: Nano CPUs and {what} cannot both be set",
                             f"give --cpus or {flag}, not both")
        if key == "cpu_period" and not 1000 <= n <= 1_000_000:
            raise UsageError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
        if key == "cpu_quota" and 0 < n < 1000:
            raise UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        out[key] = n


def merge(old: dict, new: dict) -> dict:
    """``update``'s limits over a container's: ``--cpus`` and ``--cpu-quota``/``--cpu-period`` are
    one limit said two ways, so the one given replaces the other."""
    merged = dict(old)
    if "nano_cpus" in new:
        merged.pop("cpu_quota", None)
        merged.pop("cpu_period", None)
    elif "cpu_quota" in new or "cpu_period" in new:
        merged.pop("nano_cpus", None)
    merged.update(new)
    return merged


def parse_consistency(limits: dict) -> None:
    """The rules between limits, for limits merged by ``update`` (``parse`` checks them too)."""
    memory = limits.get("memory")
    if "memory_reservation" in limits and memory and limits["memory_reservation"] > memory:
        raise UsageError("minimum memory limit can not be less than memory reservation limit, see usage")
    swap = limits.get("memory_swap")
    if swap not in (None, -1) and (not memory or swap < memory):
        raise UsageError("minimum memoryswap limit should be larger than memory limit, see usage",
                         "--memory-swap is memory plus swap: give at least --memory")


def _bytes(text: str, flag: str) -> int:
    from rootless.base.config import parse_size
    try:
        return parse_size(text)
    except ValueError:
        raise UsageError(f"invalid argument {text!r} for \"{flag}\" flag: invalid size",
                         "use a size like 512m or 1g") from None


def _int(text: str, flag: str, lo: int, hi: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"invalid argument {text!r} for \"{flag}\" flag: not a number") from None
    if not lo <= n <= hi:
        raise UsageError(f"invalid argument {text!r} for \"{flag}\" flag: out of range ({lo} to {hi})")
    return n


def _cpuset(text: str, nodes: bool = False) -> str:
    """A list of CPUs (or of memory nodes: ``nodes``) this host has, as 0-3,5."""
    what = "memory nodes" if nodes else "CPUs"
    have = _online_nodes() if nodes else set(range(os.cpu_count() or 1))
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise UsageError(f"invalid value {text!r} for cpuset {'mems' if nodes else 'cpus'}") from None
        if not 0 <= a <= b or not set(range(a, b + 1)) <= have:
            raise UsageError(f"requested {what} are not available - requested {text}, available: {_ranges(have)}")
    return text


def _online_nodes() -> set[int]:
    """The memory (NUMA) nodes online (node 0 where the kernel does not say)."""
    try:
        with open("/sys/devices/system/node/online") as f:
            text = f.read().strip()
    except OSError:
        return {0}
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out or {0}


def _ranges(ids: set[int]) -> str:
    """0,1,2,5 as 0-2,5."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(ids):
        if run and i != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(i)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _device_rate(text: str, flag: str) -> dict:
    """/dev/DEVICE:RATE: bytes a second (512k, 1mb) for the -bps flags, operations for the -iops ones."""
    rate, device = _device(text, flag, "RATE")
    if flag.endswith("-iops"):
        return {**device, "rate": _int(rate, flag, 0, 2 ** 62)}
    return {**device, "rate": _bytes(rate, flag)}


def _device_weight(text: str) -> dict:
    """--blkio-weight-device /dev/DEVICE:WEIGHT (10 to 1000)."""
    flag = "--blkio-weight-device"
    weight, device = _device(text, flag, "WEIGHT")
    w = _int(weight, flag, 10, 1000)
    return {**device, "weight": w}


def _device(text: str, flag: str, what: str) -> tuple[str, dict]:
    """``/dev/DEVICE:VALUE``: the value's text, and the block device's path, major and minor."""
    path, sep, value = text.rpartition(":")
    if not sep or not path.startswith("/"):
        raise UsageError(f"invalid argument {text!r} for \"{flag}\" flag: use /dev/DEVICE:{what}")
    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"{flag}: {path}: {(e.strerror or str(e)).lower()}") from None
    import stat as stat_
    if not stat_.S_ISBLK(st.st_mode):
        raise UsageError(f"{flag}: {path} is not a block device")
    return value, {"path": path, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}


# ---- limits -> cgroup v2 ------------------------------------------------------------------------
def controllers(limits: dict) -> list[str]:
    """The v2 controllers the limits need, in a stable order."""
    return sorted({CONTROLLER_OF[k] for k in limits})


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc and crun convert."""
    return 1 + ((shares - 2) * 9999) // 262142


def files(limits: dict) -> dict[str, str]:
    """The cgroup v2 files (relative to the container's cgroup) and what to write in them."""
    out: dict[str, str] = {}
    if "memory" in limits:
        out["memory.max"] = str(limits["memory"])
    if "memory_reservation" in limits:
        out["memory.low"] = str(limits["memory_reservation"])
    if "memory_swap" in limits:
        swap = limits["memory_swap"]
        out["memory.swap.max"] = "max" if swap == -1 else str(swap - limits["memory"])
    if "nano_cpus" in limits:
        out["cpu.max"] = f"{limits['nano_cpus'] * CPU_PERIOD // 10 ** 9} {CPU_PERIOD}"
    elif "cpu_quota" in limits or "cpu_period" in limits:  # -1: no quota, as runc writes it
        quota = limits.get("cpu_quota", -1)
        out["cpu.max"] = f"{'max' if quota < 0 else quota} {limits.get('cpu_period', CPU_PERIOD)}"
    if "cpu_shares" in limits:
        out["cpu.weight"] = str(shares_to_weight(limits["cpu_shares"]))
    if "cpuset_cpus" in limits:
        out["cpuset.cpus"] = limits["cpuset_cpus"]
    if "cpuset_mems" in limits:
        out["cpuset.mems"] = limits["cpuset_mems"]
    if "pids_limit" in limits:
        out["pids.max"] = str(limits["pids_limit"])
    weights = []
    if "blkio_weight" in limits:
        weights.append(f"default {_io_weight(limits['blkio_weight'])}")
    weights += [f"{d['major']}:{d['minor']} {_io_weight(d['weight'])}" for d in limits.get("blkio_weight_device", [])]
    if weights:
        out["io.weight"] = "\n".join(weights)
    rates: dict[str, list[str]] = {}
    for key, word in (("device_read_bps", "rbps"), ("device_write_bps", "wbps"), ("device_read_iops", "riops"),
                      ("device_write_iops", "wiops")):
        for d in limits.get(key, []):
            rates.setdefault(f"{d['major']}:{d['minor']}", []).append(f"{word}={d['rate']}")
    if rates:
        out["io.max"] = "\n".join(f"{dev} {' '.join(r)}" for dev, r in rates.items())
    return out


def _io_weight(blkio: int) -> int:
    """A v1 blkio weight (10..1000) as a v2 io.weight (1..10000), as runc and crun convert."""
    return 1 + (blkio - 10) * 9999 // 990


def host_config(limits: dict) -> dict:
    """The limits as ``inspect`` shows them in HostConfig (Docker's names; 0: none)."""
    return {
        "Memory": limits.get("memory", 0), "MemoryReservation": limits.get("memory_reservation", 0),
        "MemorySwap": limits.get("memory_swap", 0), "NanoCpus": limits.get("nano_cpus", 0),
        "CpuShares": limits.get("cpu_shares", 0), "CpuQuota": limits.get("cpu_quota", 0),
        "CpuPeriod": limits.get("cpu_period", 0), "CpusetCpus": limits.get("cpuset_cpus", ""),
        "CpusetMems": limits.get("cpuset_mems", ""),
        "PidsLimit": limits.get("pids_limit"), "BlkioWeight": limits.get("blkio_weight", 0),
        "BlkioWeightDevice": [{"Path": d["path"], "Weight": d["weight"]}
                              for d in limits.get("blkio_weight_device", [])],
        "BlkioDeviceReadBps": [{"Path": d["path"], "Rate": d["rate"]} for d in limits.get("device_read_bps", [])],
        "BlkioDeviceWriteBps": [{"Path": d["path"], "Rate": d["rate"]} for d in limits.get("device_write_bps", [])],
        # null when not given, as Docker shows them
        "BlkioDeviceReadIOps": [{"Path": d["path"], "Rate": d["rate"]} for d in limits.get("device_read_iops", [])]
        or None,
        "BlkioDeviceWriteIOps": [{"Path": d["path"], "Rate": d["rate"]} for d in limits.get("device_write_iops", [])]
        or None,
    }


# ---- the host -------------------------------------------------------------------------------------
Host = namedtuple("Host", "version own delegated controllers")


def cgroup_version(mounts_text: str, root: str = CGROUP_ROOT) -> str:
    """"v2", "hybrid", "v1" or "none", from /proc/self/mounts."""
    v1, v2_at = False, []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        if fields[2] == "cgroup2":
            v2_at.append(fields[1].replace("\\040", " "))
        elif fields[2] == "cgroup":
            v1 = True
    if root in v2_at:
        return "v2"
    if v1:
        return "hybrid" if v2_at else "v1"
    return "none"


def own_cgroup(cgroup_text: str) -> str | None:
    """This process's v2 cgroup path (the ``0::/path`` line of /proc/self/cgroup)."""
    for line in cgroup_text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def delegation_dir(start: str, top: str) -> str | None:
    """The nearest directory from ``start`` up to ``top`` whose cgroup.subtree_control we may write."""
    d, top = os.path.normpath(start), os.path.normpath(top)
    while True:
        if os.access(os.path.join(d, "cgroup.subtree_control"), os.W_OK):
            return d
        if d == top or not d.startswith(top + "/"):
            return None
        d = os.path.dirname(d)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def user_slice_dir(root: str = CGROUP_ROOT) -> str | None:
    """``user@UID.service``: what systemd delegates to this user (the transient scopes go there)."""
    d = os.path.join(root, "user.slice", f"user-{os.getuid()}.slice", f"user@{os.getuid()}.service")
    return d if os.path.isdir(d) else None


def detect(root: str = CGROUP_ROOT) -> Host:
    """What this process can use: the cgroup version, the nearest writable (delegated) cgroup at or
    above its own (or the user manager's subtree) and the controllers available there."""
    version = cgroup_version(_read("/proc/self/mounts"), root)
    own = own_cgroup(_read("/proc/self/cgroup"))
    if version != "v2" or own is None:
        return Host(version, own, None, ())
    delegated = delegation_dir(os.path.join(root, own.lstrip("/")), root)
    if delegated is None or delegated == root:
        delegated = user_slice_dir(root)
        if delegated is not None and not os.access(os.path.join(delegated, "cgroup.subtree_control"), os.W_OK):
            delegated = None
    ctl = tuple(_read(os.path.join(delegated, "cgroup.controllers")).split()) if delegated else ()
    return Host(version, own, delegated, ctl)


def check(host: Host, limits: dict) -> None:
    """Refuse, in one line, limits this host cannot enforce (never ignore one silently)."""
    if not limits:
        return
    first = FLAG_OF[sorted(limits)[0]]
    if host.version != "v2":
        what = {"hybrid": "hybrid cgroups (v1 controllers)", "v1": "cgroup v1 only",
                "none": "no cgroup filesystem"}.get(host.version, host.version)
        raise HostError(f"{first} needs cgroup v2 with delegated controllers; this host has {what}", UNIFIED_FIX)
    if host.delegated is None:
        raise HostError(f"{first} needs a cgroup delegated to you; none is writable above {host.own or '?'}",
                        DELEGATE_FIX)
    missing = [c for c in controllers(limits) if c not in host.controllers]
    if missing:
        flag = next(FLAG_OF[k] for k in sorted(limits) if CONTROLLER_OF[k] in missing)
        raise HostError(f"{flag} needs the {missing[0]} controller, which is not delegated to you "
                        f"(delegated at {host.delegated}: {' '.join(host.controllers) or 'none'})", DELEGATE_FIX)


# Docker's HostConfig names of the limits, for the API's warnings
API_NAME = {"memory": "Memory", "memory_reservation": "MemoryReservation", "memory_swap": "MemorySwap",
            "nano_cpus": "NanoCpus", "cpu_shares": "CpuShares", "cpu_quota": "CpuQuota", "cpu_period": "CpuPeriod",
            "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems", "pids_limit": "PidsLimit",
            "blkio_weight": "BlkioWeight", "blkio_weight_device": "BlkioWeightDevice",
            "device_read_bps": "BlkioDeviceReadBps", "device_write_bps": "BlkioDeviceWriteBps",
            "device_read_iops": "BlkioDeviceReadIOps", "device_write_iops": "BlkioDeviceWriteIOps"}


def split_enforceable(host: Host, limits: dict) -> tuple[dict, dict, list[str]]:
    """The API's rule, Docker's on a host without the capability: (the limits this host can
    enforce, those it cannot, a warning per discarded limit naming why). The command line
    refuses instead (:func:`check`)."""
    kept, dropped, warnings = {}, {}, []
    for key in sorted(limits):
        try:
            check(host, {key: limits[key]})
        except HostError as e:
            dropped[key] = limits[key]
            warnings.append(f"{API_NAME[key]} limit discarded: {e.message}")
        else:
            kept[key] = limits[key]
    if "memory_swap" in kept and "memory" in dropped:  # swap is counted over the memory limit
        dropped["memory_swap"] = kept.pop("memory_swap")
    return kept, dropped, warnings


def enforceable(host: Host) -> list[str]:
    """The limit flags this host can enforce (for ``info``)."""
    if host.version != "v2" or host.delegated is None:
        return []
    return [flag for flag, (_key, ctl) in FLAGS.items() if ctl in host.controllers]


# ---- a container's place ----------------------------------------------------------------------------
ACCOUNTING = ("cpu", "io", "memory", "pids")  # enabled for every container where delegated: stats, update


def wants_own(host: Host, limits: dict) -> bool:
    """Whether a container gets a cgroup of its own: every container where a cgroup v2 subtree is
    delegated (so that ``pause`` freezes it, ``stats`` reads it and probes count against it, as with
    Podman), a container with limits always (:func:`check` refused those this host cannot hold)."""
    return bool(limits) or (host.version == "v2" and host.delegated is not None)


def placement(cid: str, limits: dict | None, root: str = CGROUP_ROOT) -> Placement | None:
    """The container's :class:`Placement`, or None where it gets no cgroup of its own (no limits, and
    no delegated cgroup v2 subtree). A host without cgroup v2 at ``root`` (v1, hybrid) costs one stat."""
    if not limits and not os.path.exists(os.path.join(root, "cgroup.controllers")):
        return None
    host = detect(root)
    return Placement(host, cid, limits or {}, root) if wants_own(host, limits or {}) else None


_HEX = frozenset("0123456789abcdef")


def cgroup_name(cid: str) -> str:
    """The name of a container's cgroup (its directory, or its scope's before ``-KEEPER.scope``):
    ``rootless-`` and the first 12 digits of a hex id (``run``'s, ``build``'s: the names of
    containers started before are kept); any other id (an OCI caller's, which may hold ``/``-free
    but arbitrary characters, or share its first 12) by a digest of all of it, so that the name is
    always a safe path component and a systemd unit name, and ids alike in their first characters
    get names of their own."""
    if len(cid) >= 12 and _HEX.issuperset(cid):
        return f"rootless-{cid[:12]}"
    import hashlib
    return f"rootless-x{hashlib.sha256(cid.encode()).hexdigest()[:16]}"


class Placement:
    """A container's cgroups: ``SCOPE/ctr`` holds its processes and carries the limits,
    ``SCOPE/keeper`` its keeper and helpers (so that they count against nothing of the
    container's). SCOPE is a transient systemd scope (``rootless-ID-KEEPERPID.scope``, ``Delegate=yes``)
    when the user's systemd answers (the one way to move a process out of a login session's
    cgroup), else a directory below the delegated cgroup. The CLI, outside every namespace, does
    the moves: the keeper is put in ``ctr`` before it makes the container's cgroup namespace and
    forks its PID 1 (which so starts limited), then moved with its helpers to ``keeper``."""

    def __init__(self, host: Host, cid: str, limits: dict, root: str = CGROUP_ROOT):
        self.host, self.cid, self.limits, self.root = host, cid, limits, root
        self.scope: str | None = None
        self.request: ScopeRequest | None = None  # the scope asked of systemd while the id maps are written

    def unit(self, keeper: int) -> str:
        """The scope's name: one per start (the keeper's pid), since systemd may still hold the
        previous start's scope, collecting it, when a quick restart asks for the next."""
        return f"{cgroup_name(self.cid)}-{keeper}.scope"

    def begin(self, keeper: int) -> None:
        """Ask the user's systemd for the scope now (right after the keeper's fork): it works on it
        while the id maps are written; :meth:`adopt` takes the answer."""
        env = _user_bus_env()
        from rootless.runtime import userbus
        bus = userbus.path_of(env["DBUS_SESSION_BUS_ADDRESS"]) if env is not None else None
        if bus is not None:  # else (an abstract socket, ...) busctl asks in adopt
            try:
                self.request = userbus.ScopeRequest(bus, self.unit(keeper), keeper)
            except OSError:
                self.request = None  # no socket to be had: adopt asks with busctl

    def adopt(self, keeper: int) -> str | None:
        """Put the keeper in the container's cgroup; that cgroup's path. Without limits a failure
        is no error: the container runs without a cgroup of its own (None, ``scope`` None)."""
        try:
            return self._adopt(keeper)
        except (OSError, HostError) as e:
            if self.request is not None:
                self.request.close()
            if not self.limits:
                if self.scope is not None and not self.scope.endswith(".scope"):
                    remove(self.scope)  # a plain directory, if the keeper is not in it
                self.scope = None
                return None
            if isinstance(e, HostError):
                raise
            raise HostError(f"cannot give the container a cgroup of its own below {self.scope or self.host.delegated}: "
                            f"{e.strerror or e}",
                            "run it in a systemd user session (the limits then go to a transient scope), "
                            "or from a delegated cgroup without processes of its own") from None

    def _adopt(self, keeper: int) -> str:
        self.scope = self._systemd_scope(keeper) or self._plain_dir(keeper)
        ctr, kept = os.path.join(self.scope, "ctr"), os.path.join(self.scope, "keeper")
        for d in (ctr, kept):
            os.makedirs(d, exist_ok=True)
        _write(os.path.join(ctr, "cgroup.procs"), str(keeper))  # the scope is empty now: controllers may go on
        needed = controllers(self.limits)
        offered = _read(os.path.join(self.scope, "cgroup.controllers")).split()
        extra = [c for c in ACCOUNTING if c in offered and c not in needed]
        if extra:  # accounting for stats, and room for update's limits (best effort)
            try:
                _write(os.path.join(self.scope, "cgroup.subtree_control"), " ".join(f"+{c}" for c in needed + extra))
                needed = []
            except OSError:
                pass
        if needed:
            _write(os.path.join(self.scope, "cgroup.subtree_control"), " ".join(f"+{c}" for c in needed))
        write_limits(ctr, self.limits)
        return ctr

    def settle(self, container_pid: int) -> None:
        """Move what is not the container (the keeper, slirp4netns) to ``keeper``."""
        if self.scope is None:  # no cgroup of its own after all (adopt said so)
            return
        ctr, kept = os.path.join(self.scope, "ctr"), os.path.join(self.scope, "keeper")
        try:
            ns = os.readlink(f"/proc/{container_pid}/ns/pid")
            tree = None
            if ns == os.readlink("/proc/self/ns/pid"):  # --pid host: PID 1 and its children are the container
                from rootless.runtime.subreaper import descendants
                tree = {str(p) for p in descendants(container_pid)}
        except OSError:
            return  # it has already ended
        for pid in _read(os.path.join(ctr, "cgroup.procs")).split():
            try:
                if (pid not in tree) if tree is not None else os.readlink(f"/proc/{pid}/ns/pid") != ns:
                    _write(os.path.join(kept, "cgroup.procs"), pid)
            except OSError:
                continue  # ended meanwhile

    def _systemd_scope(self, pid: int) -> str | None:
        name = self.unit(pid)
        request, self.request = self.request, None
        if request is None or not request.answer():  # not asked directly (no bus address to use): busctl
            from rootless.base import proc
            env = _user_bus_env()
            if env is None or not proc.which("busctl"):
                return None
            res = proc.run(["busctl", "--user", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                            "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", name,
                            "fail", "3", "PIDs", "au", "1", str(pid), "Delegate", "b", "1", "CollectMode", "s",
                            "inactive-or-failed", "0"], timeout=10, check=False, env=env)
            if res.returncode != 0:
                return None
        import time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the job moves the process; its cgroup says when
            path = own_cgroup(_read(f"/proc/{pid}/cgroup")) or ""
            if path.endswith("/" + name):
                return os.path.join(self.root, path.lstrip("/"))
            time.sleep(0.005)
        return None

    def _plain_dir(self, pid: int) -> str:
        base = self.host.delegated
        if base is None:
            raise HostError("no cgroup is delegated to you", DELEGATE_FIX)
        d = os.path.join(base, cgroup_name(self.cid))
        os.makedirs(d, exist_ok=True)
        if not self.limits:
            return d  # the controllers already enabled below the delegated cgroup serve (accounting)
        try:
            _write(os.path.join(base, "cgroup.subtree_control"), " ".join(f"+{c}" for c in controllers(self.limits)))
        except OSError as e:
            raise HostError(f"cannot enable {' '.join(controllers(self.limits))} below {base}: {e.strerror}",
                            "run it from a cgroup without processes of its own, or with a systemd user "
                            "session (the limits then go to a transient scope)") from None
        return d


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def attach(scope: str, pid: int) -> bool:
    """Put ``pid`` (an ``exec``) in the container's cgroup: directly where this process may (a
    shared delegated ancestor), else through the user's systemd (AttachProcessesToUnit, which may
    move a process out of a login session's cgroup). Whether it worked."""
    try:
        _write(os.path.join(scope, "ctr", "cgroup.procs"), str(pid))
        return True
    except OSError:
        pass
    unit = os.path.basename(scope)
    env = _user_bus_env()
    if not unit.endswith(".scope") or env is None:
        return False
    from rootless.runtime import userbus
    bus = userbus.path_of(env["DBUS_SESSION_BUS_ADDRESS"])
    if bus is not None and userbus.attach(bus, unit, "/ctr", pid):  # no busctl to start
        return True
    from rootless.base import proc
    if not proc.which("busctl"):
        return False
    res = proc.run(["busctl", "--user", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                    "org.freedesktop.systemd1.Manager", "AttachProcessesToUnit", "ssau", unit, "/ctr", "1", str(pid)],
                   timeout=10, check=False, env=env)
    return res.returncode == 0


def _user_bus_env() -> dict | None:
    """The environment for ``busctl --user``: the user manager's bus, wherever XDG_RUNTIME_DIR points."""
    env = dict(os.environ)
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return env
    bus = next((b for b in (os.path.join(env.get("XDG_RUNTIME_DIR", ""), "bus"), f"/run/user/{os.getuid()}/bus")
                if os.path.exists(b)), None)
    if bus is None:
        return None
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"
    return env


def open_own_procs(cid: str) -> int | None:
    """In the keeper, before it unshares its cgroup namespace: a descriptor of the container's
    ``ctr/cgroup.procs`` when the keeper is in it (None: the container has no cgroup of its own).
    A process the keeper forks later (a health probe) joins ``ctr`` by writing ``0`` to it: the
    kernel checks the namespace and the rights of the opener, not of the writer, whose cgroup
    namespace (rooted at ``ctr``) no longer sees the keeper's cgroup."""
    own = own_cgroup(_read("/proc/self/cgroup")) or ""
    scope, leaf = os.path.split(own)
    name = os.path.basename(scope)
    own_name = cgroup_name(cid)
    mine = name == own_name or (name.startswith(own_name + "-") and name.endswith(".scope"))
    if leaf != "ctr" or not mine:
        return None
    try:
        return os.open(os.path.join(CGROUP_ROOT, own.lstrip("/"), "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None


def join_by(procs_fd: int) -> bool:
    """Move this process into the cgroup whose ``cgroup.procs`` ``procs_fd`` is (:func:`open_own_procs`)."""
    try:
        os.write(procs_fd, b"0")
        return True
    except OSError:
        return False


def oom_kills(scope: str) -> int:
    """How many processes of the container the OOM killer took (``ctr/memory.events``)."""
    for line in _read(os.path.join(scope, "ctr", "memory.events")).splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value or 0)
    return 0


def remove(path: str) -> None:
    """Remove a container's cgroup directories (empty ones; best effort: systemd collects a scope)."""
    for d in (os.path.join(path, "ctr"), os.path.join(path, "keeper"), path):
        try:
            os.rmdir(d)
        except OSError:
            pass


# ---- reading and changing a running container's cgroup ------------------------------------------------
Sample = namedtuple("Sample", "cpu_usec memory memory_limit pids io_read io_write")


def sample(scope: str) -> Sample:
    """What the container's cgroup says now (``stats``)."""
    ctr = os.path.join(scope, "ctr")
    cpu = 0
    for line in _read(os.path.join(ctr, "cpu.stat")).splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            cpu = int(value)
    memory = _int_file(os.path.join(ctr, "memory.current"))
    limit_text = _read(os.path.join(ctr, "memory.max")).strip()
    limit = int(limit_text) if limit_text.isdigit() else host_memory()
    rd = wr = 0
    for line in _read(os.path.join(ctr, "io.stat")).splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                rd += int(value)
            elif key == "wbytes":
                wr += int(value)
    return Sample(cpu, memory, limit, _int_file(os.path.join(ctr, "pids.current")), rd, wr)


def _int_file(path: str) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def host_memory() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def update(scope: str, limits: dict) -> None:
    """Write new limits into a running container's cgroup (``update``)."""
    write_limits(os.path.join(scope, "ctr"), limits)


def write_limits(ctr: str, limits: dict) -> None:
    """The limits' files in the container's cgroup ``ctr``, a line at a time; a line the kernel
    refuses is one error naming the file and the line."""
    for name, value in files(limits).items():
        for line in value.splitlines():
            try:
                _write(os.path.join(ctr, name), line)
            except OSError as e:
                hint = "the controller may not be delegated to you (see `rootless info`)"
                if name == "io.weight" and not line.startswith("default"):
                    hint = ("a device's own weight (--blkio-weight-device) needs the BFQ I/O scheduler or io.cost on "
                            "that device (/sys/block/DEV/queue/scheduler): leave it out, or give --blkio-weight")
                raise HostError(f"cannot set {name} of the container's cgroup to {line!r}: {e.strerror}",
                                hint) from None
