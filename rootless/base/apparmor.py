"""Ubuntu's AppArmor restriction on unprivileged user namespaces (23.10 and later, on by default
since 24.04 and on GitHub's ubuntu-24.04 runners).

With ``kernel.apparmor_restrict_unprivileged_userns=1``, an unconfined process may still create a
user namespace, but AppArmor moves it into the ``unprivileged_userns`` profile, which denies every
capability there: the id maps, ``setgroups``, mounts and chowns then fail with EPERM. An AppArmor
profile attached to the program (``scripts/install-apparmor-profile.sh``) or the sysctl set to 0
lifts it. This module only reads: the sysctl, and the label of a process.
"""

from __future__ import annotations

import os

from rootless.base.errors import HostError

SYSCTL = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
SYSCTL_ENV = "ROOTLESS_APPARMOR_SYSCTL"  # another file in place of SYSCTL (tests)
UNPRIVILEGED_PROFILE = "unprivileged_userns"  # Ubuntu's profile for restricted namespaces
FIX = ("sudo scripts/install-apparmor-profile.sh (from the rootless source tree: a profile that allows "
       "user namespaces to the installed rootless), or sudo sysctl -w "
       "kernel.apparmor_restrict_unprivileged_userns=0")


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
