"""Docker's security envelope without root: capabilities (--cap-add/--cap-drop/--privileged),
no_new_privs (--security-opt), masked and read-only paths, --device; and what a container
cannot reach whatever its flags (device nodes, host processes, host files)."""

from __future__ import annotations

import os

import pytest

from rootless.runtime.security import ALL_CAPS
from tests.conftest import Rootless, inspect

pytestmark = pytest.mark.userns

DOCKER_DEFAULT = 0xA80425FB


@pytest.fixture
def bb(busybox) -> Rootless:
    return busybox


def sh(rl: Rootless, script: str, *flags: str, expect: int = 0) -> str:
    return rl("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", script, expect=expect).out


def status(rl: Rootless, *flags: str) -> dict[str, str]:
    out = sh(rl, "cat /proc/self/status", *flags)
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


@pytest.mark.parametrize("flags, caps, nnp", [
    ((), DOCKER_DEFAULT, "0"),
    (("--cap-drop", "ALL"), 0, "0"),
    (("--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--security-opt", "no-new-privileges"), 1 << 12, "1"),
    (("--cap-add", "sys_admin", "--cap-drop", "CAP_CHOWN"), (DOCKER_DEFAULT | 1 << 21) & ~1, "0"),
    (("--security-opt", "no-new-privileges=true"), DOCKER_DEFAULT, "1"),
    (("--security-opt", "no-new-privileges:false"), DOCKER_DEFAULT, "0"),
])
def test_capabilities_and_no_new_privs(bb, flags, caps, nnp):
    st = status(bb, *flags)
    assert int(st["CapBnd"].strip(), 16) == caps and st["NoNewPrivs"].strip() == nnp


def test_a_dropped_capability_is_gone_in_exec_too(bb):
    cid = bb("run", "-d", "--network", "none", "--cap-drop", "CHOWN", "busybox", "sleep", "300").out.strip()
    r = bb("exec", cid, "chown", "1", "/tmp", expect=1)
    assert "Operation not permitted" in r.err
    out = bb("exec", cid, "grep", "CapBnd", "/proc/self/status").out
    assert int(out.split()[1], 16) == DOCKER_DEFAULT & ~1
    hc = inspect(bb, cid)["HostConfig"]
    assert hc["CapDrop"] == ["CHOWN"] and hc["CapAdd"] is None and hc["Privileged"] is False


def test_masked_and_read_only_paths(bb):
    out = sh(bb, "cat /proc/keys | wc -c; cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; "
                 "echo 1 > /proc/sysrq-trigger 2>/dev/null || echo ro")
    assert out.split() == ["0", "0", "0", "ro"]


def test_privileged(bb):
    st = status(bb, "--privileged")
    assert int(st["CapBnd"].strip(), 16) == (1 << (last_cap() + 1)) - 1
    assert len(ALL_CAPS) >= last_cap() + 1
    out = sh(bb, "cat /proc/keys | wc -c; ls /dev", "--privileged")
    assert int(out.split()[0]) > 0  # not masked
    usable = [n for n in ("fuse", "kvm", "loop-control") if os.path.exists(f"/dev/{n}")
              and os.access(f"/dev/{n}", os.R_OK | os.W_OK)]
    for name in usable:  # the host devices this user may open
        assert name in out.split()[1:]
    cid = bb("create", "--privileged", "busybox", "true").out.strip()
    assert inspect(bb, cid)["HostConfig"]["Privileged"] is True


def test_device(bb):
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("/dev/fuse is not usable by this user")
    out = sh(bb, "ls -l /dev/myfuse", "--device", "/dev/fuse:/dev/myfuse")
    assert out.startswith("c") and "10, 229" in out
    cid = bb("create", "--device", "/dev/fuse", "busybox", "true").out.strip()
    assert inspect(bb, cid)["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]


@pytest.mark.parametrize("flags, message", [
    (("--cap-add", "BOGUS"), "unknown capability: 'BOGUS'"),
    (("--security-opt", "seccomp=/nonexistent.json"), "seccomp=/nonexistent.json: no such file or directory"),
    (("--security-opt", "seccomp:/etc/passwd"), "seccomp profile /etc/passwd: not JSON"),
    (("--security-opt", "nosuch"), "invalid --security-opt"),
    (("--device", "/dev/nonexistent"), "--device /dev/nonexistent: no such file or directory"),
    (("--device", "/etc/passwd"), "not a device node"),
    (("--device", "/dev/null:/dev/x:rwz"), "invalid --device"),
])
def test_bad_security_flags(bb, flags, message):
    r = bb("run", "--rm", *flags, "busybox", "true", expect=125)
    assert message in r.err and len(r.err.splitlines()) <= 2
    assert bb("ps", "-aq").out == ""


# ---- what no flag opens --------------------------------------------------------------------------
def test_mknod_of_a_device_fails_even_as_root_with_mknod(bb):
    r = bb("run", "--rm", "--network", "none", "--cap-add", "ALL", "busybox", "mknod", "/tmp/mem", "c", "1", "1",
           expect=1)
    assert "Operation not permitted" in r.err


def test_host_processes_cannot_be_signalled_or_seen(bb):
    me = os.getpid()
    out = sh(bb, f"kill -0 {me} 2>&1 || echo refused; ls /proc | grep -c '^[0-9]'")
    assert "refused" in out and int(out.split()[-1]) < 5  # only the container's own processes


def test_proc_1_root_is_the_containers_own_root(bb):
    out = sh(bb, "ls /proc/1/root/; cat /proc/1/root/etc/hostname", "-h", "inside")
    assert "bin" in out and out.strip().endswith("inside")
    host_only = sh(bb, "test -e /proc/1/root/home/rltest && echo seen || echo unseen")
    assert host_only.strip() == "unseen"


def test_no_descriptor_of_the_cli_or_the_runtime_crosses_into_the_container(bb, tmp_path):
    """A descriptor the calling shell left open (not close-on-exec) reaches neither the container's
    command nor an exec'd one: only stdin, stdout and stderr do."""
    import subprocess

    from tests.conftest import rootless_argv
    leaked = open(tmp_path / "secret", "w")  # noqa: SIM115 - held open across the calls
    try:
        os.set_inheritable(leaked.fileno(), True)

        def fds(*args: str) -> list[str]:
            cp = subprocess.run(rootless_argv() + list(args), env=bb.env, capture_output=True, text=True,
                                timeout=120, pass_fds=(leaked.fileno(),), stdin=subprocess.DEVNULL)
            assert cp.returncode == 0, cp.stderr
            return cp.stdout.split()
        assert fds("run", "--rm", "--network", "none", "busybox", "ls", "/proc/self/fd") == ["0", "1", "2", "3"]
        cid = bb("run", "-d", "--network", "none", "busybox", "sleep", "300").out.strip()
        assert fds("exec", cid, "ls", "/proc/self/fd") == ["0", "1", "2", "3"]  # 3: the directory ls reads
    finally:
        leaked.close()


def test_the_tool_and_its_helpers_are_out_of_the_containers_sight(bb):
    """The CVE-2019-5736 pattern: no process of the runtime (keeper, exec helper, the CLI's
    interpreter) is visible inside, so none of their executables can be reached from there."""
    cid = bb("run", "-d", "--network", "none", "busybox", "sleep", "300").out.strip()
    out = bb("exec", cid, "sh", "-c", "for p in /proc/[0-9]*; do readlink $p/exe; done").out
    assert set(out.split()) == {"/bin/busybox"}, out  # sleep, sh and the loop: the container's own


def test_the_keepers_open_files_are_out_of_reach(bb):
    """The keeper (outside the container's pid namespace) holds host files open, the container's
    log among them: none of them, nor the keeper's process, can be reached from inside, and the
    container's own processes hold only pipes to it and /dev/null."""
    cid = bb("run", "-d", "--network", "none", "busybox", "sleep", "300").out.strip()
    pid = inspect(bb, cid)["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        keeper = int(f.read().rsplit(")", 1)[1].split()[1])
    held = {os.readlink(f"/proc/{keeper}/fd/{n}") for n in os.listdir(f"/proc/{keeper}/fd")}
    files = sorted(p for p in held if p.startswith("/") and not p.startswith("/dev/"))
    assert any(p.endswith(".log") for p in files), held
    script = "; ".join(f"test -e '{p}' && echo 'seen {p}'" for p in files)
    out = bb("exec", cid, "sh", "-c", f"{script}; test -e /proc/{keeper}/fd && echo seen-keeper; "
             "for f in /proc/[0-9]*/fd/*; do echo \"fd $(readlink $f)\"; done").out
    assert "seen" not in out, out
    inside = {line[3:] for line in out.splitlines() if line.startswith("fd ")} - {""}  # "": gone meanwhile
    assert not inside & set(files)
    assert all(t.startswith(("pipe:", "/dev/null", "/proc/")) for t in inside), inside  # /proc: the loop's own


@pytest.mark.parametrize("flags, mode, unshare", [
    ((), "2", False),  # the default profile: filtered, and unshare needs CAP_SYS_ADMIN as in Docker's
    (("--cap-add", "SYS_ADMIN"), "2", True),
    (("--security-opt", "seccomp=unconfined"), "0", True),
    (("--privileged",), "0", True),
])
def test_the_default_seccomp_profile(bb, flags, mode, unshare):
    out = sh(bb, "grep '^Seccomp:' /proc/self/status; unshare -U true 2>/dev/null && echo unshared; true", *flags)
    assert out.split()[1] == mode
    assert ("unshared" in out) == unshare
    cid = bb("run", "-d", "--network", "none", *flags, "busybox", "sleep", "300").out.strip()
    assert bb("exec", cid, "grep", "^Seccomp:", "/proc/self/status").out.split()[1] == mode  # exec too
    opts = inspect(bb, cid)["HostConfig"]["SecurityOpt"] or []
    assert ("seccomp=unconfined" in opts) == (flags == ("--security-opt", "seccomp=unconfined"))


def test_a_seccomp_profile_of_ones_own(bb, tmp_path):
    """``--security-opt seccomp=FILE`` in Docker's format: its rules hold in the container and in
    ``exec``; the record keeps the profile's text (inspect shows it, as Docker does), so a later
    change to the file does not change the container."""
    import json
    path = tmp_path / "no-mkdir.json"
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path.write_text(json.dumps(profile))
    out = sh(bb, "mkdir /tmp/x 2>&1; echo rc=$?; grep ^Seccomp: /proc/self/status", "--security-opt",
             f"seccomp={path}")
    assert "Permission denied" in out and "rc=1" in out and "Seccomp:\t2" in out
    cid = bb("run", "-d", "--network", "none", "--security-opt", f"seccomp={path}", "busybox", "sleep",
             "300").out.strip()
    path.write_text("{}")  # the container keeps the profile it was made with
    r = bb("exec", cid, "mkdir", "/tmp/y", expect=1)
    assert "Permission denied" in r.err
    opts = inspect(bb, cid)["HostConfig"]["SecurityOpt"]
    assert len(opts) == 1 and json.loads(opts[0].removeprefix("seccomp=")) == profile


@pytest.mark.skipif(not os.path.exists("/usr/share/containers/seccomp.json"),
                    reason="no containers-common profile here (podman's package brings it)")
def test_podmans_seccomp_profile_runs_a_container(bb):
    out = sh(bb, "grep ^Seccomp: /proc/self/status; mkdir /tmp/d && echo made", "--security-opt",
             "seccomp=/usr/share/containers/seccomp.json")
    assert "Seccomp:\t2" in out and "made" in out


def test_every_namespace_of_the_container_is_its_own(bb):
    cid = bb("run", "-d", "--network", "none", "busybox", "sleep", "300").out.strip()
    pid = inspect(bb, cid)["State"]["Pid"]
    for ns in ("user", "mnt", "pid", "net", "uts", "ipc", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
