"""libseccomp, the one place it is called (through ctypes; the library ships with systemd on every
Debian and Ubuntu host): a filter that makes the listed system calls fail with EPERM.

The filter is built and loaded in the container's process, after its capabilities are set and
before it changes identity and execs. libseccomp's own no_new_privs switch is turned off: the
process is root of its user namespace then (CAP_SYS_ADMIN there is what the kernel asks for), and
Docker's containers run setuid programs under their seccomp profile.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from rootless.base.errors import HostError

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_NNP = 3
_ARCH_EXTRA = {"x86_64": (0x40000003, 0x4000003E),  # i386 and x32 programs, as Docker allows them
               "aarch64": (0x40000028,)}  # 32-bit arm


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


@functools.lru_cache(maxsize=1)
def library():
    """libseccomp, opened once. Call it before the container's root replaces the host's: the
    library stays mapped, its file need not be found afterwards."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise HostError("libseccomp is missing: the default seccomp profile cannot be loaded",
                        "install libseccomp2, or run with --security-opt seccomp=unconfined") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def deny(syscalls) -> int:
    """Load a filter in this process: every call named in ``syscalls`` fails with EPERM, the
    others are allowed. The number of calls it denies (names this kernel's architecture does not
    have are skipped)."""
    lib = library()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise HostError("libseccomp could not make a filter", "run with --security-opt seccomp=unconfined")
    try:
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        for arch in _ARCH_EXTRA.get(os.uname().machine, ()):
            lib.seccomp_arch_add(ctx, arch)  # an arch the kernel lacks: refused, and that is fine
        denied = 0
        for name in syscalls:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue
            if lib.seccomp_rule_add(ctx, _act_errno(errno.EPERM), nr, 0) == 0:
                denied += 1
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise HostError(f"loading the seccomp filter failed: {errno.errorcode.get(-rc, rc)}",
                            "run with --security-opt seccomp=unconfined")
        return denied
    finally:
        lib.seccomp_release(ctx)
