"""The exit watch (rootless.runtime.exitwatch) on a real traced child: a command that exits at once
leaving a child behind is noticed, however long the set-up before its exec took."""

import os
import signal
import time

from rootless.runtime import execpipe, exitwatch


def _watch_until_exit(watch: exitwatch.ExitWatch, pid: int) -> int:
    deadline = time.monotonic() + 30
    while watch.active and time.monotonic() < deadline:
        watch.tick()
        time.sleep(watch.timeout() or 0.01)
    if watch.final_status is not None:
        return watch.final_status
    return os.waitpid(pid, 0)[1]


def test_the_window_counts_from_the_commands_exec_not_from_the_set_up():
    """A set-up slower than the window (a loaded machine: mounts, the gate), then a command that
    backgrounds a child and exits 0: the watch still sees what it left (the daemon hint)."""
    exec_r, exec_w = execpipe.open_pipe()
    pid = os.fork()
    if pid == 0:  # PID 1's stand-in
        os.close(exec_r)
        os.setpgid(0, 0)
        time.sleep(exitwatch.WINDOW + 0.3)  # its set-up, slower than the window
        os.execv("/bin/sh", ["sh", "-c", "sleep 5 & exit 0"])
    os.close(exec_w)
    try:
        watch = exitwatch.ExitWatch(pid)
        assert watch.active, "ptrace is not allowed here"
        assert execpipe.await_exec(exec_r, watch) == ""
        status = _watch_until_exit(watch, pid)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert watch.left_children
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_command_that_exits_alone_leaves_nothing_behind():
    exec_r, exec_w = execpipe.open_pipe()
    pid = os.fork()
    if pid == 0:
        os.close(exec_r)
        os.execv("/bin/sh", ["sh", "-c", "exit 0"])
    os.close(exec_w)
    watch = exitwatch.ExitWatch(pid)
    assert execpipe.await_exec(exec_r, watch) == ""
    _watch_until_exit(watch, pid)
    assert not watch.left_children
