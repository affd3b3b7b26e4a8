"""Docker's security flags as data: ``--cap-add``/``--cap-drop``, ``--privileged``,
``--security-opt`` and ``--device``, checked and turned into what the container gets (a
capability set, the no_new_privs flag, the device nodes to bind). Pure: the in-namespace side
(:mod:`rootless.runtime.child`) and the mount plan apply it.
"""

from __future__ import annotations

import os
import stat

from rootless.base.errors import UsageError

# Linux capabilities by number (capability.h); the kernel may know fewer (cap_last_cap).
ALL_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
            "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
            "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
            "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
            "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
            "CHECKPOINT_RESTORE")
# Docker's default set.
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


def _cap_name(text: str, flag: str) -> str:
    name = text.strip().upper().removeprefix("CAP_")
    if name != "ALL" and name not in ALL_CAPS:
        raise UsageError(f"unknown capability: {text!r} (for {flag})", "names as in capabilities(7), like NET_ADMIN")
    return name


def capabilities(cap_add=(), cap_drop=(), privileged: bool = False) -> tuple[str, ...]:
    """The capability set (bounding set of the container's processes), Docker's rules: the default
    set, ``--cap-add`` then ``--cap-drop``; ``ALL`` in either means every capability;
    ``--privileged`` gives all."""
    if privileged:
        return ALL_CAPS
    adds = [_cap_name(c, "--cap-add") for c in cap_add]
    drops = [_cap_name(c, "--cap-drop") for c in cap_drop]
    if "ALL" in adds:
        have = set(ALL_CAPS)
    elif "ALL" in drops:
        have = set(adds)
    else:
        have = set(DEFAULT_CAPS) | set(adds)
    have -= {d for d in drops if d != "ALL"}
    if "ALL" in adds:
        have -= set(drops)
    return tuple(c for c in ALL_CAPS if c in have)


def security_opts(opts) -> dict:
    """``--security-opt`` (``KEY=VALUE``, or Docker's older ``KEY:VALUE``):
    ``no-new-privileges[=true|false]``; ``seccomp=unconfined`` (no filter) or
    ``seccomp=PROFILE.json`` (Docker's format: its path under ``seccomp``);
    ``root-emulation[=on|off|auto]`` (ownership and identity changes succeed without effect, see
    :data:`rootless.runtime.seccompprofile.ROOT_EMULATION`; auto: in single-uid mode); ``label=...`` and
    ``apparmor=unconfined`` are accepted (no label or AppArmor profile is applied); anything else
    is refused."""
    out = {"no_new_privs": False, "seccomp": True, "root_emulation": "auto"}
    for text in opts:
        sep_char = "=" if "=" in text or text == "no-new-privileges" else ":"
        key, sep, value = text.partition(sep_char)
        if key == "no-new-privileges":
            if sep and value.lower() not in ("true", "false", "1", "0"):
                raise UsageError(f"invalid --security-opt {text!r}", "use no-new-privileges or no-new-privileges=false")
            out["no_new_privs"] = not sep or value.lower() in ("true", "1")
        elif key == "seccomp" and value:
            out["seccomp"] = False if value == "unconfined" else value
        elif key == "root-emulation":
            mode = {"": "on", "true": "on", "on": "on", "1": "on", "false": "off", "off": "off", "0": "off",
                    "auto": "auto"}.get(value.lower())
            if mode is None or (sep and not value):
                raise UsageError(f"invalid --security-opt {text!r}", "use root-emulation=on, =off or =auto")
            out["root_emulation"] = mode
        elif (key, value) == ("apparmor", "unconfined") or (key == "label" and value):
            continue
        else:
            raise UsageError(f"invalid --security-opt: {text!r}",
                             "use no-new-privileges, seccomp=unconfined, seccomp=PROFILE.json, root-emulation, "
                             "label=... or apparmor=unconfined")
    return out


def devices(texts) -> tuple[tuple[str, str], ...]:
    """``--device HOST[:CONTAINER][:PERMISSIONS]``: (host node, container path) pairs. The node is
    bind-mounted (a user namespace cannot make device nodes), so it must be a device this user
    may open."""
    out = []
    for text in texts:
        parts = text.split(":")
        host = parts[0]
        target = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        if len(parts) > 3 or not host.startswith("/") or not perms or set(perms) - set("rwm") or "\0" in text:
            raise UsageError(f"invalid --device {text!r}", "use /dev/HOST[:/dev/CONTAINER][:rwm]")
        try:
            st = os.stat(host)
        except OSError as e:
            raise UsageError(f"--device {host}: {(e.strerror or str(e)).lower()}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise UsageError(f"--device {host}: not a device node")
        want = (os.R_OK if "r" in perms else 0) | (os.W_OK if "w" in perms else 0)
        if want and not os.access(host, want):
            raise UsageError(f"--device {host}: you may not open it ({perms})",
                             "a rootless container gets only the devices its user can open (check the node's group)")
        out.append((host, target))
    return tuple(out)


def host_devices(dev: str = "/dev", skip=()) -> tuple[tuple[str, str], ...]:
    """``--privileged``: the device nodes in ``/dev`` (and ``/dev/net``) that this user may read
    and write, but ``skip`` (the names the runtime's own /dev has)."""
    out = []
    try:
        names = sorted(os.listdir(dev)) + ["net/tun"]
    except OSError:
        return ()
    for name in names:
        if name in skip:
            continue
        path = os.path.join(dev, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and os.access(path, os.R_OK | os.W_OK):
            out.append((path, path))
    return tuple(out)
