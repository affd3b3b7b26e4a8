"""libseccomp, the one place it is called (through ctypes; the library ships with systemd on every
Debian and Ubuntu host): rules in, a classic BPF program out.

The program is compiled once per profile (the runtime caches it) and loaded in the container's
process with prctl, after its capabilities are set and before it changes identity and execs: as
root of its user namespace (CAP_SYS_ADMIN there is what the kernel asks for), so without
no_new_privs, as Docker's containers run setuid programs under their profile.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from rootless.base.errors import HostError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# libseccomp's ABI (seccomp.h): actions (the errno or trace value goes in the low 16 bits) and
# argument comparisons, under the names Docker's profiles use.
ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
           "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
           "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ALLOW = ACTIONS["SCMP_ACT_ALLOW"]


def action(name: str, value: int | None = None) -> int:
    """The action number of ``name`` (a key of :data:`ACTIONS`); ``value`` is the errno of
    SCMP_ACT_ERRNO (EPERM when None) or the message of SCMP_ACT_TRACE."""
    code = ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        return code | ((errno.EPERM if value is None else value) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return code | ((value or 0) & 0xFFFF)
    return code


@functools.lru_cache(maxsize=1)
def _arg_cmp() -> type[ctypes.Structure]:
    """``struct scmp_arg_cmp`` (made on first use: a Structure class costs a millisecond, and the
    container's start only loads programs)."""
    class ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]
    return ArgCmp


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """libseccomp, opened once."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise HostError("libseccomp is missing: the seccomp profile cannot be compiled",
                        "install libseccomp2, or run with --security-opt seccomp=unconfined") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_arg_cmp())]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


class RuleError(ValueError):
    """libseccomp refused a rule (the profile's fault): the message names the call."""


def compile_bpf(default_action: int, arches: Iterable[str],
                rules: Iterable[tuple[int, str, Sequence[Sequence[int]]]]) -> bytes:
    """A classic BPF program (``struct sock_filter`` array) for this machine's architecture and
    ``arches`` (libseccomp names, like ``x86``), with the ``default_action`` and the ``rules``:
    (action, system call name, ((arg index, op, datum a, datum b), ...)), the comparisons of one
    rule all holding. Names no architecture has are skipped. Nothing is loaded here."""
    lib = library()
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise HostError("libseccomp could not make a filter", "run with --security-opt seccomp=unconfined")
    try:
        for name in arches:
            arch = lib.seccomp_arch_resolve_name(name.encode())
            if arch:
                lib.seccomp_arch_add(ctx, arch)  # already there, or one the kernel lacks: fine
        for act, name, args in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: no architecture has it
                continue
            cmp = _arg_cmp()
            array = (cmp * len(args))(*(cmp(*a) for a in args))
            rc = lib.seccomp_rule_add_array(ctx, act, nr, len(args), array)
            if rc < 0:
                raise RuleError(f"the rule for {name} was refused by libseccomp: {os.strerror(-rc)}")
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    """The program libseccomp writes to a descriptor: a memfd, never a pipe, which nobody would
    drain while libseccomp writes (a user with many pipes open gets 8 KiB pipes, and a program of
    the default profile is larger: the write would block for ever)."""
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise HostError(f"libseccomp could not export the filter: {os.strerror(-rc)}",
                            "run with --security-opt seccomp=unconfined")
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


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
