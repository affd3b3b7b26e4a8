"""Working with a container's processes and files: exec, top, commit, cp, export, restart,
logs --since/--until and inspect templates, through the installed CLI as the unprivileged user."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import tarfile
import termios
import time

import pytest

from tests.conftest import Rootless, one_error, rootless_argv, status, wait_for

pytestmark = pytest.mark.userns

SHA256_ID = re.compile(r"sha256:[0-9a-f]{64}")


# ---- fixtures and helpers ----------------------------------------------------------------------
def _remove_all(rl: Rootless) -> None:
    """A safety net for failed tests: no container may outlive its test (the session checks)."""
    ids = rl("ps", "-aq", expect=None).out.split()
    if ids:
        rl("rm", "-f", *ids, expect=None)


@pytest.fixture
def bb(rl_method, images):
    """busybox and layered loaded; every test using it runs once per root filesystem method."""
    rl_method.load(images, "busybox")
    rl_method.load(images, "layered")
    yield rl_method
    _remove_all(rl_method)


@pytest.fixture
def one(rl, images):
    """busybox and layered loaded, with the default root filesystem method only."""
    rl.load(images, "busybox")
    rl.load(images, "layered")
    yield rl
    _remove_all(rl)


def pid_of(rl: Rootless, ref: str) -> int:
    return int(rl("inspect", "-f", "{{.State.Pid}}", ref).out)


def sleeper(rl: Rootless, name: str, *flags: str, script: str | None = None, settle: bool = True) -> str:
    """A detached busybox container that stays up (``script`` first, then ``sleep 300`` as PID 1)."""
    args = ["sh", "-c", f"{script}; exec sleep 300"] if script else ["sleep", "300"]
    cid = rl("run", "-d", "--name", name, *flags, "busybox", *args).out.strip()
    wait_for(lambda: status(rl, name) == "running", what=f"{name} to run")
    if script and settle:  # the script is done once PID 1 has become `sleep 300`
        wait_for(lambda: rl("exec", name, "cat", "/proc/1/cmdline", expect=None).out.startswith("sleep"),
                 what=f"{name}'s script")
    return cid


def exists_inside(rl: Rootless, name: str, path: str) -> bool:
    return rl("exec", name, "test", "-e", path, expect=None).code == 0


def tar_names(path) -> set[str]:
    with tarfile.open(path) as tf:
        return {m.name.removeprefix("./").rstrip("/") for m in tf.getmembers()}


def image_ids(rl: Rootless) -> list[str]:
    return sorted(rl("images", "-q").out.split())


class Pty:
    """A CLI command on a pseudo-terminal, read until a marker appears."""

    def __init__(self, rl: Rootless, args: list[str], rows: int = 33, cols: int = 101):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(rootless_argv() + args, env=rl.env, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self.out = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, pattern: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.master], [], [], max(left, 0))
            if not r:
                pytest.fail(f"timed out waiting for {pattern!r} on the terminal; got {self.out!r}")
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            if not data:
                pytest.fail(f"the terminal closed before {pattern!r}; got {self.out!r}")
            self.out += data
        return self.out

    def close(self, timeout: float = 30.0) -> int:
        """The exit code; the output is read on until the command ends."""
        try:
            deadline = time.monotonic() + timeout
            while self.master >= 0 and self.proc.poll() is None and time.monotonic() < deadline:
                r, _, _ = select.select([self.master], [], [], 0.1)
                if r:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    self.out += data
            code = self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            while self.master >= 0 and select.select([self.master], [], [], 0)[0]:  # what is left
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.out += data
            return code
        finally:
            self.proc.kill()
            if self.master >= 0:
                os.close(self.master)


# ---- exec ----------------------------------------------------------------------------------------
def test_exec_sees_the_containers_processes_files_and_exit_codes(bb):
    sleeper(bb, "ex", script="echo written-by-pid1 > /file")
    rows = [line.split(None, 2) for line in bb("exec", "ex", "ps").out.splitlines()[1:]]
    procs = {int(pid): cmd for pid, _user, cmd in rows}
    assert procs[1] == "sleep 300"
    assert "ps" in procs.values() and len(procs) == 2  # the container's processes only, and ps itself
    assert bb("exec", "ex", "cat", "/file").out == "written-by-pid1\n"
    bb("exec", "ex", "sh", "-c", "exit 7", expect=7)
    r = bb("exec", "ex", "nosuch", expect=127)
    assert r.err.startswith('rootless: error: exec "nosuch": executable file not found in $PATH')
    one_error(r)
    assert status(bb, "ex") == "running"  # a failing exec leaves the container alone
    bb("rm", "-f", "ex")


def test_exec_environment_user_and_workdir(bb):
    sleeper(bb, "envy", "-e", "FROM_RUN=yes", "-e", "SHADOWED=run")
    assert bb("exec", "-e", "A=1", "envy", "sh", "-c", "echo $A").out == "1\n"
    env = bb("exec", "envy", "env").out.splitlines()
    assert "FROM_RUN=yes" in env and "SHADOWED=run" in env
    assert any(e.startswith("PATH=/") for e in env)
    r = bb("exec", "-e", "SHADOWED=exec", "envy", "sh", "-c", 'echo "$FROM_RUN $SHADOWED"')
    assert r.out == "yes exec\n"
    bb("rm", "-f", "envy")

    bb("run", "-d", "--name", "lay", "--entrypoint", "sleep", "layered", "300")
    wait_for(lambda: status(bb, "lay") == "running", what="lay to run")
    assert bb("exec", "-u", "app", "-w", "/tmp", "lay", "sh", "-c", "id -u; pwd").out == "1000\n/tmp\n"
    # without flags: the container's user (app, from the image) and working directory (/data)
    assert bb("exec", "lay", "sh", "-c", "id -u; pwd").out == "1000\n/data\n"
    assert bb("exec", "-u", "0", "lay", "id", "-u").out == "0\n"
    bb("rm", "-f", "lay")


def test_exec_env_file_then_env_flags_over_it(one, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# exec's file\nFROM_FILE=f\nBOTH=file\n")
    sleeper(one, "envf")
    r = one("exec", "--env-file", str(env_file), "-e", "BOTH=flag", "envf", "sh", "-c", 'echo "$FROM_FILE $BOTH"')
    assert r.out == "f flag\n"
    missing = one("exec", "--env-file", str(tmp_path / "missing"), "envf", "true", expect=125)
    assert "no such file" in missing.err and "Traceback" not in missing.err
    one("rm", "-f", "envf")


def test_exec_privileged_has_every_capability(one):
    """Docker's ``exec --privileged``: every capability (here: of the container's user namespace),
    whatever the container dropped; without it, the container's set."""
    from rootless.runtime.security import ALL_CAPS
    sleeper(one, "capd", "--cap-drop", "ALL")

    def effective(*flags: str) -> int:
        return int(one("exec", *flags, "capd", "grep", "CapEff", "/proc/self/status").out.split()[1], 16)
    assert effective() == 0
    assert effective("--privileged") == (1 << len(ALL_CAPS)) - 1
    one("rm", "-f", "capd")


def test_exec_and_health_probes_have_the_containers_group_add(one):
    # Docker gives every exec (and every health probe, an exec too) the container's --group-add
    sleeper(one, "grp", "--group-add", "1234", "--group-add", "users", "--health-interval", "100ms",
            "--health-cmd", "id -G | grep -qw 1234")
    assert {"1234", "100"} <= set(one("exec", "grp", "id", "-G").out.split())  # users is 100 in the image
    # exec -u: that user's own groups, then the container's
    assert sorted(one("exec", "-u", "1000:1000", "grp", "id", "-G").out.split()) == ["100", "1000", "1234"]
    wait_for(lambda: one("inspect", "-f", "{{.State.Health.Status}}", "grp").out.strip() == "healthy",
             what="grp healthy")
    one("rm", "-f", "grp")


def test_exec_it_gives_a_terminal_and_follows_input(bb):
    sleeper(bb, "term")
    t = Pty(bb, ["exec", "-it", "term", "sh"])
    try:
        t.send(b"tty; stty size\n")
        t.read_until(rb"/dev/pts/\d+")
        t.read_until(rb"33 101")
        t.send(b"echo $((6*7))x\n")
        t.read_until(rb"42x")
        t.send(b"exit 3\n")
    finally:
        code = t.close(timeout=15)  # the CLI returns when the command exits, its terminal still open
    assert code == 3, t.out
    assert status(bb, "term") == "running"
    assert "sh" not in bb("exec", "term", "ps", "-o", "args").out.split("\n")
    bb("rm", "-f", "term")


def test_exec_it_ends_when_its_input_ends(one):
    # Docker's daemon closes an exec's terminal output once the client's input ended, and its CLI
    # returns (0: the process was still running); before, the session waited for ever
    sleeper(one, "eof")
    master, slave = pty.openpty()  # stdin: a terminal whose other side is about to close
    out_r, out_w = os.pipe()
    proc = subprocess.Popen(rootless_argv() + ["exec", "-it", "eof", "sh"], env=one.env, stdin=slave,
                            stdout=out_w, stderr=out_w, start_new_session=True)
    os.close(slave)
    os.close(out_w)
    try:
        os.write(master, b"echo $((6*7))x\n")
        out = b""
        deadline = time.monotonic() + 30
        while b"42x" not in out and time.monotonic() < deadline:
            if select.select([out_r], [], [], 1)[0]:
                out += os.read(out_r, 65536)
        assert b"42x" in out, out
        os.close(master)  # the end of the CLI's input
        master = -1
        code = proc.wait(timeout=20)
        while select.select([out_r], [], [], 0)[0] and (more := os.read(out_r, 65536)):
            out += more
        assert code == 0, out
    finally:
        proc.kill()
        os.close(out_r)
        if master >= 0:
            os.close(master)
    # our end of its terminal closed with the session: the shell had its terminal's hang-up
    wait_for(lambda: "sh" not in one("exec", "eof", "ps", "-o", "args").out.split("\n"), what="the shell to go")
    one("rm", "-f", "eof")


def test_exec_t_without_i(one):
    sleeper(one, "tonly")
    t = Pty(one, ["exec", "-t", "tonly", "sh", "-c", "tty; stty size; test -t 0 && echo stdin-is-tty"])
    code = t.close()
    assert code == 0, t.out
    assert re.search(rb"/dev/pts/\d+", t.out) and b"33 101" in t.out and b"stdin-is-tty" in t.out, t.out
    one("rm", "-f", "tonly")


def test_exec_without_t_has_no_terminal(one):
    sleeper(one, "notty")
    one("exec", "notty", "sh", "-c", "test -t 1", expect=1)
    assert one("exec", "-i", "notty", "cat", input="piped\n").out == "piped\n"
    assert one("exec", "notty", "cat", input="not-read\n").out == ""  # stdin only with -i
    one("rm", "-f", "notty")


def test_exec_detached_returns_at_once(bb):
    sleeper(bb, "det")
    # The detached command waits for /go: an exec that waited for it, or that left it the caller's
    # stdout (captured here) would not return. Its output goes nowhere, as in Docker.
    r = bb("exec", "-d", "det", "sh", "-c",
           "echo noise; echo noise >&2; while [ ! -e /go ]; do sleep 0.05; done; echo x > /from-detached",
           timeout=30)
    assert (r.out, r.err) == ("", "")
    assert not exists_inside(bb, "det", "/from-detached")
    assert "sh -c" in bb("exec", "det", "ps", "-o", "args").out  # running in the container meanwhile
    bb("exec", "det", "touch", "/go")
    wait_for(lambda: exists_inside(bb, "det", "/from-detached"), what="the detached command's file")
    assert bb("exec", "det", "cat", "/from-detached").out == "x\n"
    assert "noise" not in bb("logs", "det").out
    bb("rm", "-f", "det")


def test_exec_into_a_stopped_container_fails(one):
    one("run", "--name", "done", "busybox", "true")
    r = one("exec", "done", "true", expect=1)
    one_error(r, "not running")
    one("create", "--name", "fresh", "busybox", "true")
    one_error(one("exec", "fresh", "true", expect=1), "not running")
    one_error(one("exec", "nosuch", "true", expect=1), "nosuch")


def test_exec_output_is_not_in_the_logs(one):
    sleeper(one, "quiet", script="echo from-pid1")
    wait_for(lambda: "from-pid1" in one("logs", "quiet").out, what="the main process's output")
    assert one("exec", "quiet", "sh", "-c", "echo from-exec; echo err-exec >&2").out == "from-exec\n"
    logs = one("logs", "quiet")
    assert logs.out == "from-pid1\n" and logs.err == ""
    one("rm", "-f", "quiet")


# ---- top -------------------------------------------------------------------------------------------
def test_top(one):
    sleeper(one, "topped")
    lines = one("top", "topped").out.splitlines()
    header = lines[0].split()
    assert "PID" in header and "CMD" in header
    assert any(line.rstrip().endswith("sleep 300") for line in lines[1:]), lines
    pid = pid_of(one, "topped")
    col = header.index("PID")
    assert pid in [int(line.split()[col]) for line in lines[1:]]  # host pids
    # Docker's `top CONTAINER [ps OPTIONS]`: the host's ps with them, the container's lines only
    lines = one("top", "topped", "-o", "pid,comm").out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"] and [line.split() for line in lines[1:]] == [[str(pid), "sleep"]]
    one_error(one("top", "topped", "-o", "comm", expect=1), "couldn't find the PID field")
    one("stop", "-t", "0", "topped")
    one_error(one("top", "topped", expect=1), "not running")
    one("rm", "topped")


# ---- commit ------------------------------------------------------------------------------------------
def test_commit_a_stopped_container(bb):
    bb("run", "--name", "changed", "-u", "0", "--entrypoint", "sh", "layered", "-c",
       "echo added-content > /added.txt; rm /bin/ls /data/keep.txt")
    assert status(bb, "changed") == "exited"
    before = image_ids(bb)
    # The container ran with --entrypoint sh, which the commit keeps (as Docker does): clear it.
    image_id = bb("commit", "-m", "msg", "-a", "me", "-c", "ENTRYPOINT []", "-c", 'CMD ["cat","/added.txt"]',
                  "-c", "ENV NEW=1", "changed", "snap:1").out.strip()
    assert SHA256_ID.fullmatch(image_id), image_id
    assert image_id[7:19] in image_ids(bb) and len(image_ids(bb)) == len(before) + 1
    assert bb("run", "--rm", "snap:1").out == "added-content\n"  # the CMD change
    r = bb("run", "--rm", "--entrypoint", "sh", "snap:1", "-c",
           "ls /bin/ls; ls /data/keep.txt; echo NEW=$NEW; cat /data/added-in-layer3.txt", expect=None)
    assert r.out == "NEW=1\nthree\n", r
    assert "/bin/ls: No such file" in r.err and "/data/keep.txt: No such file" in r.err
    rows = [line.split() for line in bb("images").out.splitlines()[1:]]
    assert ["snap", "1"] in [row[:2] for row in rows]
    meta = json.loads(bb("inspect", "snap:1").out)[0]
    assert meta["Author"] == "me" and meta["Id"] == image_id
    assert meta["Config"]["Cmd"] == ["cat", "/added.txt"] and "NEW=1" in meta["Config"]["Env"]
    assert any(h.get("comment") == "msg" for h in meta.get("History", [])), meta.get("History")
    assert bb.leftovers() == []


def test_commit_a_running_container_keeps_it_running(bb):
    sleeper(bb, "live", script="echo live-data > /live.txt; mkdir -p /d/e; echo deep > /d/e/f")
    wait_for(lambda: bb("exec", "live", "cat", "/d/e/f", expect=None).out == "deep\n", what="the files")
    pid = pid_of(bb, "live")
    out = bb("commit", "live", "live:1").out.strip()
    assert SHA256_ID.fullmatch(out), out
    assert status(bb, "live") == "running" and pid_of(bb, "live") == pid  # pause-free: nothing restarted
    assert bb("run", "--rm", "live:1", "cat", "/live.txt", "/d/e/f").out == "live-data\ndeep\n"
    bb("exec", "live", "sh", "-c", "echo more > /after.txt")
    assert bb("exec", "live", "cat", "/after.txt").out == "more\n"  # still writable after the commit
    bb("rm", "-f", "live")
    assert bb.leftovers() == []


def test_commit_errors(one):
    one("run", "--name", "base", "busybox", "true")
    before = image_ids(one)
    one_error(one("commit", "nosuch", "x:1", expect=1), "nosuch")
    one_error(one("commit", "-c", "FROM x", "base", "bad:1", expect=125), "FROM")
    one_error(one("commit", "-c", "CMD [\"ok\"]", "-c", "NOSUCH y", "base", "bad:2", expect=125))
    assert image_ids(one) == before
    assert "bad" not in one("images").out
    assert one.leftovers() == []


# ---- cp ------------------------------------------------------------------------------------------------
@pytest.fixture
def host_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("file-content\n")
    tree = src / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_text("a\n")
    (tree / "sub" / "b").write_text("b\n")
    os.symlink("a", tree / "link")
    dest = tmp_path / "dest"
    dest.mkdir()
    return src, dest


def test_cp_into_and_out_of_a_running_container(bb, host_files):
    src, dest = host_files
    sleeper(bb, "cpr")
    bb("cp", src / "f.txt", "cpr:/tmp/")
    bb("cp", src / "f.txt", "cpr:/renamed")
    bb("cp", src / "tree", "cpr:/tmp")  # into an existing directory: /tmp/tree
    bb("cp", src / "tree", "cpr:/newtree")  # a new name: the directory becomes /newtree
    r = bb("exec", "cpr", "sh", "-c",
           "cat /tmp/f.txt /renamed /tmp/tree/a /tmp/tree/sub/b /newtree/sub/b; readlink /newtree/link; "
           "stat -c %u:%g /tmp/f.txt /renamed /tmp/tree /tmp/tree/sub/b /newtree/a")
    assert r.out.splitlines() == ["file-content", "file-content", "a", "b", "b", "a"] + ["0:0"] * 5

    bb("exec", "cpr", "sh", "-c", "mkdir -p /made/deep; echo made > /made/deep/m; echo single > /single")
    bb("cp", "cpr:/single", dest)  # into a host directory
    bb("cp", "cpr:/single", dest / "other-name")  # as a new name
    bb("cp", "cpr:/made", dest)
    bb("cp", "cpr:/made", dest / "made-copy")
    assert (dest / "single").read_text() == "single\n"
    assert (dest / "other-name").read_text() == "single\n"
    assert (dest / "made" / "deep" / "m").read_text() == "made\n"
    assert (dest / "made-copy" / "deep" / "m").read_text() == "made\n"
    assert (dest / "single").stat().st_uid == os.getuid()  # the container's root is the user out here
    assert sorted(p.name for p in dest.iterdir()) == ["made", "made-copy", "other-name", "single"]  # no temp left
    bb("rm", "-f", "cpr")


def test_cp_archive_keeps_the_numeric_owners(bb, host_files):
    """``cp -a`` (Docker's archive mode): the files keep their owners' numbers inside (the user's
    own uid here, a uid of the container's other than root), where a plain cp gives them to root."""
    src, _dest = host_files
    sleeper(bb, "cpa")
    bb("cp", "-a", src / "tree", "cpa:/kept")
    bb("cp", src / "tree", "cpa:/given")
    uid, gid = os.getuid(), os.getgid()
    r = bb("exec", "cpa", "stat", "-c", "%u:%g", "/kept", "/kept/sub/b", "/given/sub/b")
    assert r.out.split() == [f"{uid}:{gid}", f"{uid}:{gid}", "0:0"]
    bb("rm", "-f", "cpa")


def test_cp_with_a_stopped_container(bb, host_files):
    src, dest = host_files
    bb("create", "--name", "cps", "busybox", "sh", "-c",
       "cat /tmp/f.txt /renamed; stat -c %u /tmp/f.txt /renamed; ls /tmp/tree/sub; echo out > /result")
    bb("cp", src / "f.txt", "cps:/tmp/")
    bb("cp", src / "f.txt", "cps:/renamed")
    bb("cp", src / "tree", "cps:/tmp/")
    assert status(bb, "cps") == "created"
    assert bb("start", "-a", "cps").out == "file-content\nfile-content\n0\n0\nb\n"
    assert status(bb, "cps") == "exited"
    bb("cp", "cps:/result", dest)
    bb("cp", "cps:/tmp/tree", dest / "tree-back")
    assert (dest / "result").read_text() == "out\n"
    assert (dest / "tree-back" / "sub" / "b").read_text() == "b\n"
    assert os.readlink(dest / "tree-back" / "link") == "a"
    assert sorted(p.name for p in dest.iterdir()) == ["result", "tree-back"]
    with open("/proc/self/mountinfo") as f:
        assert str(bb.root) not in f.read()  # the stopped container's root was mounted for the copy only
    assert bb.leftovers() == []


def test_cp_errors(one, host_files):
    src, dest = host_files
    sleeper(one, "cpe")
    one_error(one("cp", src / "missing", "cpe:/tmp/", expect=1), "missing")
    one_error(one("cp", "cpe:/no/such/file", dest, expect=1), "/no/such/file")
    one_error(one("cp", src / "f.txt", "nosuch:/tmp/", expect=1), "nosuch")
    r = one("cp", src / "f.txt", dest / "x", expect=125)  # no container side
    assert "rootless: error:" in r.err and "Traceback" not in r.err
    one("cp", "cpe:/a", "cpe:/b", expect=125)
    assert list(dest.iterdir()) == []
    one("rm", "-f", "cpe")


# ---- export ------------------------------------------------------------------------------------------------
def test_export(bb, tmp_path):
    bb("run", "--name", "exp", "busybox", "sh", "-c", "echo made > /made.txt; rm /bin/ls")
    out = tmp_path / "exported"
    out.mkdir()
    bb("export", "-o", out / "out.tar", "exp")
    names = tar_names(out / "out.tar")
    assert "bin/busybox" in names and "made.txt" in names and "etc/passwd" in names
    assert "bin/ls" not in names and "bin/cat" in names
    assert not any(".wh." in n for n in names)  # a flat tree, no whiteouts
    assert sorted(p.name for p in out.iterdir()) == ["out.tar"]  # no temp file left next to it
    with tarfile.open(out / "out.tar") as tf:
        assert tf.extractfile("made.txt").read() == b"made\n"


def test_export_to_stdout(one, tmp_path):
    one("run", "--name", "expo", "busybox", "sh", "-c", "echo stopped > /stopped.txt")
    target = tmp_path / "stdout.tar"
    with open(target, "wb") as f:  # `rootless export NAME > file`
        p = subprocess.run(rootless_argv() + ["export", "expo"], stdout=f, stderr=subprocess.PIPE, env=one.env,
                           timeout=120)
    assert p.returncode == 0, p.stderr
    names = tar_names(target)
    assert "bin/busybox" in names and "stopped.txt" in names
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stdout")) == ["stdout.tar"]
    one_error(one("export", "nosuch", "-o", tmp_path / "x.tar", expect=1), "nosuch")
    assert not (tmp_path / "x.tar").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("x.tar")] == []


def test_export_of_a_running_container(one, tmp_path):
    sleeper(one, "expr", script="echo running > /run.txt")
    r = one("export", "-o", tmp_path / "run.tar", "expr", expect=None)
    one("rm", "-f", "expr")
    assert r.code == 0, r.err
    names = tar_names(tmp_path / "run.tar")
    assert "bin/busybox" in names and "run.txt" in names
    assert not any(n.startswith(("proc/", "sys/")) for n in names)  # nothing of what is mounted there


# ---- restart --------------------------------------------------------------------------------------------------
def test_restart_gives_a_new_pid_1_and_keeps_files(bb):
    sleeper(bb, "again", script="echo x >> /count")
    old = pid_of(bb, "again")
    wait_for(lambda: bb("exec", "again", "cat", "/count", expect=None).out == "x\n", what="the first run's line")
    assert bb("restart", "-t", "0", "again").out == "again\n"
    assert status(bb, "again") == "running"
    new = pid_of(bb, "again")
    assert new and new != old
    assert not os.path.exists(f"/proc/{old}") or old == new
    # The same writable layer, run again: the script appends a second line.
    wait_for(lambda: bb("exec", "again", "cat", "/count", expect=None).out == "x\nx\n", what="the second line")
    bb("stop", "-t", "0", "again")
    bb("restart", "-t", "0", "again")  # a stopped container is started
    assert status(bb, "again") == "running"
    bb("rm", "-f", "again")


def test_restart_of_a_rm_container_starts_it_again_and_a_stop_then_removes_it(bb):
    """Docker's: the stop that ``restart`` makes does not remove a ``--rm`` container (it was
    removed, and the start after it failed with "No such container"); its writable layer, mounted
    ``volatile``, is mounted again; its anonymous volume and its log stay; a stop after that removes
    it as usual."""
    sleeper(bb, "rmagain", "--rm", "-v", "/data", script="echo x >> /count; echo y >> /data/count; echo up")
    old = pid_of(bb, "rmagain")
    assert bb("restart", "-t", "0", "rmagain").out == "rmagain\n"
    wait_for(lambda: status(bb, "rmagain") == "running", what="the restarted container")
    assert pid_of(bb, "rmagain") != old
    wait_for(lambda: bb("exec", "rmagain", "cat", "/count", "/data/count", expect=None).out == "x\nx\ny\ny\n",
             what="the second run's lines beside the first's")
    assert bb("logs", "rmagain").out == "up\nup\n"
    volume = json.loads(bb("inspect", "rmagain").out)[0]["Mounts"][0]["Name"]
    bb("stop", "-t", "0", "rmagain")
    wait_for(lambda: bb("ps", "-aq", "--filter", "name=rmagain").out == "", what="its removal")
    wait_for(lambda: volume not in bb("volume", "ls", "-q").out, what="its anonymous volume's removal")


def test_restart_of_an_attached_rm_container_keeps_it_for_the_start(bb, tmp_path):
    """The CLI of an attached ``run --rm`` returns when the restart stops the container; it no
    longer removes what the restart starts again."""
    out = open(tmp_path / "out", "wb")
    fg = subprocess.Popen(rootless_argv() + ["run", "--rm", "--name", "fgrm", "busybox", "sh", "-c",
                                             "echo up; exec sleep 300"],
                          env=bb.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (tmp_path / "out").read_bytes() == b"up\n", what="the attached container")
        bb("restart", "-t", "0", "fgrm")
        assert fg.wait(timeout=60) in (137, 143)
        wait_for(lambda: bb("logs", "fgrm", expect=None).out == "up\nup\n", what="the second start's line")
        assert status(bb, "fgrm") == "running"
        bb("stop", "-t", "0", "fgrm")
        wait_for(lambda: bb("ps", "-aq", "--filter", "name=fgrm").out == "", what="its removal")
    finally:
        out.close()
        if fg.poll() is None:
            fg.kill()
            fg.wait()
        bb("rm", "-f", "fgrm", expect=None)


# ---- logs --since / --until --------------------------------------------------------------------------------------
def rfc3339(ns: int) -> str:
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def test_logs_since_and_until(one):
    sleeper(one, "talk", script="echo one; echo err-one >&2; while [ ! -e /go ]; do sleep 0.02; done; echo two",
            settle=False)
    wait_for(lambda: one("logs", "talk").out == "one\n", what="the first output")
    between = time.time_ns()
    stamps = one("logs", "-t", "talk").out.split()
    assert stamps[0] < rfc3339(between)
    one("exec", "talk", "touch", "/go")
    wait_for(lambda: one("logs", "talk").out == "one\ntwo\n", what="the second output")
    since = one("logs", "--since", rfc3339(between), "talk")
    assert (since.out, since.err) == ("two\n", "")
    until = one("logs", "--until", rfc3339(between), "talk")
    assert (until.out, until.err) == ("one\n", "err-one\n")
    assert one("logs", "--since", "10m", "talk").out == "one\ntwo\n"  # relative: everything recent
    sec, frac = divmod(between, 1_000_000_000)
    assert one("logs", "--since", f"{sec}.{frac:09d}", "talk").out == "two\n"  # Unix time
    assert one("logs", "--until", f"{sec}.{frac:09d}", "talk").out == "one\n"
    assert one("logs", "--since", rfc3339(between), "--until", rfc3339(time.time_ns()), "talk").out == "two\n"
    one("rm", "-f", "talk")


def test_logs_since_invalid_is_a_usage_error(one):
    one("run", "--name", "said", "busybox", "echo", "hi")
    r = one("logs", "--since", "garbage", "said", expect=None)
    assert r.code != 0
    one_error(r, "garbage")


# ---- inspect templates -----------------------------------------------------------------------------------------------
def test_inspect_templates(one):
    sleeper(one, "tpl", "-e", "FOO=bar")
    env = one("inspect", "-f", "{{range .Config.Env}}{{.}} {{end}}", "tpl").out
    assert env.endswith(" \n")
    items = env.split()
    assert "FOO=bar" in items and any(i.startswith("PATH=/") for i in items)
    state = json.loads(one("inspect", "-f", "{{json .State}}", "tpl").out)
    assert state["Running"] is True and state["Status"] == "running" and state["Pid"] == pid_of(one, "tpl")
    assert one("inspect", "-f", "{{.State.Running}}", "tpl").out == "true\n"
    one("stop", "-t", "0", "tpl")
    assert one("inspect", "-f", "{{.State.Running}}", "tpl").out == "false\n"
    assert json.loads(one("inspect", "-f", "{{json .State}}", "tpl").out)["Running"] is False

    one("create", "--name", "lay", "layered")
    assert one("inspect", "-f", '{{index .Config.Labels "org.example.test"}}', "lay").out == "layered\n"
    assert one("inspect", "-f", "{{.Config.User}} {{.Config.WorkingDir}}", "lay").out == "app /data\n"
    one("rm", "-f", "tpl", "lay")
