"""Ubuntu's AppArmor restriction on unprivileged user namespaces (23.10 and later, on by default
since 24.04 and on GitHub's ubuntu-24.04 runners).

With ``kernel.apparmor_restrict_unprivileged_userns=1``, an unconfined process may still create a
user namespace, but AppArmor moves it into the ``unprivileged_userns`` profile, which denies every
capability there: the id maps, ``setgroups``, mounts and chowns then fail with EPERM. An AppArmor
profile attached to the program (``scripts/install-apparmor-profile.sh``) or the sysctl set to 0
lifts it. This module reads the sysctl and the label of a process, and writes that profile for
``rootless system apparmor-profile`` (its template is the package's ``data/apparmor.profile``, so a
``pip install`` carries it).
"""

from __future__ import annotations

import os

from rootless.base.errors import HostError

SYSCTL = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
SYSCTL_ENV = "ROOTLESS_APPARMOR_SYSCTL"  # another file in place of SYSCTL (tests)
UNPRIVILEGED_PROFILE = "unprivileged_userns"  # Ubuntu's profile for restricted namespaces
FIX = ("sudo scripts/install-apparmor-profile.sh in the source tree, or after a pip install "
       'sudo "$(command -v rootless)" system apparmor-profile --install (a profile that allows '
       "user namespaces to the installed rootless), or sudo sysctl -w "
       "kernel.apparmor_restrict_unprivileged_userns=0")
PROFILE_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                                "apparmor.profile")
PROFILE_DIR = "/etc/apparmor.d"


def sysctl_text() -> str | None:
    """The sysctl's text, None when it is absent (no such kernel) or unreadable. The only reader of
    ``$ROOTLESS_APPARMOR_SYSCTL``."""
    path = os.environ.get(SYSCTL_ENV) or SYSCTL
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def restricted() -> bool:
    """Whether the restriction is on: the sysctl exists and says 1."""
    text = sysctl_text()
    return text is not None and text.strip() == "1"


def label(pid: str = "self") -> str | None:
    """The AppArmor label of a process (``unconfined``, ``rootless (unconfined)``,
    ``unprivileged_userns (enforce)``); None without AppArmor."""
    # attr/apparmor/ is the per-LSM file (Linux 5.8+); attr/current is the older, shared one
    for name in ("apparmor/current", "current"):
        try:
            with open(f"/proc/{pid}/attr/{name}") as f:
                text = f.read().strip("\0\n ")
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    return None


def profile_of(label_text: str | None) -> str | None:
    """The profile a label names (``rootless (unconfined)`` -> ``rootless``); None for no label or
    ``unconfined`` (no profile at all)."""
    if not label_text:
        return None
    name = label_text.rsplit(" (", 1)[0] if label_text.endswith(")") else label_text
    return None if name == "unconfined" else name


def in_unprivileged_profile(label_text: str | None) -> bool:
    """Whether the label is (or stacks) Ubuntu's ``unprivileged_userns`` profile: the namespace this
    process just created has no capabilities."""
    name = profile_of(label_text) or ""
    return UNPRIVILEGED_PROFILE in name.split("//&")


def restriction_error(step: str) -> HostError:
    """The one-line error for a user namespace the restriction has left without capabilities."""
    return HostError(f"{step}: refused by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1: "
                     "Ubuntu gives unprivileged user namespaces no capabilities)", f"to fix, {FIX}")


# ---- the profile that lifts it -----------------------------------------------------------------
def profile_name(path: str) -> str:
    """The profile's name for an entry point's real path: ``rootless.`` and the path, dotted."""
    return "rootless." + path.lstrip("/").replace("/", ".")


def profile(entry: str) -> tuple[str, str]:
    """(name, text) of the profile that lets the entry point ``entry`` create user namespaces: the
    template filled in with its real path (AppArmor attaches by the real path of the file the
    kernel executes, the console script itself, not its interpreter), the template's notes left out."""
    import re

    from rootless.base.errors import UsageError
    path = os.path.realpath(entry)
    if not os.path.isfile(path):
        raise UsageError(f"{entry} is not a file", 'give the rootless entry point: "$(command -v rootless)"')
    if not re.fullmatch(r"/[A-Za-z0-9._+/-]+", path):  # unquoted in the profile: nothing AppArmor reads as a glob
        raise UsageError(f"{path}: only letters, digits and ._+-/ are handled in the profile's path",
                         "install rootless under a plain path")
    name = profile_name(path)
    with open(PROFILE_TEMPLATE) as f:
        body = "".join(line for line in f if not (line.startswith("# ") or line.rstrip("\n") == "#"))
    head = f"# Written by rootless system apparmor-profile for {path}\n"
    with open(path, "rb") as f:
        first = f.readline(256)
    if first.startswith(b"#!"):
        head += (f"# It is a script ({first.decode(errors='replace').strip()}): the profile attaches to the "
                 "script itself,\n# the file the kernel executes first, and its interpreter runs under it.\n")
    return name, head + body.replace("@NAME@", name).replace("@PATH@", path)


def install_profile(entry: str, directory: str = PROFILE_DIR, parser: str = "apparmor_parser") -> str:
    """Write the profile of ``entry`` into ``directory`` (atomically) and load it with ``parser``;
    the file's path. A profile the parser refuses is removed again: nothing half-installed."""
    from rootless.base import atomic, proc
    from rootless.base.errors import HostError, RootlessError, UsageError
    name, text = profile(entry)
    if not os.path.isdir(directory):
        raise HostError(f"{directory} does not exist: AppArmor is not installed here, there is nothing to lift")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"cannot write to {directory}: installing the AppArmor profile needs root",
                         f'run it with sudo: sudo "{entry}" system apparmor-profile --install')
    if not os.path.exists(os.path.join(directory, "abi", "4.0")):
        raise HostError(f"this AppArmor has no abi/4.0 ({directory}/abi/4.0: the userns rule): it predates "
                        "the restriction, there is nothing to lift")
    program = parser if os.path.isabs(parser) else proc.which(parser)
    if not program:
        raise HostError(f"{parser} not found", "install AppArmor's tools (the package apparmor)")
    path = os.path.join(directory, name)
    atomic.write_bytes(path, text.encode(), 0o644)
    try:
        proc.run([program, "-r", path])
    except RootlessError as e:
        os.unlink(path)  # a broken file would be refused again at every boot
        raise HostError(f"{e.message}: the AppArmor profile was refused, nothing installed") from None
    return path


def uninstall_profile(entry: str, directory: str = PROFILE_DIR, parser: str = "apparmor_parser") -> str | None:
    """Unload and remove the profile written for ``entry`` (which may be gone already); its path,
    None when there was none."""
    from rootless.base import proc
    path = os.path.join(directory, profile_name(os.path.realpath(entry)))
    if not os.path.exists(path):
        return None
    program = parser if os.path.isabs(parser) else proc.which(parser)
    if program:
        proc.run([program, "-R", path], check=False)  # not loaded: removed all the same
    os.unlink(path)
    return path
