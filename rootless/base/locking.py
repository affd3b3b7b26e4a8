"""File locks on separate lock files (flock), naming the holder when they block."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from rootless.base.errors import RootlessError


@contextlib.contextmanager
def locked(path: str, timeout: float = 60.0, shared: bool = False) -> Iterator[None]:
    """Hold an flock on ``path`` (created if missing) for the duration of the block.

    The holder's pid is written into the lock file so that a lock that cannot
    be taken can name who holds it. flock locks die with their holder, so a
    killed process never leaves a stale lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    raise RootlessError(
                        f"timed out waiting for lock {path}" + (f" held by pid {holder}" if holder else ""),
                        "another rootless command is still running; wait for it or kill it",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        if not shared:
            pid = str(os.getpid()).encode()
            try:  # only to name the holder: a full disk must not fail the locked operation (over
                os.pwrite(fd, pid, 0)  # the old content first: that needs no new block)
                os.ftruncate(fd, len(pid))
            except OSError:
                pass
        yield
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
