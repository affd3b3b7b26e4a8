"""attach (with detach keys), run -it detaching, mount/unmount, and the daemon hint."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from tests.conftest import Rootless, rootless_argv, status, wait_for

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


class Terminal:
    """The CLI in a pseudo-terminal, as a person types into it."""

    def __init__(self, rl: Rootless, args: list[str]):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.p = subprocess.Popen(rootless_argv() + args, env=rl.env, stdin=slave, stdout=slave, stderr=slave,
                                  start_new_session=True)
        os.close(slave)
        self.out = b""

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, marker: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.out:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.master], [], [], max(0, left))
            if not r:
                pytest.fail(f"{marker!r} did not appear; got {self.out!r}")
            try:
                self.out += os.read(self.master, 65536)
            except OSError:
                pytest.fail(f"the terminal closed before {marker!r}; got {self.out!r}")

    def close(self) -> int:
        code = self.p.wait(timeout=30)
        os.close(self.master)
        return code


def test_attach_streams_output_and_returns_the_exit_code(bb):
    bb("run", "-d", "--name", "a1", "busybox", "sh", "-c",
       "read x < /dev/null; i=0; while [ $i -lt 30 ]; do echo tick$i; i=$((i+1)); sleep 0.1; done; exit 5")
    r = bb("attach", "a1", timeout=60, expect=5)
    assert "tick29" in r.out


def test_attach_input_end_closes_the_input_only_with_stdin_once(bb):
    """Docker's rule: the end of an attach's input closes the container's input only under
    ``StdinOnce`` (``run -i``, ``create -i``); a ``run -di`` container keeps its input open and
    running, for a later attach, while the attach waits for its end."""
    bb("run", "-di", "--name", "keep", "busybox", "sh", "-c", "while read x; do echo got-$x; done; echo closed")
    first = subprocess.Popen(rootless_argv() + ["attach", "keep"], env=bb.env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    first.stdin.write(b"one\n")
    first.stdin.close()  # the attach's input ends
    assert first.stdout.readline() == b"got-one\n"
    second = subprocess.Popen(rootless_argv() + ["attach", "keep"], env=bb.env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    second.stdin.write(b"two\n")
    second.stdin.flush()
    assert second.stdout.readline() == b"got-two\n"  # the input was still open
    assert status(bb, "keep") == "running"
    bb("stop", "-t", "1", "keep")
    first.wait(timeout=30)
    second.wait(timeout=30)
    bb("create", "-i", "--name", "once", "busybox", "sh", "-c", "while read x; do echo got-$x; done; echo closed")
    r = bb("start", "-ai", "once", input="three\n", timeout=30)
    assert r.out == "got-three\nclosed\n"


def test_attach_to_a_tty_container_types_and_detaches(bb):
    bb("run", "-dit", "--name", "t1", "busybox", "sh")
    term = Terminal(bb, ["attach", "t1"])
    term.type(b"echo $((40+2))\n")
    term.expect(b"42")
    term.type(b"\x10\x11")  # ctrl-p ctrl-q
    assert term.close() == 0
    assert status(bb, "t1") == "running"
    term = Terminal(bb, ["attach", "--detach-keys", "ctrl-x", "t1"])
    term.type(b"echo again\n")
    term.expect(b"again")
    term.type(b"exit 3\n")
    assert term.close() == 3
    assert status(bb, "t1") == "exited"


def test_run_it_detaches_with_the_keys_and_the_container_keeps_running(bb):
    term = Terminal(bb, ["run", "-it", "--name", "t2", "busybox", "sh"])
    term.expect(b"/ # ")  # the shell's prompt: the session is up (and the terminal raw)
    term.type(b"echo $((20+1))\n")
    term.expect(b"21")
    term.type(b"\x10\x11")
    assert term.close() == 0
    assert status(bb, "t2") == "running"
    assert "21" in bb("logs", "t2").out
    bb("rm", "-f", "t2")


def test_attach_to_a_stopped_container_is_an_error(bb):
    bb("create", "--name", "c", "busybox", "true")
    assert "stopped container" in bb("attach", "c", expect=1).err


def test_mount_gives_host_side_access_and_unmount_releases_it(bb):
    bb("create", "--name", "m", "busybox", "sh", "-c", "cat /from-host")
    path = bb("mount", "m").out.strip()
    assert os.path.isfile(os.path.join(path, "bin", "busybox"))
    assert bb("mount", "m").out.strip() == path  # mounted once
    bb("unmount", "m")
    wait_for(lambda: not os.path.exists(path), what="the mount to go")
    bb("run", "-d", "--name", "r", "busybox", "sh", "-c", "echo live > /live.txt; sleep 30")
    live = bb("mount", "r").out.strip()
    wait_for(lambda: os.path.exists(os.path.join(live, "live.txt")), what="the running container's file")
    bb("rm", "-f", "r", "m")


def test_a_daemon_that_forks_into_the_background_gets_a_hint(bb):
    bb("run", "--name", "d", "busybox", "sh", "-c", "sleep 60 & echo forked")
    assert "daemon" in bb("ps", "-a", "--filter", "name=d").out
    assert "daemon off" in bb("logs", "d").err
    assert "foreground" in bb("inspect", "-f", "{{.State.Error}}", "d").out
    bb("run", "--name", "quick", "busybox", "true")
    assert "daemon" not in bb("ps", "-a", "--filter", "name=quick").out


NOT_A_TTY = "the input device is not a TTY"


def test_a_terminal_fed_from_our_input_needs_a_terminal_here(busybox):
    """As Docker's CLI: `run -it`, `exec -it` and `attach` to a `-t` container refuse piped or
    redirected input (exit 1, nothing made); `-t` alone, `-i` alone, `-d`, `attach --no-stdin` and
    `start -ai` go on."""
    bb = busybox
    r = bb("run", "-it", "--name", "no", "busybox", "true", expect=1)
    assert r.err.startswith(f"rootless: error: {NOT_A_TTY}\n") and "Traceback" not in r.err
    assert bb("ps", "-aq").out == ""  # refused before anything was made
    assert bb("run", "--rm", "-t", "busybox", "echo", "t-only").out == "t-only\r\n"
    assert bb("run", "--rm", "-i", "busybox", "cat", input="piped\n").out == "piped\n"
    bb("run", "-dit", "--name", "t3", "busybox", "sh", "-c", "sleep 2; echo bye")
    assert NOT_A_TTY in bb("exec", "-it", "t3", "true", expect=1).err
    assert NOT_A_TTY in bb("exec", "-ti", "t3", "true", input="x\n", expect=1).err
    bb("exec", "-t", "t3", "true")
    assert bb("exec", "-i", "t3", "cat", input="in\n").out == "in\n"
    bb("exec", "-itd", "t3", "true")
    assert NOT_A_TTY in bb("attach", "t3", expect=1).err
    assert "bye" in bb("attach", "--no-stdin", "t3", timeout=30).out
    bb("create", "-it", "--name", "t4", "busybox", "echo", "started")
    assert "started" in bb("start", "-ai", "t4", timeout=30).out
    bb("rm", "-f", "t3", "t4")

