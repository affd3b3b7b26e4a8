"""Seccomp profiles in Docker's JSON format: the default one (``rootless/data/seccomp.json``) and
the file of ``--security-opt seccomp=FILE``. A profile is checked when the container is made
(its text is kept in the container's record, as Docker keeps it), resolved for the container's
capabilities and this host's architecture and kernel, and compiled by libseccomp once per
resolution: the BPF program is cached in the runtime directory and every later start or ``exec``
reads it.

Docker's rules: an entry applies when every capability of ``includes.caps`` is kept and none of
``excludes.caps`` is, the host's architecture is in ``includes.arches`` (and not in
``excludes.arches``), and the kernel is at least ``includes.minKernel``. The comparisons of an
entry all hold together, unless two of them test the same argument: then each is a rule of its
own and any one suffices (a rule cannot compare one argument twice).
"""

from __future__ import annotations

import json
import os

from rootless.base.errors import UsageError

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seccomp.json")
PROGRAM_VERSION = 2

# The host's architecture under the names profiles use: libseccomp's (archMap, architectures)
# and Go's (includes.arches); the 32-bit ABIs a 64-bit host also runs.
_ARCH_NAMES = {"x86_64": ("x86_64", "amd64"), "aarch64": ("aarch64", "arm64"), "i686": ("x86", "386"),
               "armv7l": ("arm", "arm"), "ppc64le": ("ppc64le", "ppc64le"), "s390x": ("s390x", "s390x"),
               "riscv64": ("riscv64", "riscv64")}
_SUB_ARCHES = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}
_FIELDS = {"names": list, "name": str, "action": str, "errnoRet": int, "args": list, "includes": dict,
           "excludes": dict, "comment": str}


class ProfileError(UsageError):
    def __init__(self, where: str, what: str):
        super().__init__(f"seccomp profile{' ' + where if where else ''}: {what}",
                         "fix the profile (Docker's format), or use --security-opt seccomp=unconfined")


# Root emulation (single-uid user namespaces, where only root is mapped): the calls that would
# fail for want of other ids succeed without effect, as Charliecloud's and enroot's filters make
# them, so that package managers run: changing owners, changing identity, making device nodes.
# Other kinds of mknod (fifos, sockets, regular files) go on to the kernel.
FAKED = ("chown fchown lchown fchownat chown32 fchown32 lchown32 setuid setuid32 setgid setgid32 setreuid "
         "setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32 setgroups setgroups32 "
         "setfsuid setfsuid32 setfsgid setfsgid32").split()
_S_IFMT = 0o170000
_DEVICE_TYPES = (0o020000, 0o060000)  # S_IFCHR, S_IFBLK
_OTHER_TYPES = (0, 0o010000, 0o100000, 0o140000)  # unspecified (a file), S_IFIFO, S_IFREG, S_IFSOCK


def _by_mode(call: str, index: int, kinds, action: str, errno_ret: int | None = None) -> dict:
    entry = {"names": [call], "action": action, "args": [
        {"index": index, "value": _S_IFMT, "valueTwo": k, "op": "SCMP_CMP_MASKED_EQ"} for k in kinds]}
    return entry if errno_ret is None else {**entry, "errnoRet": errno_ret}


ROOT_EMULATION = [{"names": FAKED, "action": "SCMP_ACT_ERRNO", "errnoRet": 0}] + [
    _by_mode(call, index, _DEVICE_TYPES, "SCMP_ACT_ERRNO", 0) for call, index in (("mknod", 1), ("mknodat", 2))] + [
    _by_mode(call, index, _OTHER_TYPES, "SCMP_ACT_ALLOW") for call, index in (("mknod", 1), ("mknodat", 2))]
_EMULATED = set(FAKED) | {"mknod", "mknodat"}


def load_file(path: str) -> dict:
    """The profile in ``path``, checked (:class:`ProfileError` names what is wrong)."""
    try:
        with open(path, "rb") as f:
            text = f.read(4 << 20)
    except OSError as e:
        raise UsageError(f"--security-opt seccomp={path}: {(e.strerror or str(e)).lower()}",
                         "give the path of a JSON profile in Docker's format") from None
    try:
        profile = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProfileError(path, f"not JSON ({e})") from None
    check(profile, path)
    return profile


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ProfileError(where, what)


def _check_action(name, where: str) -> None:
    from rootless.base.seccomp import ACTIONS
    _require(isinstance(name, str), where, "the action must be a string")
    _require(name != "SCMP_ACT_NOTIFY", where, "SCMP_ACT_NOTIFY needs a listener, which rootless does not run")
    _require(name in ACTIONS, where, f"unknown action {name!r}")


def _check_errno(value, where: str) -> None:
    _require(value is None or (type(value) is int and 0 <= value < 4096), where, "errnoRet must be an errno number")


def check(profile, where: str = "") -> None:
    """Refuse what Docker's runtime would refuse, or what this one cannot apply, with the entry."""
    from rootless.base.seccomp import OPS
    where = where or "profile"
    _require(isinstance(profile, dict), where, "the profile must be a JSON object")
    _check_action(profile.get("defaultAction"), f"{where}: defaultAction")
    _check_errno(profile.get("defaultErrnoRet"), f"{where}: defaultErrnoRet")
    _require(not profile.get("flags"), f"{where}: flags", "seccomp filter flags are not supported")
    _require(not profile.get("listenerPath"), f"{where}: listenerPath", "a seccomp notify listener is not supported")
    arches = _list(profile, "architectures")
    _require(isinstance(arches, list) and all(isinstance(a, str) for a in arches), f"{where}: architectures",
             "must be a list of names like SCMP_ARCH_X86_64")
    archmap = _list(profile, "archMap")
    _require(isinstance(archmap, list) and all(
        isinstance(m, dict) and isinstance(m.get("architecture"), str)
        and isinstance(m.get("subArchitectures") or [], list)
        and all(isinstance(s, str) for s in m.get("subArchitectures") or []) for m in archmap),
        f"{where}: archMap", "must be a list of {architecture, subArchitectures}")
    calls = _list(profile, "syscalls")
    _require(isinstance(calls, list), f"{where}: syscalls", "must be a list")
    for i, entry in enumerate(calls):
        at = f"{where}: syscalls[{i}]"
        _require(isinstance(entry, dict), at, "must be an object")
        for key, kind in _FIELDS.items():
            _require(entry.get(key) is None or isinstance(entry[key], kind), f"{at}.{key}",
                     f"must be a {kind.__name__}")
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        _require(bool(names) and all(isinstance(n, str) and n for n in names), f"{at}.names",
                 "must name at least one system call")
        _check_action(entry.get("action"), f"{at}.action")
        _check_errno(entry.get("errnoRet"), f"{at}.errnoRet")
        for j, arg in enumerate(entry.get("args") or []):
            aat = f"{at}.args[{j}]"
            _require(isinstance(arg, dict), aat, "must be an object")
            _require(type(arg.get("index")) is int and 0 <= arg["index"] <= 5, f"{aat}.index", "must be 0 to 5")
            for key in ("value", "valueTwo"):
                _require(arg.get(key) is None or (type(arg[key]) is int and 0 <= arg[key] < 1 << 64), f"{aat}.{key}",
                         "must be an unsigned 64-bit number")
            _require(arg.get("op") in OPS, f"{aat}.op", f"unknown comparison {arg.get('op')!r}")
        for key in ("includes", "excludes"):
            cond = entry.get(key) or {}
            for field in ("caps", "arches"):
                vals = cond.get(field) or []
                _require(isinstance(vals, list) and all(isinstance(v, str) for v in vals), f"{at}.{key}.{field}",
                         "must be a list of names")
            _require(cond.get("minKernel") is None or _kernel_tuple(cond["minKernel"]) is not None,
                     f"{at}.{key}.minKernel", "must be a version like 4.8")


def _list(d: dict, key: str):
    value = d.get(key)
    return [] if value is None else value


def _kernel_tuple(text) -> tuple | None:
    if not isinstance(text, str):
        return None
    parts = text.split("-", 1)[0].split(".")
    try:
        return tuple(int(p) for p in parts[:3]) if parts and parts[0] else None
    except ValueError:
        return None


def _lib_arch(name: str) -> str:
    return name.removeprefix("SCMP_ARCH_").lower()


def resolve(profile: dict, caps, machine: str, kernel: str, emulate_root: bool = False):
    """(default action, extra architectures, rules) of :func:`rootless.base.seccomp.compile_bpf`
    for a container keeping ``caps`` (names like SYS_ADMIN) on ``machine`` with ``kernel``; with
    ``emulate_root``, :data:`ROOT_EMULATION`'s rules replace the profile's for those calls."""
    from rootless.base.seccomp import action
    have = {"CAP_" + c.upper().removeprefix("CAP_") for c in caps}
    host_arches = set(_ARCH_NAMES.get(machine, (machine,)))
    release = _kernel_tuple(kernel) or (0,)
    default = action(profile["defaultAction"], profile.get("defaultErrnoRet"))

    def applies(cond: dict, include: bool) -> bool:
        caps_ = {"CAP_" + c.upper().removeprefix("CAP_") for c in cond.get("caps") or []}
        arches = set(cond.get("arches") or [])
        minimum = _kernel_tuple(cond.get("minKernel")) if cond.get("minKernel") else None
        if include:
            return caps_ <= have and (not arches or bool(arches & host_arches)) \
                and (minimum is None or release >= minimum)
        return not (caps_ & have) and not (arches & host_arches) and (minimum is None or release < minimum)

    rules = []
    entries = profile.get("syscalls") or []
    if emulate_root:
        entries = [{**e, "names": [n for n in _names(e) if n not in _EMULATED]} for e in entries] + ROOT_EMULATION
    for entry in entries:
        if not (applies(entry.get("includes") or {}, True) and applies(entry.get("excludes") or {}, False)):
            continue
        act = action(entry["action"], entry.get("errnoRet"))
        if act == default:
            continue  # libseccomp refuses a rule that says what the default says
        args = [(a["index"], _op(a["op"]), a.get("value") or 0, a.get("valueTwo") or 0)
                for a in entry.get("args") or []]
        indexes = [a[0] for a in args]
        groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
        rules += [(act, name, tuple(group)) for name in _names(entry) for group in groups]
    return default, _arches(profile, machine), rules


def _names(entry: dict) -> list[str]:
    return entry.get("names") or ([entry["name"]] if entry.get("name") else [])


def _op(name: str) -> int:
    from rootless.base.seccomp import OPS
    return OPS[name]


def _arches(profile: dict, machine: str) -> tuple[str, ...]:
    """The 32-bit ABIs of this host that the profile names (archMap's entry for the host, or its
    architectures list): the filter covers them; others cannot run here."""
    native = _ARCH_NAMES.get(machine, (machine,))[0]
    named = set()
    for entry in profile.get("archMap") or []:
        if _lib_arch(entry["architecture"]) == native:
            named |= {_lib_arch(s) for s in entry.get("subArchitectures") or []}
    named |= {_lib_arch(a) for a in profile.get("architectures") or []}
    return tuple(a for a in _SUB_ARCHES.get(machine, ()) if a in named)


UNCONFINED = {"defaultAction": "SCMP_ACT_ALLOW"}


def program(setting, caps, cache_dir: str, emulate_root: bool = False) -> bytes | None:
    """The BPF program of a container's ``seccomp`` setting (True: the default profile; a dict:
    ``{"profile": ...}`` from ``--security-opt seccomp=FILE``; false: none) for capabilities
    ``caps`` (None: Docker's default set), with root emulation or not (without a profile, a filter
    of root emulation alone). Compiled once per profile, capabilities, emulation, architecture and
    kernel, kept in ``cache_dir`` as ``seccomp-KEY.bpf`` (written atomically)."""
    if not setting and not emulate_root:
        return None
    if not setting:
        setting = {"profile": UNCONFINED}
    import binascii  # built in: hashlib's start-up cost is a millisecond of every run

    from rootless.runtime.security import DEFAULT_CAPS
    caps = sorted(DEFAULT_CAPS if caps is None else caps)
    if isinstance(setting, dict):
        profile = setting["profile"]
        text = json.dumps(profile, sort_keys=True).encode()
    else:
        profile = None
        with open(DEFAULT_PATH, "rb") as f:
            text = f.read()
    uname = os.uname()
    text += f"\0{PROGRAM_VERSION} {uname.machine} {uname.release} {emulate_root} {' '.join(caps)}".encode()
    key = f"{binascii.crc32(text):08x}{binascii.crc_hqx(text, 0):04x}{len(text):x}"
    path = os.path.join(cache_dir, f"seccomp-{key}.bpf")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data and len(data) % 8 == 0:
            return data
    except OSError:
        pass
    data = compile_profile(profile if profile is not None else json.loads(text.split(b"\0", 1)[0]), caps,
                           emulate_root)
    from rootless.base.atomic import write_bytes
    try:
        write_bytes(path, data, 0o600)
    except OSError:
        pass  # not cached: compiled again next time
    return data


def compile_profile(profile: dict, caps, emulate_root: bool = False) -> bytes:
    """The profile's BPF program for ``caps`` on this host (not cached)."""
    from rootless.base import seccomp
    uname = os.uname()
    default, arches, rules = resolve(profile, caps, uname.machine, uname.release, emulate_root)
    try:
        return seccomp.compile_bpf(default, arches, rules)
    except seccomp.RuleError as e:
        raise ProfileError("", str(e)) from None


def setting_for(value: str) -> dict | bool:
    """The container's ``seccomp`` setting for ``--security-opt seccomp=VALUE``."""
    if value == "unconfined":
        return False
    return {"profile": load_file(value)}
