"""The one place that starts external programs.

Argv lists only, never a shell. Failures become RootlessError naming the
program, its exit code and the last line it printed.
"""

from __future__ import annotations

import os
import shutil

from rootless.base.errors import CommandNotExecutable, CommandNotFound, HostError, RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
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
        raise HostError(f"{argv[0]} not found",
                        f"install the package that provides {os.path.basename(argv[0])}") from None
    except subprocess.TimeoutExpired:
        raise RootlessError(f"{os.path.basename(argv[0])} did not finish within {timeout:g}s") from None
    if check and cp.returncode != 0:
        last = (cp.stderr or cp.stdout).decode(errors="replace").strip().splitlines()
        detail = last[-1] if last else f"exit code {cp.returncode}"
        raise RootlessError(f"{os.path.basename(argv[0])} failed: {detail}")
    return cp


def start_syncfs(path: str) -> int | None:
    """``sync -f PATH`` in the background: the writeback of the filesystem holding ``path`` begun
    while the caller goes on (its own ``syncfs`` later finds little left); the pid for
    :func:`reap`, or None where there is no ``sync`` (nothing lost: the caller's sync does it all)."""
    exe = which("sync")
    if exe is None:
        return None
    try:
        return os.posix_spawn(exe, [exe, "-f", path], os.environ)
    except OSError:
        return None


def reap(pid: int | None) -> None:
    """Wait for a helper started in the background (its outcome does not matter)."""
    if pid is not None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def run_all(argvs: list[list[str]], timeout: float = 10) -> None:
    """Run short helpers concurrently (posix_spawn, no subprocess import); raise if one fails."""
    import select
    import time
    running = []
    try:
        for argv in argvs:
            r, w = os.pipe()
            try:
                pid = os.posix_spawn(argv[0], argv, os.environ,
                                     file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
            except FileNotFoundError:
                os.close(r)
                raise HostError(f"{argv[0]} not found",
                                f"install the package that provides {os.path.basename(argv[0])}") from None
            finally:
                os.close(w)
            running.append((argv, pid, r))
        deadline = time.monotonic() + timeout
        failures = []
        for argv, pid, r in running:
            out = b""
            while True:
                ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise RootlessError(f"{os.path.basename(argv[0])} did not finish within {timeout:g}s")
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                out += chunk
            _, status = os.waitpid(pid, 0)
            if status != 0:
                lines = out.decode(errors="replace").strip().splitlines()
                failures.append(f"{os.path.basename(argv[0])} failed: "
                                f"{lines[-1] if lines else os.waitstatus_to_exitcode(status)}")
        if failures:
            raise RootlessError("; ".join(failures), "check your /etc/subuid and /etc/subgid ranges (`rootless info`)")
    finally:
        for _argv, pid, r in running:
            try:
                os.close(r)
            except OSError:
                pass
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


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
