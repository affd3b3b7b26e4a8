"""No descriptor of the user's terminal, nor of the CLI's own pipes and files, reaches a container.

Without ``-t`` a container's fds 0, 1 and 2 are pipes relayed by the CLI or the keeper (or
``/dev/null``), as Docker and Podman do: a process that ``exec`` leaves behind must not be able
to read what the user types in the host shell after ``exec`` returned (issue 22, item 3).
With ``-t`` the container has its own pty from its own devpts. Every command runs the CLI on a
real pseudo-terminal (its controlling terminal) as the unprivileged user.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import Rootless, rootless_argv, status, wait_for

pytestmark = pytest.mark.userns

SECRET = b"typed-after-exec-secret"
ACCEPTED = re.compile(r"^(pipe:\[\d+\]|/dev/null)$")


@pytest.fixture
def bb(busybox: Rootless, tmp_path: Path):
    """busybox loaded, and a host directory (mounted at /out) where containers leave notes."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the container's root may not be the user (a subordinate uid map)
    busybox.out = out
    return busybox


def _controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class OnPty:
    """The CLI with stdin, stdout and stderr on a pty that is its controlling terminal: a shell's."""

    def __init__(self, rl: Rootless, *args: str):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(rootless_argv() + list(args), env=rl.env, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True, preexec_fn=_controlling_terminal)
        os.close(slave)
        self.out = b""

    def _pump(self, timeout: float) -> bool:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.out += data
        return bool(data)

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out: {self.proc.args}; terminal: {self.out!r}")
            self._pump(0.05)
        while select.select([self.master], [], [], 0)[0] and self._pump(0):
            pass
        return self.proc.returncode

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _fds_script(out: str) -> str:
    """Shell text writing the targets of the shell's own fds 0, 1 and 2 to ``out``."""
    # Read in command substitutions: a redirection would change the shell's own fds meanwhile.
    return ('f0=$(readlink /proc/$$/fd/0); f1=$(readlink /proc/$$/fd/1); f2=$(readlink /proc/$$/fd/2); '
            f'printf "%s\\n" "$f0" "$f1" "$f2" > {out}')


def _assert_relayed(path: Path) -> None:
    targets = path.read_text().split("\n")[:3]
    assert len(targets) == 3 and all(ACCEPTED.match(t) for t in targets), \
        f"the container's stdio is not a pipe or /dev/null: {targets}"


def _sleeper(rl: Rootless, name: str) -> None:
    rl("run", "-d", "--name", name, "-v", f"{rl.out}:/out", "busybox", "sleep", "300")
    wait_for(lambda: status(rl, name) == "running", what=f"{name} to run")


# ---- what the container's fds 0, 1, 2 are ------------------------------------------------------
@pytest.mark.parametrize("flags", [(), ("-i",)], ids=["exec", "exec-i"])
def test_exec_stdio_is_relayed_not_the_users_terminal(bb, flags):
    _sleeper(bb, "box")
    t = OnPty(bb, "exec", *flags, "box", "sh", "-c", _fds_script("/out/fds") + "; echo done-out; echo done-err >&2")
    try:
        t.type(b"\x04")  # with -i: end of input, so the relay of stdin ends as the terminal's would
        assert t.wait() == 0, t.out
        assert b"done-out" in t.out and b"done-err" in t.out, t.out
    finally:
        t.close()
    _assert_relayed(bb.out / "fds")


@pytest.mark.parametrize("flags", [(), ("-i",)], ids=["run", "run-i"])
def test_run_stdio_is_relayed_not_the_users_terminal(bb, flags):
    t = OnPty(bb, "run", "--rm", *flags, "-v", f"{bb.out}:/out", "busybox", "sh", "-c",
              _fds_script("/out/fds") + "; echo done-out; echo done-err >&2")
    try:
        t.type(b"\x04")
        assert t.wait() == 0, t.out
        assert b"done-out" in t.out and b"done-err" in t.out, t.out
    finally:
        t.close()
    _assert_relayed(bb.out / "fds")


@pytest.mark.parametrize("flags", [("-a",), ("-a", "-i")], ids=["start-a", "start-ai"])
def test_start_attached_stdio_is_relayed_not_the_users_terminal(bb, flags):
    create = ["create", "--name", "later", "-v", f"{bb.out}:/out"] + (["-i"] if "-i" in flags else [])
    bb(*create, "busybox", "sh", "-c", _fds_script("/out/fds") + "; echo done-out")
    t = OnPty(bb, "start", *flags, "later")
    try:
        t.type(b"\x04")
        assert t.wait() == 0, t.out
        assert b"done-out" in t.out, t.out
    finally:
        t.close()
    _assert_relayed(bb.out / "fds")
    bb("rm", "later")


def test_build_run_step_stdio_is_relayed(bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN for i in 0 1 2; do echo fd$i=$(readlink /proc/$$/fd/$i); done\n")
    t = OnPty(bb, "build", "--no-cache", "-t", "fds", str(ctx))
    try:
        assert t.wait(120) == 0, t.out
    finally:
        t.close()
    found = dict(re.findall(rb"fd(\d)=(\S*)", t.out))
    assert sorted(found) == [b"0", b"1", b"2"], t.out
    assert all(ACCEPTED.match(v.decode()) for v in found.values()), found


def test_the_tty_of_t_is_the_containers_own(bb):
    t = OnPty(bb, "run", "--rm", "-t", "-v", f"{bb.out}:/out", "busybox", "sh", "-c", _fds_script("/out/fds"))
    try:
        assert t.wait() == 0, t.out
    finally:
        t.close()
    targets = (bb.out / "fds").read_text().split()
    assert targets == ["/dev/pts/0"] * 3, targets  # the first pty of the container's own devpts


# ---- the leftover process: it must never read what is typed after exec returned ----------------
@pytest.mark.parametrize("flags", [(), ("-i",)], ids=["exec", "exec-i"])
def test_a_process_exec_leaves_behind_cannot_read_the_users_terminal(bb, flags):
    _sleeper(bb, "box")
    # One reader per fd (any descriptor of a pty reads it), each in the background, outliving exec.
    readers = "; ".join(f"(cat <&{i} > /out/read-{i} 2>/dev/null &)" for i in (0, 1, 2))
    t = OnPty(bb, "exec", *flags, "box", "sh", "-c", f"{readers}; echo left-behind")
    try:
        if flags:
            t.type(b"\x04")
        assert t.wait() == 0, t.out
        assert b"left-behind" in t.out, t.out
        # The user goes on typing in the shell that ran exec.
        t.type(SECRET + b"\n")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            for i in (0, 1, 2):
                f = bb.out / f"read-{i}"
                assert not (f.exists() and SECRET in f.read_bytes()), f"a container process read fd {i}"
            time.sleep(0.05)
    finally:
        t.close()
    bb("rm", "-f", "box")


# ---- not a terminal: the CLI's own pipes and files do not go in either --------------------------
@pytest.mark.parametrize("cmd", ["exec", "run"])
def test_the_clis_files_are_relayed_not_handed_in(bb, tmp_path, cmd):
    """A host file as stdin and as stdout/stderr (a CI runner's log): the container sees pipes,
    reads the file's contents to its end, and its stdout and stderr stay apart."""
    src = tmp_path / "in.txt"
    src.write_bytes(b"line one\nline two\n" * 5000)
    script = _fds_script("/out/fds") + "; cat; echo to-err >&2; exit 3"
    if cmd == "exec":
        _sleeper(bb, "box")
        argv = ["exec", "-i", "box", "sh", "-c", script]
    else:
        argv = ["run", "--rm", "-i", "-v", f"{bb.out}:/out", "busybox", "sh", "-c", script]
    with open(src, "rb") as stdin, open(tmp_path / "out.txt", "wb") as out, open(tmp_path / "err.txt", "wb") as err:
        code = subprocess.run(rootless_argv() + argv, env=bb.env, stdin=stdin, stdout=out, stderr=err,
                              timeout=60).returncode
    assert code == 3, (tmp_path / "err.txt").read_text()
    assert (tmp_path / "out.txt").read_bytes() == src.read_bytes()
    assert (tmp_path / "err.txt").read_bytes() == b"to-err\n"
    _assert_relayed(bb.out / "fds")


def test_piped_input_ends_and_the_exit_code_comes_back(bb):
    assert bb("run", "--rm", "-i", "busybox", "cat", input="hi\n").out == "hi\n"
    assert bb("run", "--rm", "-i", "--init", "busybox", "cat", input="init\n", timeout=30).out == "init\n"
    r = bb("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo err >&2; exit 7", input="x\n", expect=7)
    assert (r.out, r.err) == ("x\n", "err\n")
    _sleeper(bb, "box")
    r = bb("exec", "-i", "box", "sh", "-c", "cat; echo err >&2; exit 5", input="y\n", expect=5)
    assert (r.out, r.err) == ("y\n", "err\n")
    # A command that never reads its input still ends, whatever is left in the pipe.
    assert bb("exec", "-i", "box", "true", input="z" * 300000).out == ""
    assert bb("run", "--rm", "-i", "busybox", "true", input="z" * 300000).out == ""
    bb("rm", "-f", "box")


def test_a_reader_that_goes_away_ends_exec_as_a_closed_pipe_would(bb):
    """`exec C yes | head -1`: once the CLI's stdout is closed, the process gets EPIPE/SIGPIPE
    (the relay does not drain its output for ever)."""
    _sleeper(bb, "box")
    proc = subprocess.Popen(rootless_argv() + ["exec", "box", "yes"], env=bb.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"y\n"
        proc.stdout.close()
        assert proc.wait(timeout=30) == 128 + 13, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert "yes" not in bb("exec", "box", "ps", "-o", "args").out
    bb("rm", "-f", "box")


@pytest.mark.parametrize("cmd", ["exec", "run", "run-p"])
def test_a_cli_started_with_stdin_closed_gives_an_empty_input(bb, cmd):
    """No descriptor made later (a namespace fd, a published port's socket) is taken for stdin."""
    if cmd == "exec":
        _sleeper(bb, "box")
        argv = ["exec", "-i", "box", "sh", "-c", "cat; echo end"]
    else:
        ports = ["-p", "127.0.0.1::80"] if cmd == "run-p" else []
        argv = ["run", "--rm", "-i", *ports, "busybox", "sh", "-c", "cat; echo end"]
    cp = subprocess.run(rootless_argv() + argv, env=bb.env, capture_output=True, timeout=30,
                        preexec_fn=lambda: os.close(0))
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, b"end\n", b"")
