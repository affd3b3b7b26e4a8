"""``rootless run`` end to end, as the unprivileged user, through the installed CLI."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from tests.conftest import Rootless, inspect, rootless_argv, wait_for

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl_method, images) -> Rootless:
    """busybox loaded; every test using it runs once per root filesystem method."""
    rl_method.load(images, "busybox")
    return rl_method


@pytest.fixture
def layered(rl_method, images) -> Rootless:
    rl_method.load(images, "layered")
    return rl_method


def sh(rl: Rootless, script: str, *flags: str, image: str = "busybox", expect: int | None = 0, **kw):
    return rl("run", "--rm", *flags, image, "sh", "-c", script, expect=expect, **kw)


def running_pid(rl: Rootless) -> int:
    for path in glob.glob(str(rl.root / "containers" / "*" / "container.json")):
        with open(path) as f:
            rec = json.load(f)
        if rec["state"]["status"] == "running" and rec["state"]["pid"]:
            return rec["state"]["pid"]
    return 0


def assert_nothing_left(rl: Rootless) -> None:
    containers = rl.root / "containers"
    assert not [p for p in containers.iterdir()] if containers.exists() else True
    runroot = rl.runtime / "rootless"
    leftovers = [str(p) for p in runroot.rglob("*")] if runroot.exists() else []
    assert not [p for p in leftovers if len(os.path.basename(p)) == 64], leftovers
    with open("/proc/self/mountinfo") as f:
        assert str(rl.root) not in f.read()
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(rl.root) not in out, "a helper process of the container is still running"
    assert rl.leftovers() == []


# ---- the basics ----------------------------------------------------------------------
def test_echo_and_separate_streams(bb):
    r = sh(bb, "echo out; echo err >&2")
    assert r.out == "out\n"
    assert r.err == "err\n"


@pytest.mark.parametrize("script,code", [("true", 0), ("false", 1), ("exit 3", 3), ("exit 255", 255)])
def test_exit_codes(bb, script, code):
    sh(bb, script, expect=code)


def test_command_not_found_is_127(bb):
    r = bb("run", "--rm", "busybox", "no-such-command", expect=127)
    assert r.err.startswith('rootless: error: exec "no-such-command": executable file not found in $PATH')
    assert "Traceback" not in r.err


def test_command_not_executable_is_126(bb):
    r = bb("run", "--rm", "busybox", "/etc/passwd", expect=126)
    assert "permission denied" in r.err


def test_tool_errors_are_125(bb):
    assert "unknown flag: --no-such-flag" in bb("run", "--no-such-flag", "busybox", expect=125).err
    r = bb("run", "--rm", "--pull", "never", "no-such-image", "true", expect=125)
    assert "No such image: no-such-image:latest" in r.err
    r = bb("run", "--rm", "-u", "nosuchuser", "busybox", "id", expect=125)
    assert "unable to find user nosuchuser" in r.err
    assert bb("run", "--rm", "-w", "relative", "busybox", "true", expect=125).err.count("\n") <= 2
    for r in (bb("run", "--rm", "busybox", expect=None),):
        assert r.code == 0  # busybox's Cmd is sh, stdin is empty


def test_killed_container_is_137_and_rm_leaves_nothing(bb):
    token = f"{os.getpid()}-{time.monotonic_ns()}"  # this test's alone
    p = subprocess.Popen(rootless_argv() + ["run", "--rm", "busybox", "sh", "-c", "sleep 60; true", token], env=bb.env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # --rm keeps no state record, so find the container's pid by its command line (it is not
        # the CLI's descendant when a fork of the warm forker runs the command)
        pid = wait_for(lambda: _find_proc(f"sh -c sleep 60; true {token}"), what="the container process")
        os.kill(pid, signal.SIGKILL)
        assert p.wait(timeout=30) == 137
    finally:
        p.kill()
    assert_nothing_left(bb)


def _find_proc(cmdline: str) -> int:
    """The pid of the process running ``cmdline``."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if f.read().replace(b"\0", b" ").strip() == cmdline.encode():
                        return int(d)
            except OSError:
                continue
    return 0


def test_killed_without_rm_records_137(bb):
    p = subprocess.Popen(rootless_argv() + ["run", "--name", "victim", "busybox", "sleep", "60"], env=bb.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = wait_for(lambda: running_pid(bb), what="a running container")
        os.kill(pid, signal.SIGKILL)
        assert p.wait(timeout=30) == 137
    finally:
        p.kill()
    (path,) = glob.glob(str(bb.root / "containers" / "*" / "container.json"))
    with open(path) as f:
        state = json.load(f)["state"]
    assert state["status"] == "exited" and state["exit_code"] == 137


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT])
def test_signals_are_forwarded(bb, sig):
    name = signal.Signals(sig).name[3:]
    script = f'trap "echo got {name}; exit 7" {name}; echo ready; while :; do sleep 0.05; done'
    p = subprocess.Popen(rootless_argv() + ["run", "--rm", "busybox", "sh", "-c", script], env=bb.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert out == f"got {name}\n".encode(), err
    assert p.returncode == 7


@pytest.mark.parametrize("verb", ["run", "attach"])
def test_without_sig_proxy_a_signal_ends_the_cli_and_the_container_runs_on(bb, verb):
    """Docker's --sig-proxy=false (run and attach, without -t): Ctrl-C ends the CLI, not the container."""
    script = 'trap "echo got INT; exit 7" INT; echo ready; while :; do sleep 0.05; done'
    if verb == "run":
        argv = ["run", "--sig-proxy=false", "--name", "unproxied", "busybox", "sh", "-c", script]
    else:
        bb("run", "-d", "--name", "unproxied", "busybox", "sh", "-c", script)
        argv = ["attach", "--sig-proxy=false", "unproxied"]
    p = subprocess.Popen(rootless_argv() + argv, env=bb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        if verb == "run":
            assert p.stdout.readline() == b"ready\n"
        else:
            time.sleep(1)  # attached (its output so far was written before the attach)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode in (-signal.SIGINT, 130) and b"got INT" not in out, (p.returncode, out, err)
    state = inspect(bb, "unproxied")["State"]
    assert state["Running"] is True, json.dumps(state)  # the container never saw it
    bb("kill", "-s", "INT", "unproxied")  # which a signal sent to it does end
    assert bb("wait", "unproxied").out.strip() == "7"


def test_stdin_only_with_i(bb):
    assert bb("run", "--rm", "-i", "busybox", "cat", input="hello\n").out == "hello\n"
    assert bb("run", "--rm", "busybox", "cat", input="hello\n").out == ""


# ---- terminals -------------------------------------------------------------------------
def _run_in_pty(rl: Rootless, args: list[str], rows: int = 33, cols: int = 101, send: bytes = b"") -> tuple[int, bytes]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(rootless_argv() + args, env=rl.env, stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    if send:
        os.write(master, send)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
    code = p.wait(timeout=30)
    os.close(master)
    return code, out


def test_tty_gives_a_terminal_with_the_callers_size(bb):
    code, out = _run_in_pty(bb, ["run", "--rm", "-it", "busybox", "sh", "-c", "tty; stty size; test -t 0"])
    assert code == 0, out
    assert b"/dev/pts/0" in out
    assert b"33 101" in out


def test_interactive_tty_session(bb):
    code, out = _run_in_pty(bb, ["run", "--rm", "-it", "busybox", "sh"], send=b"echo $((6*7))\nexit 5\n")
    assert code == 5, out
    assert b"42" in out


def test_tty_window_size_follows_the_terminal(bb):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 60, 0, 0))
    p = subprocess.Popen(rootless_argv() + ["run", "--rm", "-it", "busybox", "sh"], env=bb.env,
                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    try:
        out = b""

        def read_until(marker: bytes) -> bool:
            nonlocal out
            while marker not in out:
                r, _, _ = select.select([master], [], [], 30)
                if not r:
                    return False
                out += os.read(master, 65536)
            return True

        os.write(master, b"stty size; echo first-done\n")
        assert read_until(b"20 60"), out
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 133, 0, 0))
        p.send_signal(signal.SIGWINCH)  # what the terminal would send to its foreground process
        os.write(master, b"stty size; exit\n")
        assert read_until(b"42 133"), out
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
        os.close(slave)
        os.close(master)


def test_no_tty_without_t(bb):
    sh(bb, "test -t 1", expect=1)
    sh(bb, "test -t 1", "-t", expect=0)


# ---- isolation -------------------------------------------------------------------------------
def test_proc_shows_only_the_containers_processes(bb):
    out = sh(bb, "ls -d /proc/[0-9]* | wc -l; cat /proc/1/cmdline | tr '\\0' ' '").out.split("\n")
    assert int(out[0]) <= 3  # sh, ls (and wc) at most
    assert out[1].startswith("sh -c")


def test_host_files_are_not_reachable(bb, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("s3cret")
    r = sh(bb, f"cat {secret} 2>&1; ls / ; cat /proc/1/root{secret} 2>&1", expect=None)
    assert "s3cret" not in r.out
    assert "home" in r.out.split()  # the image's /home, not the host's
    assert "rootless" not in r.out


def test_uid_map_with_subordinate_ids(bb):
    lines = sh(bb, "cat /proc/self/uid_map").out.split("\n")
    fields = [line.split() for line in lines if line.strip()]
    assert fields[0] == ["0", str(os.getuid()), "1"]
    assert len(fields) == 2 and fields[1][0] == "1" and int(fields[1][2]) >= 65536


def test_uid_map_single_uid_mode(tmp_path, images):
    rl = Rootless(tmp_path, idmap="single")
    rl.load(images, "layered")
    r = rl("run", "--rm", "--entrypoint", "sh", "-u", "0", "layered", "-c",
           "cat /proc/self/uid_map; stat -c %u /home/app/owned-by-app.txt")
    fields = r.out.split()
    assert fields[:3] == ["0", str(os.getuid()), "1"]
    assert fields[3] == "0"  # files of other uids belong to the user (container root)


def test_hostname_and_etc_files(bb):
    r = sh(bb, "hostname; cat /etc/hostname; grep -c localhost /etc/hosts")
    host, etc, n = r.out.split()
    assert host == etc and len(host) == 12
    assert int(n) >= 1
    assert sh(bb, "hostname", "--hostname", "box1").out == "box1\n"


def test_network_none_has_only_lo(bb):
    r = sh(bb, "cat /proc/net/dev | tail -n +3 | cut -d: -f1; cat /sys/class/net/lo/operstate", "--network", "none")
    names = r.out.split()
    assert names[0] == "lo" and len(names) == 2  # lo, then its operstate
    assert names[1] in ("unknown", "up")


def test_network_host_sees_host_interfaces(bb):
    with open("/proc/net/dev") as f:
        host = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    r = sh(bb, "tail -n +3 /proc/net/dev | cut -d: -f1", "--network", "host")
    assert sorted(r.out.split()) == host


def test_minimal_dev(bb):
    r = sh(bb, "ls /dev; echo; ls /dev/pts; head -c 4 /dev/zero | wc -c; echo x > /dev/null; "
               "mount | grep -c ' /dev/shm '")
    names = set(r.out.split())
    for n in ("null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue", "fd", "stdin",
              "stdout", "stderr"):
        assert n in names, n


def test_sys_is_read_only(bb):
    sh(bb, "touch /sys/x 2>/dev/null", expect=1)


def test_capabilities_are_dockers_default_set(bb):
    cap = sh(bb, "grep CapBnd /proc/self/status").out.split()[1]
    assert int(cap, 16) == 0xA80425FB
    # Docker's default: no_new_privs is not set (--security-opt no-new-privileges sets it)
    assert sh(bb, "grep NoNewPrivs /proc/self/status").out.split()[1] == "0"


# ---- process ---------------------------------------------------------------------------------
def test_env_user_and_workdir(layered, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\nGREETING=from file\n")
    r = layered("run", "--rm", "--entrypoint", "sh", "--env-file", env_file, "-e", "EXTRA=2", "layered", "-c",
                'echo "$GREETING|$LAYERED|$FROM_FILE|$EXTRA|$HOME|$(pwd)|$(id -u):$(id -g):$(id -G)"')
    assert r.out == "from file|yes|1|2|/home/app|/data|1000:1000:1000 100\n"
    r = layered("run", "--rm", "--entrypoint", "sh", "-u", "0:100", "-w", "/new/dir", "layered", "-c",
                'echo "$(id -u):$(id -g)|$(pwd)|$HOME"')
    assert r.out == "0:100|/new/dir|/root\n"


def test_entrypoint_and_cmd(layered):
    assert layered("run", "--rm", "layered").out == "entry: default-cmd\n"
    assert layered("run", "--rm", "layered", "a", "b").out == "entry: a b\n"
    assert layered("run", "--rm", "--entrypoint", "echo", "layered").out == "\n"
    assert layered("run", "--rm", "--entrypoint", "echo", "layered", "x").out == "x\n"


def test_init_reaps_and_forwards(bb):
    r = sh(bb, "cat /proc/1/comm; (sleep 0.05 &); sleep 0.3; ps -o stat,comm | grep -c '^Z' || true", "--init")
    comm, zombies = r.out.split()
    assert comm == "rootless-init"
    assert zombies == "0"
    sh(bb, "kill -9 $$", "--init", expect=137)


def test_name_clash_fails_cleanly(bb):
    bb("run", "--name", "twin", "busybox", "true")
    r = bb("run", "--name", "twin", "busybox", "true", expect=125)
    assert 'the container name "/twin" is already in use' in r.err
    assert len(list((bb.root / "containers").iterdir())) == 1


# ---- the root filesystem, once per method -------------------------------------------------
def test_layers_as_the_image_describes(rl_method, images):
    rl_method.load(images, "layered")
    script = ("ls /data/delete-me.txt 2>&1; ls /data/opaque; stat -c '%u %g %a' /home/app/owned-by-app.txt "
              "/data/nobody.txt /usr/local/bin/suid-tool; cat /data/abs-link /data/rel-link; "
              "[ $(stat -c %i /data/hardlink-src.txt) = $(stat -c %i /data/hardlink-dst.txt) ] && echo same-inode; "
              "ls -A /data/empty-dir | wc -l; mount | head -1 | cut -d' ' -f5")
    r = rl_method("run", "--rm", "--entrypoint", "sh", "-u", "0", "layered", "-c", script)
    lines = r.out.splitlines()
    assert "No such file" in lines[0]
    assert lines[1] == "new.txt"
    assert lines[2:5] == ["1000 1000 644", "65534 65534 640", "0 0 4755"]
    assert lines[5:7] == ["keep", "keep"]
    assert lines[7] == "same-inode" and lines[8] == "0"
    fstype = {"kernel": "overlay", "fuse": "fuse.fuse-overlayfs",
              "copy": "ext4"}[rl_method.config.read_text().split('"')[1]]
    if fstype != "ext4":
        assert lines[9] == fstype


def test_writes_stay_in_the_container_and_every_run_starts_afresh(rl_method, images):
    rl_method.load(images, "busybox")
    rl_method("run", "--name", "first", "busybox", "sh", "-c", "echo x > /marker; rm /bin/ls")
    rl_method("run", "--rm", "busybox", "sh", "-c", "test ! -e /marker && test -e /bin/ls")
    r = rl_method("run", "--rm", "busybox", "sh", "-c", "echo y > /etc/new; cat /etc/new")
    assert r.out == "y\n"
    assert_nothing_left_but(rl_method, 1)


def assert_nothing_left_but(rl: Rootless, n: int) -> None:
    assert len(list((rl.root / "containers").iterdir())) == n
    assert rl.leftovers() == []


def test_rm_leaves_nothing(rl_method, images):
    rl_method.load(images, "busybox")
    rl_method("run", "--rm", "busybox", "sh", "-c", "echo data > /file; mkdir -p /a/b/c")
    assert_nothing_left(rl_method)


def test_rm_cleans_up_even_when_the_cli_is_killed(bb):
    p = subprocess.Popen(rootless_argv() + ["run", "--rm", "busybox", "sh", "-c", "echo up; sleep 0.5"], env=bb.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"up\n"
    p.kill()  # the keeper outlives the CLI, lets the container finish and removes it
    p.wait(timeout=30)
    wait_for(lambda: not any((bb.root / "containers").iterdir()), what="the container's removal")
    wait_for(lambda: str(bb.root) not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                         text=True).stdout, what="its helpers to end")
    assert_nothing_left(bb)


def test_image_symlinks_cannot_redirect_mounts_outside_the_root(rl, images, tmp_path):
    """/dev, /proc and /etc/hosts of a hostile image point at host paths: mounts stay inside the root."""
    import io
    import tarfile
    outside = tmp_path / "outside"
    outside.mkdir()
    with tarfile.open(images / "busybox-rootfs.tar") as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()
                   if not m.name.startswith(("dev", "proc", "etc/hosts"))]
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as out:
        for m, data in members:
            out.addfile(m, io.BytesIO(data) if data is not None else None)
        for name, target in (("dev", str(outside / "dev")), ("proc", "../../../../" + str(outside / "proc")),
                             ("etc/hosts", str(outside / "hosts"))):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            out.addfile(link)
    rl("import", evil, "evil:1")
    r = rl("run", "--rm", "evil:1", "/bin/sh", "-c", "ls /proc/self/ns >/dev/null && cat /etc/hosts | head -1")
    assert "localhost" in r.out
    assert list(outside.iterdir()) == []


# ---- -a/--attach ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("streams, out, err", [
    ((), "out\n", "err\n"), (("stdout",), "out\n", ""), (("STDERR",), "", "err\n"),
    (("stdout", "stderr"), "out\n", "err\n"),
])
def test_attach_shows_only_the_outputs_asked_for_and_logs_keep_both(busybox, streams, out, err):
    flags = [a for s in streams for a in ("-a", s)]
    r = busybox("run", "--name", "att", *flags, "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.out, r.err) == (out, err)
    assert busybox("logs", "att").out == "out\n" and busybox("logs", "att").err == "err\n"


def test_attach_stdin_relays_the_input(busybox):
    r = busybox("run", "--rm", "-i", "-a", "stdin", "-a", "stdout", "--network", "none", "busybox", "sh", "-c",
                "cat; echo done", input="piped\n")
    assert r.out == "piped\ndone\n"


def test_attach_refuses_other_streams_and_detach(busybox):
    bad = busybox("run", "--rm", "-a", "stdlog", "busybox", "true", expect=125)
    assert 'invalid argument "stdlog" for "-a, --attach" flag' in bad.err
    both = busybox("run", "-d", "-a", "stdout", "busybox", "true", expect=125)
    assert "cannot specify both --attach and --detach" in both.err
    assert busybox("ps", "-aq").out == ""
