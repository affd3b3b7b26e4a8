"""End to end: the OCI runtime face (``rootless-runc`` / ``rootless oci``) runs bundles made by
``runc spec --rootless`` with a busybox root filesystem, with runc's command line, state JSON,
exit codes and stdio pass-through, as Slurm's ``oci.conf`` and other OCI callers use it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, wait_for

pytestmark = pytest.mark.userns

BIN = Path(sys.executable).parent
RUNC_TOOLS = ("sh", "echo", "cat", "ls", "sleep", "id", "hostname", "ip", "true", "false", "readlink", "mkdir",
              "touch", "umask", "grep", "wc", "tty", "test", "stat", "ps")


class Oci:
    """``rootless-runc --root STATE ...`` (or ``rootless oci``), as the unprivileged caller."""

    def __init__(self, state: Path):
        self.state = state

    def argv(self, *args: str, face: str = "runc") -> list[str]:
        exe = [str(BIN / "rootless-runc")] if face == "runc" else [str(BIN / "rootless"), "oci"]
        return exe + [f"--root={self.state}", *args]

    def __call__(self, *args: str, check: bool = True, face: str = "runc", timeout: float = 60, **kw):
        """The output is read from files: a created or detached container keeps the caller's
        descriptors (runc's pass-through), so a pipe would not end before it does."""
        import tempfile
        kw.setdefault("stdin", subprocess.DEVNULL)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            r = subprocess.run(self.argv(*args, face=face), text=True, timeout=timeout, check=False, **kw)
            out.seek(0)
            err.seek(0)
            r.stdout, r.stderr = out.read(), err.read()
        if check and r.returncode != 0:
            raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr}")
        return r

    def state_of(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)

    def status(self, cid: str) -> str:
        return self.state_of(cid)["status"]


def make_bundle(path: Path, args: list[str], **changes) -> Path:
    """A bundle: busybox as the rootfs and ``runc spec --rootless``'s config with ``args``."""
    root = path / "rootfs"
    for d in ("bin", "proc", "dev", "sys", "etc", "tmp", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for tool in RUNC_TOOLS:
        (root / "bin" / tool).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\nextra:x:2000:\n")
    subprocess.run(["runc", "spec", "--rootless"], cwd=path, check=True)
    config = json.loads((path / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    for key, value in changes.items():
        config[key] = value
    (path / "config.json").write_text(json.dumps(config, indent=1))
    return path


def edit(bundle: Path, fn) -> None:
    config = json.loads((bundle / "config.json").read_text())
    fn(config)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))


@pytest.fixture
def oci(tmp_path):
    runtime = Oci(tmp_path / "state")
    yield runtime
    if runtime.state.exists():  # nothing of a test outlives it
        for cid in runtime("list", "-q", check=False).stdout.split():
            runtime("delete", "--force", cid, check=False)


@pytest.fixture
def bundle(tmp_path) -> Path:
    return make_bundle(tmp_path / "bundle", ["sh", "-c", "echo hello from $(hostname); exit 3"])


def left_in(state: Path) -> list[str]:
    """What a container left in the state directory (records and runtime directories)."""
    out = []
    for sub in ("containers", "run"):
        d = state / sub
        if d.is_dir():
            out += [f"{sub}/{n}" for n in os.listdir(d) if not n.startswith("events")]
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


# ---- run -----------------------------------------------------------------------------------
def test_run_prints_and_exits_with_the_process_code(oci, bundle):
    r = oci("run", "--bundle", str(bundle), "c1", check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "hello from runc\n"
    assert r.stderr == ""
    assert left_in(oci.state) == []  # an attached run keeps nothing, as runc


def test_rootless_oci_is_the_same_face(oci, bundle):
    r = oci("run", "-b", str(bundle), "c1", check=False, face="rootless")
    assert (r.returncode, r.stdout) == (3, "hello from runc\n"), r.stderr


def test_run_exit_code_of_a_signal(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "echo up; sleep 100"])
    pid_file = tmp_path / "pid"
    p = subprocess.Popen(oci.argv("run", "--pid-file", str(pid_file), "--bundle", str(b), "c1"),
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    assert oci.state_of("c1")["pid"] == int(pid_file.read_text())  # an attached run writes it too
    oci("kill", "c1", "KILL")
    assert p.wait(30) == 128 + signal.SIGKILL
    assert left_in(oci.state) == []


def test_run_forwards_a_signal(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "trap 'echo got TERM; exit 9' TERM; echo up; "
                                                 "while :; do sleep 0.05; done"])
    p = subprocess.Popen(oci.argv("run", "--bundle", str(b), "c1"), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 9
    assert p.stdout.read() == "got TERM\n"
    assert left_in(oci.state) == []


def test_stdio_is_passed_through(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "read line; echo out:$line; echo err:$line >&2; "
                                                 "readlink /proc/self/fd/1"])
    r = subprocess.run(oci.argv("run", "--bundle", str(b), "c1"), input="piped\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "out:piped"
    assert lines[1].startswith("pipe:")  # the caller's pipe itself, no relay in between
    assert r.stderr == "err:piped\n"


def test_run_detached(oci, tmp_path):
    out = tmp_path / "out.txt"
    b = make_bundle(tmp_path / "b", ["sh", "-c", "echo detached; sleep 0.2"])
    with open(out, "w") as f:
        r = oci("run", "-d", "--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "c1", stdout=f)
    assert r.returncode == 0
    wait_for(lambda: oci.status("c1") == "stopped", what="the detached container's end")
    assert out.read_text() == "detached\n"
    oci("delete", "c1")
    assert left_in(oci.state) == []


# ---- create, start, state, kill, delete ------------------------------------------------------
def test_lifecycle(oci, tmp_path):
    out = tmp_path / "out.txt"
    b = make_bundle(tmp_path / "b", ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo started; "
                                                 "while :; do sleep 0.05; done"])
    pid_file = tmp_path / "pid"
    with open(out, "w") as f:
        t0 = time.monotonic()
        oci("create", "--bundle", str(b), "--pid-file", str(pid_file), "c1", stdout=f)
        assert time.monotonic() - t0 < 30
    st = oci.state_of("c1")
    pid = int(pid_file.read_text())
    assert st["status"] == "created" and st["pid"] == pid > 0
    assert st["id"] == "c1" and st["bundle"] == str(b) and st["ociVersion"].startswith("1.")
    assert st["annotations"] == {}
    assert out.read_text() == ""  # not exec'd yet
    listed = json.loads(oci("list", "--format", "json").stdout)
    assert [(c["id"], c["status"], c["pid"]) for c in listed] == [("c1", "created", pid)]
    assert oci("ps", "-q").stdout == "c1\n"
    oci("start", "c1")
    wait_for(lambda: out.read_text() == "started\n", what="the process's output")
    assert oci.status("c1") == "running"
    r = oci("start", "c1", check=False)  # once only
    assert r.returncode == 1 and r.stderr.count("error:") == 1
    oci("kill", "c1")  # SIGTERM
    wait_for(lambda: oci.status("c1") == "stopped", what="stopped")
    assert oci.state_of("c1")["pid"] == 0
    assert out.read_text() == "started\nbye\n"
    assert not alive(pid)
    oci("delete", "c1")
    r = oci("state", "c1", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr and r.stdout == ""
    assert left_in(oci.state) == []


@pytest.mark.parametrize("sig", ["USR1", "SIGUSR1", "10"])
def test_kill_named_signals(oci, tmp_path, sig):
    out = tmp_path / "out.txt"
    b = make_bundle(tmp_path / "b", ["sh", "-c", "trap 'echo usr1' USR1; trap 'exit 0' TERM; echo up; "
                                                 "while :; do sleep 0.05; done"])
    with open(out, "w") as f:
        oci("run", "-d", "--bundle", str(b), "c1", stdout=f)
    wait_for(lambda: out.read_text() == "up\n", what="up")
    oci("kill", "c1", sig)
    wait_for(lambda: out.read_text() == "up\nusr1\n", what="the trap's output")
    assert oci.status("c1") == "running"
    oci("kill", "c1", "KILL")
    wait_for(lambda: oci.status("c1") == "stopped", what="stopped")
    r = oci("kill", "c1", "TERM", check=False)
    assert r.returncode == 1 and "not running" in r.stderr
    assert oci("kill", "c1", "NOPE", check=False).returncode == 1


def test_kill_all(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "sleep 100 & sleep 100 & wait"])
    oci("run", "-d", "--bundle", str(b), "c1")
    pid = oci.state_of("c1")["pid"]
    children = wait_for(lambda: [p for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid and
                                 alive(int(p))] if True else None, what="the children")
    oci("kill", "--all", "c1", "KILL")
    wait_for(lambda: oci.status("c1") == "stopped", what="stopped")
    assert not any(alive(int(c)) for c in children)
    oci("delete", "c1")


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def test_delete_refuses_a_running_container_and_force_frees_all(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sleep", "100"])
    oci("run", "-d", "--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "c1")
    pid = int((tmp_path / "pid").read_text())
    r = oci("delete", "c1", check=False)
    assert r.returncode == 1 and "not stopped" in r.stderr and "Traceback" not in r.stderr
    assert oci.status("c1") == "running" and alive(pid)
    oci("delete", "--force", "c1")
    assert not alive(pid)
    assert left_in(oci.state) == []
    assert mounts_under(oci.state) == [] and mounts_under(b) == []
    assert oci("state", "c1", check=False).returncode == 1


def test_delete_of_a_created_container(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sleep", "100"])
    oci("create", "--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "c1")
    pid = int((tmp_path / "pid").read_text())
    oci("delete", "c1")
    assert not alive(pid)
    assert left_in(oci.state) == []


# ---- what the config asks ---------------------------------------------------------------------
def test_host_network_without_a_network_namespace(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "ls /sys/class/net | wc -l"])
    host = len(os.listdir("/sys/class/net"))
    r = oci("run", "--bundle", str(b), "c1")
    assert int(r.stdout) == host  # the host's interfaces (MPI jobs need them)
    edit(b, lambda c: c["linux"]["namespaces"].append({"type": "network"}))
    b2 = b  # the same bundle with its own network namespace: only lo
    edit(b2, lambda c: c["process"].update(args=["sh", "-c", "ip -o link | wc -l"]))
    assert oci("run", "--bundle", str(b2), "c2").stdout.strip() == "1"


def test_config_fields(oci, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data").write_text("from the host\n")
    script = ("echo host:$(hostname); echo nofile:$(ulimit -n); echo umask:$(umask); echo cwd:$(pwd); "
              "echo env:$FOO; cat /data/data; touch /data/x 2>/dev/null || echo data-ro; "
              "touch /etc/x 2>/dev/null || echo root-ro; touch /scratch/x && echo scratch-rw; "
              "grep -q 'Cap.*' /proc/self/status && grep CapBnd /proc/self/status; wc -c < /proc/timer_list; "
              "grep ' /data ' /proc/self/mountinfo")

    def change(c):
        c["hostname"] = "oci-box"
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]
        c["process"]["user"]["umask"] = 0o27
        c["process"]["cwd"] = "/tmp"
        c["process"]["env"].append("FOO=bar")
        c["mounts"] += [{"destination": "/data", "type": "bind", "source": str(shared),
                         "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]},
                        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}]
    b = make_bundle(tmp_path / "b", ["sh", "-c", script])
    edit(b, change)
    r = oci("run", "--bundle", str(b), "c1")
    lines = r.stdout.splitlines()
    assert lines[:10] == ["host:oci-box", "nofile:256", "umask:0027", "cwd:/tmp", "env:bar", "from the host",
                          "data-ro", "root-ro", "scratch-rw", "CapBnd:\t0000000020000420"], r.stdout
    assert lines[10] == "0"  # masked: /proc/timer_list is /dev/null
    assert all(f in lines[11].split()[5].split(",") for f in ("ro", "nosuid", "nodev", "noexec")), lines[11]
    assert not (shared / "x").exists()


def test_subordinate_ids_user_and_groups(oci, tmp_path):
    subs = [line.split(":") for line in Path("/etc/subuid").read_text().splitlines()]
    mine = next((s for s in subs if s[0] in (os.environ.get("USER", ""), str(os.getuid()))), None)
    import pwd
    mine = mine or next((s for s in subs if s[0] == pwd.getpwuid(os.getuid()).pw_name), None)
    if mine is None:
        pytest.skip("no subordinate ids for this user")
    start, count = int(mine[1]), int(mine[2])
    maps = [{"containerID": 0, "hostID": os.getuid(), "size": 1}, {"containerID": 1, "hostID": start, "size": 65536}]
    gmaps = [{"containerID": 0, "hostID": os.getgid(), "size": 1}, {"containerID": 1, "hostID": start, "size": 65536}]
    assert count >= 65536

    def change(c):
        c["linux"]["uidMappings"], c["linux"]["gidMappings"] = maps, gmaps
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
        c["process"]["capabilities"]["ambient"] = []  # refused for a user other than root
    b = make_bundle(tmp_path / "b", ["id"])
    edit(b, change)
    out = oci("run", "--bundle", str(b), "c1").stdout.strip()
    assert out == "uid=1000(user) gid=1000(user) groups=1000(user),2000(extra)"


def test_seccomp_profile(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "mkdir /tmp/d 2>&1 || echo refused; touch /tmp/f && echo touched"])
    edit(b, lambda c: c["root"].update(readonly=False))
    edit(b, lambda c: c["linux"].update(seccomp={
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    r = oci("run", "--bundle", str(b), "c1")
    assert "refused" in r.stdout and "touched" in r.stdout and "not permitted" in r.stdout


def test_console_socket(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "tty; echo on-the-tty"])
    edit(b, lambda c: c["process"].update(terminal=True))
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    r = oci("create", "--bundle", str(b), "--console-socket", path, "c1")
    assert r.returncode == 0
    conn, _ = server.accept()
    name, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    assert len(fds) == 1 and name.startswith(b"/dev/pts/")
    master = fds[0]
    oci("start", "c1")
    data = b""
    deadline = time.monotonic() + 20
    while b"on-the-tty" not in data and time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    assert b"/dev/pts/0" in data and b"on-the-tty" in data, data
    os.close(master)
    conn.close()
    server.close()
    wait_for(lambda: oci.status("c1") == "stopped", what="stopped")
    oci("delete", "c1")


def test_terminal_needs_a_console_socket(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["true"])
    edit(b, lambda c: c["process"].update(terminal=True))
    r = oci("create", "--bundle", str(b), "c1", check=False)
    assert r.returncode == 1 and "console-socket" in r.stderr
    assert left_in(oci.state) == []


# ---- refusals: one line, exit 1, nothing left -------------------------------------------------
@pytest.mark.parametrize("field, change", [
    ("hooks", lambda c: c.update(hooks={"prestart": [{"path": "/bin/true"}]})),
    ("linux.namespaces", lambda c: c["linux"]["namespaces"].append({"type": "network", "path": "/proc/1/ns/net"})),
    ("linux.namespaces", lambda c: c["linux"].update(namespaces=[{"type": "mount"}])),
    ("linux.uidMappings", lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 0, "size": 1}])),
    ("linux.intelRdt", lambda c: c["linux"].update(intelRdt={"closID": "x"})),
    ("process.apparmorProfile", lambda c: c["process"].update(apparmorProfile="docker-default")),
    ("linux.devices", lambda c: c["linux"].update(devices=[{"path": "/dev/sda", "type": "b", "major": 8,
                                                            "minor": 0}])),
    ("linux.sysctl", lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"})),
    ("ociVersion", lambda c: c.update(ociVersion="0.5.0")),
    ("mounts", lambda c: c["mounts"].append({"destination": "/x", "type": "overlay", "source": "overlay"})),
    ("does not exist", lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/nonexistent",
                                                     "options": ["rbind"]})),
])
def test_refusals(oci, bundle, field, change):
    edit(bundle, change)
    for command in ("create", "run"):
        r = oci(command, "--bundle", str(bundle), "c1", check=False)
        assert r.returncode == 1, r.stderr
        errors = [line for line in r.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and field in errors[0] and "Traceback" not in r.stderr, r.stderr
        assert left_in(oci.state) == []


def test_bad_input(oci, bundle, tmp_path):
    for cid in ("", "..", "a/b", "../x"):
        r = oci("create", "--bundle", str(bundle), cid, check=False)
        assert r.returncode == 1 and "invalid container ID" in r.stderr, r.stderr
    r = oci("create", "--bundle", str(tmp_path / "nope"), "c1", check=False)
    assert r.returncode == 1 and "not a directory" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config.json" in oci("create", "--bundle", str(empty), "c1", check=False).stderr
    (empty / "config.json").write_text("{not json")
    r = oci("create", "--bundle", str(empty), "c1", check=False)
    assert r.returncode == 1 and "config.json" in r.stderr and len(r.stderr.splitlines()) <= 2
    assert left_in(oci.state) == []
    r = oci("frobnicate", "c1", check=False)
    assert r.returncode == 1 and "unknown command" in r.stderr
    r = oci("create", "--bogus", "c1", check=False)
    assert r.returncode == 1 and "unknown option" in r.stderr
    # an ID that exists: refused, the first one untouched
    edit(bundle, lambda c: c["process"].update(args=["sleep", "100"]))
    oci("create", "--bundle", str(bundle), "c1")
    r = oci("create", "--bundle", str(bundle), "c1", check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    assert oci.status("c1") == "created"
    oci("delete", "c1")
    assert left_in(oci.state) == []


def test_globals_and_log(oci, bundle, tmp_path):
    log = tmp_path / "runc.log"
    r = subprocess.run([str(BIN / "rootless-runc"), "--root", str(oci.state), f"--log={log}", "--log-format=json",
                        "--rootless=true", "--systemd-cgroup", "state", "nope"], capture_output=True, text=True)
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nope" in entry["msg"] and entry["time"]
    from rootless.runtime import cgroups
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == (1 if cgroups.detect().delegated is None else 0), r.stderr  # --systemd-cgroup
    r = oci("--rootless", "auto", "--debug", "run", "--bundle", str(bundle), "c1", check=False)
    assert r.returncode == 3, r.stderr
    r = oci("--rootless=false", "state", "x", check=False)
    assert r.returncode == 1 and "--rootless=false" in r.stderr
    r = subprocess.run([str(BIN / "rootless-runc"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "create" in r.stdout and "--console-socket" in r.stdout


def test_default_state_dir(bundle, tmp_path):
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "xdg"))
    os.mkdir(tmp_path / "xdg", 0o700)
    r = subprocess.run([str(BIN / "rootless-runc"), "run", "--bundle", str(bundle), "c1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and (tmp_path / "xdg" / "rootless-oci" / "containers").is_dir(), r.stderr


# ---- Slurm 22.05's oci.conf ---------------------------------------------------------------------
def slurm_config(bundle: Path, spool: Path, args: list[str]) -> Path:
    """What slurmstepd does with the bundle's config.json: a copy in the task's spool directory
    (the bundle it then names), with root.path made absolute, process.terminal set, process.env
    replaced by the step's environment, process.args by the task's, and its spool directory bound
    (type none, option bind); the copy is 0750."""
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["root"]["path"] = str(bundle / config["root"]["path"])
    config["mounts"].append({"destination": "/var/spool/slurmd", "type": "none", "source": str(spool),
                             "options": ["bind"]})
    config["process"]["env"] = ["PATH=/bin:/usr/bin", "SLURM_JOB_ID=12", "SLURM_STEP_ID=0", "SLURM_PROCID=0"]
    config["process"]["args"] = args
    task = spool / "task-0"
    task.mkdir(parents=True)
    (task / "config.json").write_text(json.dumps(config))
    (task / "config.json").chmod(0o750)
    return task


def test_slurm_oci_conf_lifecycle(tmp_path):
    """runtime{Create,Start,Query,Kill,Delete} as oci.conf spells them (%n.%u.%j.%s.%t for the ID)."""
    b = slurm_config(make_bundle(tmp_path / "image", ["true"]), tmp_path / "spool",
                     ["sh", "-c", "echo job $SLURM_JOB_ID; ls /var/spool/slurmd/task-0; touch /etc/x || true"])
    root = f"--root={tmp_path}/rlo-{os.getuid()}"
    cid = f"node1.{os.getuid()}.12.0.0"
    runc = [str(BIN / "rootless-runc"), "--rootless=true", root]
    out = tmp_path / "task.out"
    with open(out, "w") as f:
        subprocess.run(runc + ["create", "--bundle", str(b), cid], stdout=f, stderr=subprocess.STDOUT, check=True,
                       timeout=60)
    state = json.loads(subprocess.run(runc + ["state", cid], capture_output=True, text=True, check=True).stdout)
    assert state["status"] == "created"
    subprocess.run(runc + ["start", cid], check=True, timeout=60)
    wait_for(lambda: json.loads(subprocess.run(runc + ["state", cid], capture_output=True, text=True).stdout)
             ["status"] == "stopped", what="the step's end")
    subprocess.run(runc + ["kill", "-a", cid], capture_output=True, timeout=60)  # Slurm kills anyway: may fail
    subprocess.run(runc + ["delete", "--force", cid], check=True, timeout=60)
    text = out.read_text()
    assert "job 12\nconfig.json\n" in text and "Read-only file system" in text, text  # runc spec's readonly root
    assert left_in(tmp_path / f"rlo-{os.getuid()}") == []
    # RunTimeRun as Slurm's oci.conf documents it: "... run %n.%u.%j.%s.%t -b %b" (options after the ID)
    r = subprocess.run(runc + ["run", cid, "-b", str(b)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("job 12\n"), r.stderr
    assert left_in(tmp_path / f"rlo-{os.getuid()}") == []


def test_runtime_spec_example_adapted(oci, tmp_path):
    """The runtime-spec's example config (config.md), with what a rootless runtime refuses taken
    out (``tests/unit/test_ocispec.py``'s EXAMPLE_REFUSED: hooks, timeOffsets, mountLabel, SELinux,
    AppArmor, ioPriority, hugepage and network resources, the time namespace, ambient capabilities
    of a user other than root, swappiness, realtime/idle/mems CPU settings, blockIO's leafWeight,
    devices to create) and the id maps made the caller's."""
    import pwd

    from tests.unit.test_ocispec import adapted_example
    name = pwd.getpwuid(os.getuid()).pw_name
    subs = [line.split(":") for line in Path("/etc/subuid").read_text().splitlines()]
    mine = next((s for s in subs if s[0] in (name, str(os.getuid()))), None)
    if mine is None:
        pytest.skip("no subordinate ids for this user")
    c = adapted_example()
    for key, own in (("uidMappings", os.getuid()), ("gidMappings", os.getgid())):
        c["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                           {"containerID": 1, "hostID": int(mine[1]), "size": 65536}]
    c["linux"]["resources"]["cpu"]["cpus"] = "0"
    c["process"]["terminal"] = False
    c["process"]["args"] = ["sh", "-c", "hostname; id; cat /proc/sys/net/core/somaxconn; ulimit -n; "
                                        "cat /proc/self/oom_score_adj; ip -o link | wc -l"]
    b = make_bundle(tmp_path / "b", ["true"])
    (b / "config.json").write_text(json.dumps(c))
    r = oci("run", "--bundle", str(b), "c1")
    assert r.stdout.splitlines() == ["slartibartfast", "uid=1 gid=1 groups=1,5,6", "256", "1024", "100", "1"], r.stderr
    st_lines = [line for line in r.stderr.splitlines() if line]
    assert all("warning" in line and "linux.resources" in line for line in st_lines), r.stderr  # no cgroup: warned


def test_attached_run_with_a_terminal_relays_it(oci, tmp_path):
    """process.terminal without --console-socket, attached on a terminal: relayed as `rootless run -t`."""
    import pty
    b = make_bundle(tmp_path / "b", ["sh", "-c", "tty; read x; echo got:$x; exit 4"])
    edit(b, lambda c: c["process"].update(terminal=True))
    pid, master = pty.fork()
    if pid == 0:
        argv = oci.argv("run", "--bundle", str(b), "c1")
        os.execv(argv[0], argv)
    data = b""
    os.write(master, b"typed\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 4, data
    assert b"/dev/pts/0" in data and b"got:typed" in data, data
    assert left_in(oci.state) == []


def test_kill_of_a_created_container(oci, tmp_path):
    """A created container's process (waiting for `start`) ends on kill's default SIGTERM, as runc's."""
    b = make_bundle(tmp_path / "b", ["sleep", "100"])
    oci("create", "--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "c1")
    pid = int((tmp_path / "pid").read_text())
    oci("kill", "c1")
    wait_for(lambda: oci.status("c1") == "stopped", what="stopped")
    assert not alive(pid)
    assert oci("start", "c1", check=False).returncode == 1
    oci("delete", "c1")
    assert left_in(oci.state) == []


def test_a_command_that_cannot_run(oci, tmp_path):
    b = make_bundle(tmp_path / "b", ["no-such-command"])
    for args in (("run",), ("run", "-d")):
        r = oci(*args, "--bundle", str(b), "c1", check=False)
        assert r.returncode == 1 and "no-such-command" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) <= 2
        assert left_in(oci.state) == []


def test_ids_alike_in_their_first_characters(oci, tmp_path):
    """Slurm's IDs of one step's tasks differ at the end only (and runc allows + and a leading _):
    each is a container of its own (its record, runtime directory and cgroup)."""
    b = make_bundle(tmp_path / "b", ["sleep", "100"])
    ids = ["node1.1000.12.0.0", "node1.1000.12.0.1", "_x+y"]
    for cid in ids:
        oci("run", "-d", "--bundle", str(b), cid)
    assert sorted(oci("list", "-q").stdout.split()) == sorted(ids)
    pids = {cid: oci.state_of(cid)["pid"] for cid in ids}
    assert len(set(pids.values())) == 3
    oci("delete", "--force", ids[0])
    assert not alive(pids[ids[0]]) and alive(pids[ids[1]]) and oci.status(ids[1]) == "running"
    for cid in ids[1:]:
        oci("delete", "--force", cid)
    assert left_in(oci.state) == []


def test_host_pid_namespace(oci, tmp_path):
    """No pid namespace in the config: the host's (PID 1 is not 1; /proc is the host's)."""
    b = make_bundle(tmp_path / "b", ["sh", "-c", "echo $$; test -d /proc/1 && echo host-proc"])
    edit(b, lambda c: c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "pid"]))
    r = oci("run", "--bundle", str(b), "c1")
    lines = r.stdout.split()
    assert int(lines[0]) > 1 and lines[1] == "host-proc", r.stdout + r.stderr
    assert left_in(oci.state) == []
