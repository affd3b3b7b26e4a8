"""The one place that starts external programs.

Argv lists only, never a shell. Failures become RootlessError naming the
program, its exit code and the last line it printed.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from rootless.errors import CommandNotExecutable, CommandNotFound, HostError, RootlessError

if TYPE_CHECKING:
    import subprocess


def which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")


def run(argv: list[str], *, timeout: float = 60, check: bool = True, input: bytes | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a helper to completion, capturing its output."""
    import subprocess  # not at module level: most commands never start a helper
    try:
        cp = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env,
                            stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise HostError(f"{argv[0]} not found", f"install the package that provides {os.path.basename(argv[0])}") from None
    except subprocess.TimeoutExpired:
        raise RootlessError(f"{os.path.basename(argv[0])} did not finish within {timeout:g}s") from None
    if check and cp.returncode != 0:
        last = (cp.stderr or cp.stdout).decode(errors="replace").strip().splitlines()
        detail = last[-1] if last else f"exit code {cp.returncode}"
        raise RootlessError(f"{os.path.basename(argv[0])} failed: {detail}")
    return cp


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    """Start a long-lived helper; the caller registers it for cleanup at once."""
    import subprocess
    try:
        return subprocess.Popen(argv, **kwargs)
    except FileNotFoundError:
        raise HostError(f"{argv[0]} not found", f"install the package that provides {os.path.basename(argv[0])}") from None


def find_executable(name: str, path: str) -> str:
    """``$PATH`` lookup inside the container, with Docker's messages and exit codes."""
    candidates = [name] if "/" in name else [os.path.join(d or ".", name) for d in path.split(":")]
    denied = None
    for c in candidates:
        if os.path.isfile(c):
            if os.access(c, os.X_OK):
                return c
            denied = c
        elif os.path.isdir(c) and "/" in name:
            raise CommandNotExecutable(f'exec "{name}": is a directory')
    if denied:
        raise CommandNotExecutable(f'exec "{name}": permission denied')
    if "/" in name:
        raise CommandNotFound(f'exec "{name}": stat {name}: no such file or directory')
    raise CommandNotFound(f'exec "{name}": executable file not found in $PATH')
