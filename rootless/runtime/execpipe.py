"""The keeper learns that a container's command was exec'd: a close-on-exec pipe from PID 1.

PID 1 (or, with ``--init``, its child) holds the write end until its ``execve``; the end of the
pipe means the command runs. A setup or exec that fails writes its message there first (after
sending the error to the CLI on the channel), so the keeper records it rather than a start.
"""

from __future__ import annotations

import os
import select


def open_pipe() -> tuple[int, int]:
    """(the keeper's read end, PID 1's write end), both close-on-exec."""
    return os.pipe2(os.O_CLOEXEC)


def await_exec(exec_r: int, watch) -> str:
    """Until the command is exec'd (the pipe's end) or failed (its message): "" or that message.
    ``watch`` (an ``exitwatch.ExitWatch`` or None) serves PID 1's ptrace stops meanwhile."""
    data = b""
    try:
        while True:
            ready, _, _ = select.select([exec_r], [], [], watch.timeout() if watch else None)
            if watch:
                watch.tick()
            if ready:
                chunk = os.read(exec_r, 4096)
                if not chunk:
                    if watch and not data:
                        watch.executed()
                    break
                data += chunk
    finally:
        os.close(exec_r)
    return data.decode(errors="replace")


def exec_failed(exec_w: int, message: str) -> None:
    """PID 1's side: the command was not exec'd, and why (the keeper records the message)."""
    try:
        os.write(exec_w, (message or "the container's command did not start").encode()[:4000])
    except OSError:
        pass
