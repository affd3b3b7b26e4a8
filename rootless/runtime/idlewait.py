"""The idle keeper's body: a program of about 120 bytes that sleeps until the keeper has work.

A keeper with nothing to do (:mod:`rootless.runtime.hibernate`) execs this program in its own
process: the container stays its child, every descriptor it holds stays open, and the process
costs a few kilobytes instead of a Python interpreter. The program reads what its standard input
holds (at most 4096 bytes, from offset 0: a ``struct timespec``, then ``struct pollfd`` s; see
:func:`pollfds`), waits in ``ppoll`` until one of them is ready or the time is up (retrying on
``EINTR``), then execs its own ``argv[1:]`` with its environment (the keeper's Python again). It
never reaps, reads or closes anything: what woke it is still there for the Python that follows.
Should the exec fail, it exits with 127.

The machine code is kept here with its source (assembled with GNU as; ``objdump -d`` of the
bytes gives the listing back). Machines other than x86-64 and AArch64 have no idle body: their
keepers stay Python (:func:`install` returns None).
"""

from __future__ import annotations

import os
import struct

# x86-64 (GNU as, Intel syntax):
#   _start: mov rbx, rsp              ; argc, argv, 0, envp at [rbx]
#           sub rsp, 4096
#   again:  mov eax, 17               ; pread64(0, rsp, 4096, 0): the timespec, then the pollfds
#           mov edi, 0
#           mov rsi, rsp
#           mov edx, 4096
#           xor r10d, r10d
#           syscall
#           cmp rax, 16
#           jl run                    ; not even a timespec: exec at once
#           lea rsi, [rax-16]
#           shr rsi, 3                ; nfds = the rest / sizeof(struct pollfd)
#           lea rdi, [rsp+16]
#           mov rdx, rsp              ; the timeout...
#           cmp qword ptr [rsp], 0
#           jge timed
#           xor edx, edx              ; ...or none (tv_sec < 0)
#   timed:  xor r10d, r10d            ; the signal mask unchanged
#           xor r8d, r8d
#           mov eax, 271              ; ppoll
#           syscall
#           cmp rax, -4               ; EINTR: wait again
#           je again
#   run:    mov rdi, [rbx+16]         ; execve(argv[1], &argv[1], envp)
#           lea rsi, [rbx+16]
#           mov rax, [rbx]
#           lea rdx, [rbx+rax*8+16]
#           mov eax, 59
#           syscall
#           mov edi, 127              ; exit_group(127)
#           mov eax, 231
#           syscall
_X86_64 = bytes.fromhex(
    "4889e34881ec00100000b811000000bf000000004889e6ba001000004531d20f054883f8107c2c488d70f048c1ee03"
    "488d7c24104889e248833c24007d0231d24531d24531c0b80f0100000f054883f8fc74b7488b7b10488d7310488b03"
    "488d54c310b83b0000000f05bf7f000000b8e70000000f05")

# AArch64: the same with pread64 = 67, ppoll = 73, execve = 221, exit_group = 94:
#   _start: mov x19, sp / sub sp, sp, #4096
#   again:  mov x0, #0 / mov x1, sp / mov x2, #4096 / mov x3, #0 / mov x8, #67 / svc #0
#           cmp x0, #16 / b.lt run
#           sub x1, x0, #16 / lsr x1, x1, #3 / add x0, sp, #16 / mov x2, sp
#           ldr x9, [sp] / cmp x9, #0 / b.ge timed / mov x2, #0
#   timed:  mov x3, #0 / mov x4, #0 / mov x8, #73 / svc #0
#           cmn x0, #4 / b.eq again
#   run:    ldr x0, [x19, #16] / add x1, x19, #16 / ldr x2, [x19] / add x2, x19, x2, lsl #3
#           add x2, x2, #16 / mov x8, #221 / svc #0
#           mov x0, #127 / mov x8, #94 / svc #0
_AARCH64 = bytes.fromhex(
    "f3030091ff0740d1000080d2e1030091020082d2030080d2680880d2010000d41f4000f1eb010054014000d121fc43d3"
    "e0430091e2030091e90340f93f0100f14a000054020080d2030080d2040080d2280980d2010000d41f1000b160fdff54"
    "600a40f961420091620240f9620e028b42400091a81b80d2010000d4e00f80d2c80b80d2010000d4")

_MACHINES = {"x86_64": (62, _X86_64), "aarch64": (183, _AARCH64)}  # uname's name: (e_machine, code)
_BASE = 0x400000  # where the one loadable segment goes (64 KiB aligned: any page size)
NAME = "rootless-keeper"  # the file's name is the process's name (``comm``) while it waits


def program(machine: str | None = None) -> bytes | None:
    """The static ELF executable for ``machine`` (``uname -m``; default this one's), or None."""
    e_machine, code = _MACHINES.get(machine or os.uname().machine, (0, b""))
    if not code:
        return None
    ehsize, phsize, phnum = 64, 56, 2
    start = ehsize + phsize * phnum
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01", 2, e_machine, 1, _BASE + start, ehsize, 0, 0,
                         ehsize, phsize, phnum, 0, 0, 0)
    size = start + len(code)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x10000)  # PT_LOAD, read + execute
    stack = struct.pack("<IIQQQQQQ", 0x6474E551, 6, 0, 0, 0, 0, 0, 16)  # PT_GNU_STACK: not executable
    return header + load + stack + code


def install(directory: str, create: bool = True) -> str | None:
    """The program's file in ``directory`` (written atomically, mode 0700), or None where there is
    none for this machine or it cannot be written. A file already there is used only if it holds
    exactly this program (read back each time: a keeper execs it outside any container, so a file
    changed by whatever could write the store, or another version's, is replaced by a rename,
    which leaves the keepers resting in the old one as they are). ``create=False``: a missing file
    is not written again (None): the store it was in may be being removed."""
    data = program()
    if data is None:
        return None
    path = os.path.join(directory, NAME)
    try:
        with open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                return path
    except OSError:
        if not create:
            return None
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o700)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        return None
    return path


def pollfds(fds: list[int], timeout: float | None = None) -> bytes:
    """What the program's standard input holds: the ``struct timespec`` of its wait (``timeout``
    seconds; None: no end), then a ``struct pollfd`` waiting for input (or an end) on each of ``fds``."""
    if timeout is None:
        head = struct.pack("<qq", -1, 0)
    else:
        ns = max(0, int(timeout * 1e9))
        head = struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000)
    return head + b"".join(struct.pack("<ihh", fd, 0x1, 0) for fd in fds)  # POLLIN
