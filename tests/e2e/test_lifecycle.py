"""Containers as objects that outlive a command: detached runs, the keeper, logs, stop/start, rm."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.conftest import Rootless, inspect, rootless_argv, status, wait_for

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def test_run_detached_prints_the_id_and_keeps_running(bb):
    r = bb("run", "-d", "--name", "bg", "busybox", "sh", "-c", "echo started; sleep 30")
    cid = r.out.strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    assert status(bb, "bg") == "running"
    assert bb("ps", "-q").out.split() == [cid[:12]]
    wait_for(lambda: "started" in bb("logs", "bg").out, what="the log")
    bb("rm", "-f", "bg")
    assert bb("ps", "-aq").out == ""


def test_detached_run_returns_at_once_in_a_command_substitution(bb):
    # The keeper must not hold the CLI's stdout: `$(rootless run -d ...)` returns while it runs.
    p = subprocess.run(["sh", "-c", "id=$(\"$@\"); echo \"$id\""] + ["sh"] + rootless_argv()
                       + ["run", "-d", "busybox", "sleep", "30"], env=bb.env, capture_output=True, timeout=20)
    assert p.returncode == 0 and len(p.stdout.strip()) == 64
    bb("rm", "-f", p.stdout.decode().strip())


def test_a_detached_container_outlives_the_session_that_started_it(bb):
    """Logging out of an ssh session or closing a terminal ends its session: its processes get
    SIGHUP and the leader exits. A container started with -d there keeps running (no
    XDG_RUNTIME_DIR, no systemd user session needed: the conftest's env has neither in CI)."""
    env = {k: v for k, v in bb.env.items() if k != "XDG_RUNTIME_DIR"}
    shell = subprocess.Popen(["setsid", "sh", "-c", '"$@" >id.txt; echo started; exec sleep 300', "sh",
                              *rootless_argv(), "run", "-d", "--name", "outlives", "busybox", "sleep", "300"],
                             env=env, cwd=bb.base, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert shell.stdout.readline() == b"started\n"
    os.killpg(shell.pid, signal.SIGHUP)  # the whole session, as a hangup does
    shell.wait(timeout=10)

    def tool(*args):
        return subprocess.run(rootless_argv() + list(args), env=env, capture_output=True, text=True, timeout=60)
    try:
        assert tool("inspect", "-f", "{{.State.Status}}", "outlives").stdout.strip() == "running"
        assert tool("exec", "outlives", "echo", "alive").stdout == "alive\n"
    finally:
        tool("rm", "-f", "outlives")


def test_file_survives_stop_start_and_is_gone_after_rm_and_new_run(bb):
    bb("run", "-d", "--name", "keep", "busybox", "sh", "-c", "echo kept > /data.txt; sleep 30")
    wait_for(lambda: bb("logs", "keep").code == 0 and status(bb, "keep") == "running", what="running")
    bb("stop", "-t", "1", "keep")
    assert status(bb, "keep") == "exited"
    st = inspect(bb, "keep")["State"]
    assert st["ExitCode"] == 137 and st["Running"] is False  # sh ignores SIGTERM as PID 1
    bb("start", "keep")
    assert status(bb, "keep") == "running"
    r = bb("run", "--rm", "busybox", "cat", "/data.txt", expect=1)
    assert "No such file" in r.err
    bb("stop", "-t", "0", "keep")
    bb("rm", "keep")
    bb("run", "--name", "keep", "busybox", "sh", "-c", "test ! -e /data.txt")


def test_start_again_keeps_settings_and_the_writable_layer(bb):
    bb("create", "--name", "c1", "-e", "FOO=bar", "-w", "/work", "busybox", "sh", "-c",
       'echo "$FOO $(pwd)"; echo x >> /count; wc -l < /count')
    assert status(bb, "c1") == "created"
    assert bb("start", "-a", "c1").out == "bar /work\n1\n"
    assert bb("start", "-a", "c1").out == "bar /work\n2\n"
    assert bb("logs", "c1").out == "bar /work\n1\nbar /work\n2\n"


def test_logs_streams_and_follow_ends_when_the_container_stops(bb):
    bb("run", "-d", "--name", "talker", "busybox", "sh", "-c",
       "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.2; done")
    r = bb("logs", "-f", "talker", timeout=30)
    assert r.out == "out1\nout2\nout3\n"
    assert r.err == "err1\nerr2\nerr3\n"
    last = bb("logs", "--tail", "2", "talker")  # the last two lines of both streams together
    assert (last.out, last.err) == ("out3\n", "err3\n")
    stamped = bb("logs", "-t", "talker").out.splitlines()
    assert stamped[0].endswith(" out1") and stamped[0][:4].isdigit() and "T" in stamped[0]


def test_foreground_run_is_logged_too(bb):
    bb("run", "--name", "fg", "busybox", "sh", "-c", "echo to-terminal")
    assert bb("logs", "fg").out == "to-terminal\n"


def test_stop_uses_the_stop_signal_and_records_the_exit(bb):
    bb("run", "-d", "--name", "graceful", "busybox", "sh", "-c",
       'trap "echo bye; exit 3" TERM; echo ready; while :; do sleep 0.1; done')
    wait_for(lambda: "ready" in bb("logs", "graceful").out, what="ready")
    bb("stop", "graceful")
    st = inspect(bb, "graceful")["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 3
    assert "bye" in bb("logs", "graceful").out
    assert "Exited (3)" in bb("ps", "-a").out


def test_stop_and_restart_with_another_signal(bb):
    """Docker's ``stop -s``/``restart -s`` (and the API's ``signal``): that signal instead of the stop signal."""
    bb("run", "-d", "--name", "hup", "busybox", "sh", "-c",
       'trap "echo got HUP; exit 4" HUP; trap "exit 9" TERM; echo ready; while :; do sleep 0.1; done')
    wait_for(lambda: "ready" in bb("logs", "hup").out, what="ready")
    bb("restart", "-s", "HUP", "-t", "5", "hup")
    assert bb("logs", "hup").out.count("got HUP") == 1 and inspect(bb, "hup")["State"]["Running"] is True
    wait_for(lambda: bb("logs", "hup").out.count("ready") == 2, what="ready again")
    bb("stop", "--signal", "SIGHUP", "hup")
    st = inspect(bb, "hup")["State"]
    assert st["ExitCode"] == 4 and bb("logs", "hup").out.count("got HUP") == 2
    r = bb("stop", "-s", "NOPE", "hup", expect=125)
    assert "invalid signal: NOPE" in r.err


def test_kill_and_wait(bb):
    bb("run", "-d", "--name", "victim", "busybox", "sleep", "60")
    p = subprocess.Popen(rootless_argv() + ["wait", "victim"], env=bb.env, stdout=subprocess.PIPE, text=True)
    bb("kill", "-s", "USR1", "victim")  # sleep dies of SIGUSR1 only if it has no handler: PID 1 ignores it
    assert status(bb, "victim") == "running"
    bb("kill", "victim")
    assert p.communicate(timeout=30)[0].strip() == "137"
    assert "cannot kill container victim: it is not running" in bb("kill", "victim", expect=1).err


def test_rm_of_a_running_container_is_refused_without_f(bb):
    bb("run", "-d", "--name", "busy", "busybox", "sleep", "60")
    r = bb("rm", "busy", expect=1)
    assert "cannot remove a running container" in r.err and "force remove" in r.err
    bb("rm", "-f", "busy")
    assert bb("ps", "-aq").out == ""


def test_ps_columns_status_filters_and_format(bb):
    bb("run", "--name", "done0", "busybox", "true")
    bb("run", "-d", "--name", "up1", "busybox", "sleep", "30")
    header = bb("ps", "-a").out.splitlines()[0]
    for col in ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"):
        assert col in header
    out = bb("ps", "-a").out
    assert "Exited (0)" in out and "Up " in out and " ago" in out
    assert bb("ps", "--format", "{{.Names}}").out.split() == ["up1"]
    assert sorted(bb("ps", "-a", "--format", "{{.Names}} {{.State}}").out.splitlines()) == [
        "done0 exited", "up1 running"]
    assert bb("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").out.split() == ["done0"]
    assert bb("ps", "-a", "--filter", "name=up", "-q").out.split() == [inspect(bb, "up1")["Id"][:12]]
    assert bb("ps", "-a", "--filter", "ancestor=busybox", "-q").out.count("\n") == 2
    assert bb("ps", "-l", "--format", "{{.Names}}").out.strip() == "up1"
    table = bb("ps", "--format", "table {{.ID}}\\t{{.Names}}").out.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and table[1].split()[1] == "up1"
    assert "template" in bb("ps", "--format", "{{.Nope | nosuchfunc}}", expect=125).err
    bb("rm", "-f", "up1")


def test_ps_limits_count_the_containers_the_filters_choose(bb):
    """``-n``/``-l`` keep the newest of the containers the filters choose, as ``GET
    /containers/json?limit=`` does (the CLI took the newest first, then filtered: often nothing)."""
    bb("run", "--name", "done0", "busybox", "true")
    bb("run", "-d", "--name", "up1", "busybox", "sleep", "30")
    assert bb("ps", "-l", "--filter", "name=done0", "--format", "{{.Names}}").out.split() == ["done0"]
    assert bb("ps", "-n", "1", "--filter", "status=exited", "--format", "{{.Names}}").out.split() == ["done0"]
    assert bb("ps", "-n", "2", "--format", "{{.Names}}").out.split() == ["up1", "done0"]
    bb("rm", "-f", "up1")


def test_ps_size_shows_the_writable_layer_and_the_virtual_size(bb):
    bb("run", "--name", "sized", "busybox", "dd", "if=/dev/zero", "of=/blob", "bs=1000", "count=300")
    rows = bb("ps", "-a", "-s").out.splitlines()
    assert rows[0].split()[-1] == "SIZE"
    assert bb("ps", "-a", "-s", "--format", "{{.Size}}").out.startswith("300kB (virtual ")
    assert bb("ps", "-a", "--format", "{{.Size}}").out == "\n"  # not asked: not measured, as Docker's


def test_api_list_with_size(api):
    api.docker("run", "--name", "sz", "--network", "none", "busybox", "dd", "if=/dev/zero", "of=/b", "bs=1000",
               "count=200")
    status_, rows = api.request("GET", "/v1.41/containers/json?all=1&size=1")
    assert status_ == 200 and 200_000 <= rows[0]["SizeRw"] < 260_000 and rows[0]["SizeRootFs"] > rows[0]["SizeRw"]
    assert "SizeRw" not in api.request("GET", "/v1.41/containers/json?all=1")[1][0]
    assert api.docker("ps", "-a", "-s", "--format", "{{.Size}}").out.startswith("200kB (virtual ")


def test_inspect_is_docker_shaped(bb):
    bb("run", "--name", "ins", "-e", "K=V", "busybox", "sh", "-c", "exit 4", expect=4)
    data = inspect(bb, "ins")
    for key in ("Id", "Name", "Created", "Path", "Args", "State", "Config", "HostConfig", "Mounts",
                "NetworkSettings", "Image", "GraphDriver"):
        assert key in data, key
    assert data["Name"] == "/ins" and data["Path"] == "sh" and data["Args"] == ["-c", "exit 4"]
    assert data["State"]["ExitCode"] == 4 and data["State"]["Status"] == "exited"
    for key in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
                "StartedAt", "FinishedAt"):
        assert key in data["State"], key
    assert "K=V" in data["Config"]["Env"]
    assert bb("inspect", "-f", "{{.Name}} {{.State.ExitCode}}", "ins").out == "/ins 4\n"
    assert json.loads(bb("inspect", "-f", "{{json .Config}}", "ins").out)["Env"] == data["Config"]["Env"]
    r = bb("inspect", "nosuch", expect=1)
    assert "no such object" in r.err.lower() or "no such container" in r.err.lower()


def test_ids_prefixes_and_names(bb):
    cid = bb("create", "busybox", "true").out.strip()
    name = inspect(bb, cid[:5])["Name"].lstrip("/")
    assert "_" in name  # a generated adjective_scientist name
    bb("rename", name, "renamed")
    assert inspect(bb, "renamed")["Id"] == cid
    bb("rm", cid[:12])
    assert bb("ps", "-aq").out == ""


def test_container_prune(bb):
    bb("run", "--name", "kept", "-l", "keep=yes", "busybox", "true")
    bb("run", "--name", "gone", "busybox", "sh", "-c", "echo some output")
    bb("run", "-d", "--name", "alive", "busybox", "sleep", "30")
    r = bb("container", "prune", "-f", "--filter", "until=1h")  # none is an hour old
    assert r.out == "Total reclaimed space: 0B\n"
    r = bb("container", "prune", "-f", "--filter", "label!=keep=yes")
    assert r.out.startswith("Deleted Containers:\n") and r.out.rstrip().endswith("B")  # Docker's size, not a count
    assert sorted(bb("ps", "-a", "--format", "{{.Names}}").out.split()) == ["alive", "kept"]
    bb("container", "prune", "-f", "--filter", "until=0s", "--filter", "label=keep")
    assert bb("ps", "-a", "--format", "{{.Names}}").out.split() == ["alive"]
    assert "invalid filter 'name=x'" in bb("container", "prune", "-f", "--filter", "name=x", expect=125).err
    bb("rm", "-f", "alive")


def test_concurrent_run_d_and_rm_f(bb):
    n = 20
    procs = [subprocess.Popen(rootless_argv() + ["run", "-d", "--name", f"c{i}", "busybox", "sleep", "30"],
                              env=bb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(n)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.decode().strip())
    names = sorted(bb("ps", "--format", "{{.Names}}").out.split())
    assert names == sorted(f"c{i}" for i in range(n))
    assert len(set(ids)) == n
    procs = [subprocess.Popen(rootless_argv() + ["rm", "-f", f"c{i}"], env=bb.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(n)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert bb("ps", "-aq").out == ""
    assert [d for d in (bb.root / "containers").iterdir()] == []


def test_name_clash_between_racing_clis(bb):
    procs = [subprocess.Popen(rootless_argv() + ["create", "--name", "same", "busybox", "true"], env=bb.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    codes = [p.wait(timeout=60) for p in procs]
    assert codes.count(0) == 1 and codes.count(125) == 5
    assert len(bb("ps", "-aq").out.split()) == 1


def test_a_killed_keeper_is_reconciled(bb):
    bb("run", "-d", "--name", "orphan", "busybox", "sleep", "60")
    keeper = inspect(bb, "orphan")["State"]["Pid"]
    with open(bb.root / "containers" / inspect(bb, "orphan")["Id"] / "container.json") as f:
        keeper = json.load(f)["state"]["keeper"]
    os.kill(keeper, signal.SIGKILL)
    wait_for(lambda: status(bb, "orphan") == "exited", what="reconciliation")
    assert inspect(bb, "orphan")["State"]["ExitCode"] == 137
    bb("start", "orphan")
    assert status(bb, "orphan") == "running"
    bb("rm", "-f", "orphan")


def test_a_wiped_runtime_dir_is_reconciled(bb):
    """A "reboot": every process gone and the runtime directory wiped."""
    import shutil
    bb("run", "-d", "--name", "boot", "busybox", "sleep", "60")
    with open(bb.root / "containers" / inspect(bb, "boot")["Id"] / "container.json") as f:
        st = json.load(f)["state"]
    os.kill(st["keeper"], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}"), what="the container to die")
    shutil.rmtree(bb.runtime / "rootless")
    assert status(bb, "boot") == "exited"
    bb("start", "boot")
    assert status(bb, "boot") == "running"
    bb("rm", "-f", "boot")


def test_stop_right_after_start_never_hangs(bb):
    """The keeper watches PID 1's first second with ptrace: signals in that second must go through."""
    def loop(prefix: str) -> subprocess.Popen:
        script = "; ".join(
            f'"$R" run -d --name {prefix}{i} busybox sleep 300 >/dev/null && "$R" stop -t 0 {prefix}{i} >/dev/null'
            for i in range(8))
        return subprocess.Popen(["sh", "-c", script], env=dict(bb.env, R=rootless_argv()[0]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    loops = [loop(p) for p in "xyz"]
    for p in loops:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    states = bb("ps", "-a", "--format", "{{.State}}").out.split()
    assert states == ["exited"] * 24


def test_format_errors_for_unknown_fields_and_quiet_broken_pipes(bb):
    bb("run", "--name", "f1", "busybox", "true")
    assert "can't evaluate field Nope" in bb("ps", "-a", "--format", "{{.Nope}}", expect=125).err
    assert "can't evaluate field Nope" in bb("inspect", "-f", "{{.State.Nope}}", "f1", expect=125).err
    assert bb("inspect", "-f", '{{index .Config.Labels "absent"}}', "f1").out == "\n"  # a map: empty, as Docker
    for i in range(30):
        bb("create", "--name", f"many{i}", "busybox", "true")
    p = subprocess.run(["sh", "-c", '"$R" ps -a | head -1'], env=dict(bb.env, R=rootless_argv()[0]),
                       capture_output=True, text=True, timeout=60)
    assert "CONTAINER ID" in p.stdout and "internal error" not in p.stderr
