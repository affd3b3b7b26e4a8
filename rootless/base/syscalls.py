"""The kernel calls Python 3.11's standard library lacks, through one ctypes handle.

Every function raises OSError with the real errno (``use_errno=True``).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long
SYS_pivot_root = 155  # x86_64
if os.uname().machine == "aarch64":
    SYS_pivot_root = 41


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    """prctl(2) with one or two arguments, the others zero (as PR_SET_NO_NEW_PRIVS requires). A container's
    start makes these calls itself: python-prctl's import costs more than a millisecond on its path."""
    _check(_libc.prctl(option, arg, arg3, 0, 0), "prctl")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) of this thread: the three sets as bit masks (bit N: capability N)."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
    data = (_CapData * 2)(*[_CapData((effective >> s) & 0xFFFFFFFF, (permitted >> s) & 0xFFFFFFFF,
                                     (inheritable >> s) & 0xFFFFFFFF) for s in (0, 32)])
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def setdomainname(name: str) -> None:
    """The NIS domain name of the caller's UTS namespace (``--domainname``)."""
    data = name.encode()
    _check(_libc.setdomainname(ctypes.c_char_p(data), ctypes.c_size_t(len(data))), "setdomainname")


def syncfs(path: str) -> None:
    """Write out everything of the filesystem that holds ``path`` (one sync for many files)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.syncfs(fd), f"syncfs {path}")
    finally:
        os.close(fd)


PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_STOP = 128
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> None:
    if _libc.ptrace(request, pid, addr, data) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace: {os.strerror(err)}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(SYS_pivot_root, _b(new_root), _b(put_old)), "pivot_root")


# openat2(2) (Linux 5.6): a path resolved as if the directory were the root of the filesystem
SYS_openat2 = 437  # the same number on every architecture
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """A descriptor of ``path`` under ``dir_fd`` (``O_CLOEXEC`` added); ``resolve``: RESOLVE_* flags.
    EAGAIN (a rename raced a ``..``) is retried a few times."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    for _ in range(16):
        fd = _libc.syscall(ctypes.c_long(SYS_openat2), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path)),
                           ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != 11:  # EAGAIN
            break
    raise OSError(err, f"openat2: {os.strerror(err)}", path)


def signalfd(signals: Iterable[int]) -> int:
    """A new descriptor that is readable while one of ``signals`` is pending (blocked ones: see
    ``signal.pthread_sigmask``); inheritable, so that a program exec'd next can wait on it."""
    mask = (ctypes.c_ulong * 16)()  # glibc's sigset_t
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    for sig in signals:
        mask[(int(sig) - 1) // bits] |= 1 << ((int(sig) - 1) % bits)
    fd = _libc.signalfd(-1, ctypes.byref(mask), 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"signalfd: {os.strerror(err)}")
    return fd
