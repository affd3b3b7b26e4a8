"""libseccomp, the one place it is called (through ctypes; the library ships with systemd on every
Debian and Ubuntu host): a filter that makes the listed system calls fail with EPERM.

The filter is compiled to a BPF program once (the runtime caches it by profile) and loaded in
the container's process with prctl, after its capabilities are set and before it changes
identity and execs: as root of its user namespace (CAP_SYS_ADMIN there is what the kernel asks
for), so without no_new_privs, as Docker's containers run setuid programs under their profile.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from rootless.base.errors import HostError

SCMP_ACT_ALLOW = 0x7FFF0000
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
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def compile_bpf(syscalls) -> bytes:
    """The filter as a classic BPF program (``struct sock_filter`` array): every call named in
    ``syscalls`` fails with EPERM, the others are allowed (names this architecture lacks are
    skipped). Nothing is loaded: the program is cached and loaded by :func:`load_bpf`."""
    lib = library()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise HostError("libseccomp could not make a filter", "run with --security-opt seccomp=unconfined")
    try:
        for arch in _ARCH_EXTRA.get(os.uname().machine, ()):
            lib.seccomp_arch_add(ctx, arch)  # an arch the kernel lacks: refused, and that is fine
        for name in syscalls:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0:
                lib.seccomp_rule_add(ctx, _act_errno(errno.EPERM), nr, 0)
        r, w = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            if rc < 0:
                raise HostError(f"libseccomp could not export the filter: {errno.errorcode.get(-rc, rc)}",
                                "run with --security-opt seccomp=unconfined")
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
    finally:
        lib.seccomp_release(ctx)


PROGRAM_VERSION = 1


def program(syscalls, cache_dir: str) -> bytes:
    """:func:`compile_bpf`'s program for ``syscalls``, compiled once per profile and kept in
    ``cache_dir`` (``seccomp-KEY.bpf``, written atomically)."""
    import binascii  # built in: hashlib's start-up cost is a millisecond of every run
    names = sorted(set(syscalls))
    text = f"{PROGRAM_VERSION} {os.uname().machine} {' '.join(names)}".encode()
    key = f"{len(names)}-{binascii.crc32(text):08x}-{binascii.crc_hqx(text, 0):04x}"
    path = os.path.join(cache_dir, f"seccomp-{key}.bpf")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data and len(data) % 8 == 0:
            return data
    except OSError:
        pass
    data = compile_bpf(names)
    from rootless.base.atomic import write_bytes
    try:
        write_bytes(path, data, 0o600)
    except OSError:
        pass  # not cached: compiled again next time
    return data


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def load_bpf(program: bytes) -> None:
    """Load a program of :func:`compile_bpf` in this process (as root of its user namespace:
    without no_new_privs). libc only: the container's root need not have libseccomp."""
    class SockFprog(ctypes.Structure):  # here, not at import: a Structure class costs a millisecond
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise HostError(f"loading the seccomp filter failed: {os.strerror(e)}",
                        "run with --security-opt seccomp=unconfined")
