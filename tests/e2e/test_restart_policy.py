"""Restart policies (``--restart``): the keeper decides at each exit, the restart monitor starts
the container again after Docker's back-off, and a stop by hand ends the policy for that run."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Rootless, inspect, status, wait_for

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(busybox) -> Rootless:
    return busybox


def state(rl: Rootless, name: str) -> dict:
    return inspect(rl, name)["State"]


def restart_count(rl: Rootless, name: str) -> int:
    return inspect(rl, name)["RestartCount"]


def monitors(rl: Rootless) -> list[str]:
    """The restart monitors of this test's store (processes named rootless-restart holding a
    restart lock of its containers: one forked by a warm command has the forker's environment)."""
    import os
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "rootless-restart"[:15]:  # comm: 15 chars
                    continue
            links = [os.readlink(f"/proc/{d}/fd/{fd}") for fd in os.listdir(f"/proc/{d}/fd")]
        except OSError:
            continue
        if any(link.startswith(str(rl.root)) and link.endswith("restart.lock") for link in links):
            found.append(d)
    return found


def settled(rl: Rootless, name: str, count: int) -> bool:
    """Exited for good after ``count`` restarts, and its monitor gone."""
    st = inspect(rl, name)
    return st["State"]["Status"] == "exited" and st["RestartCount"] == count and not monitors(rl)


def test_on_failure_with_a_maximum_restarts_that_many_times_then_stays_exited(bb):
    bb("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1")
    wait_for(lambda: settled(bb, "flaky", 2), what="two restarts, then exited")
    st = state(bb, "flaky")
    assert (st["ExitCode"], st["Restarting"], st["Running"]) == (1, False, False)
    assert bb("logs", "flaky").out == "run\nrun\nrun\n"  # the first run and two restarts
    policy = inspect(bb, "flaky")["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_on_failure_leaves_a_clean_exit_alone(bb):
    bb("run", "-d", "--name", "fine", "--restart", "on-failure", "busybox", "true")
    wait_for(lambda: settled(bb, "fine", 0), what="exited")
    assert state(bb, "fine")["ExitCode"] == 0


def test_always_restarts_after_exit_0_keeping_its_files(bb):
    # each run adds a line to a file of the container's own: a restart reuses its writable layer
    script = "echo . >> /runs; n=$(wc -l < /runs); echo run $n; [ $n -ge 3 ] && exec sleep 60; exit 0"
    bb("run", "-d", "--name", "again", "--restart", "always", "busybox", "sh", "-c", script)
    wait_for(lambda: bb("logs", "again").out.endswith("run 3\n"), what="the third run")
    assert bb("logs", "again").out == "run 1\nrun 2\nrun 3\n"
    assert status(bb, "again") == "running"
    assert restart_count(bb, "again") == 2
    events = bb("events", "--since", "0", "--until", "0s", "--filter", "container=again",
                "--format", "{{.Action}}").out.split()
    assert [e for e in events if e in ("start", "die")] == ["start", "die", "start", "die", "start"]


def test_stop_ends_the_policy_until_the_next_start(bb):
    # it ends by itself when /stop exists (removed at each start, so a restart runs until told again)
    script = "rm -f /stop; echo up; while [ ! -e /stop ]; do sleep 0.1; done"
    bb("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sh", "-c", script)
    bb("stop", "-t", "0", "svc")
    assert status(bb, "svc") == "exited"
    wait_for(lambda: not monitors(bb), what="the monitor to go")
    assert status(bb, "svc") == "exited" and restart_count(bb, "svc") == 0
    bb("start", "svc")  # started again: the policy applies again
    bb("exec", "svc", "touch", "/stop")
    wait_for(lambda: bb("logs", "svc").out == "up\nup\nup\n", what="a restart")
    assert status(bb, "svc") == "running" and restart_count(bb, "svc") == 1


def test_kill_ends_the_policy_too(bb):
    bb("run", "-d", "--name", "svc", "--restart", "unless-stopped", "busybox", "sleep", "60")
    bb("kill", "svc")
    wait_for(lambda: settled(bb, "svc", 0), what="exited for good")
    # in its back-off: kill ends the policy too (Docker's), with nothing to signal
    bb("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "exit 1")
    wait_for(lambda: restart_count(bb, "loop") >= 4, what="a few restarts")
    wait_for(lambda: state(bb, "loop")["Restarting"], what="the back-off")
    bb("kill", "loop")
    wait_for(lambda: not monitors(bb), what="the monitor to go")
    assert status(bb, "loop") == "exited"


def test_update_restart_changes_the_policy_of_a_running_container(bb):
    bb("run", "-d", "--name", "late", "busybox", "sh", "-c", "echo run; sleep 1; exit 3")
    bb("update", "--restart", "on-failure:1", "late")
    assert inspect(bb, "late")["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    wait_for(lambda: settled(bb, "late", 1), what="one restart")
    assert bb("logs", "late").out == "run\nrun\n" and state(bb, "late")["ExitCode"] == 3
    bb("update", "--restart", "no", "late")
    assert inspect(bb, "late")["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}


def test_the_back_off_grows_between_restarts(bb):
    bb("run", "-d", "--name", "crash", "--restart", "on-failure:5", "busybox", "sh", "-c", "exit 2")
    wait_for(lambda: settled(bb, "crash", 5), what="five restarts")
    lines = bb("events", "--since", "0", "--until", "0s", "--filter", "container=crash", "--filter", "event=die",
               "--filter", "event=start", "--format", "{{json .}}").out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["Action"] for e in events] == ["start", "die"] * 6
    waits = [events[i + 1]["timeNano"] - events[i]["timeNano"] for i in range(1, len(events) - 1, 2)]
    assert len(waits) == 5
    assert waits[-1] > waits[0]  # 100 ms first, 1.6 s before the fifth restart (order, not times)


# runs 1 to 3 exit 3, the later ones 4 (the writable layer keeps /n from one run to the next)
COUNTED = "n=$(cat /n 2>/dev/null || echo 0); echo $((n+1)) > /n; [ $n -ge 3 ] && exit 4; exit 3"


def in_third_back_off(st: dict) -> bool:
    """Between the third run's exit and the fourth run's start (a back-off of 400 ms)."""
    return st["State"]["Restarting"] and st["RestartCount"] == 3


def test_wait_on_a_container_in_its_back_off_waits_for_its_next_exit(bb):
    # Docker counts a restarting container as running: `wait` ends at its next exit, with that code
    bb("run", "-d", "--name", "flaky", "--restart", "on-failure:4", "busybox", "sh", "-c", COUNTED)
    wait_for(lambda: in_third_back_off(inspect(bb, "flaky")), what="the third back-off")
    assert bb("wait", "flaky").out == "4\n"  # the fourth run's, not the third's 3
    wait_for(lambda: settled(bb, "flaky", 4), what="the policy to give up")
    assert bb("wait", "flaky").out == "4\n"  # exited for good: at once, its last exit


def test_wait_ends_when_stop_takes_a_container_out_of_its_back_off(bb):
    import subprocess

    from tests.conftest import rootless_argv
    bb("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "exit 5")
    wait_for(lambda: restart_count(bb, "loop") >= 3 and state(bb, "loop")["Restarting"], what="the back-off")
    waiting = subprocess.Popen(rootless_argv() + ["wait", "loop"], env=bb.env, stdout=subprocess.PIPE, text=True)
    try:
        bb("stop", "loop")
        assert waiting.communicate(timeout=30)[0] == "5\n"
    finally:
        waiting.kill()
    assert status(bb, "loop") == "exited"


def test_api_wait_on_a_container_in_its_back_off_waits_for_its_next_exit(api):
    cid = api.docker("run", "-d", "--name", "flaky", "--restart", "on-failure:4", "busybox", "sh", "-c",
                     COUNTED).out.strip()
    wait_for(lambda: in_third_back_off(api.request("GET", f"/containers/{cid}/json")[1]), what="the third back-off")
    assert api.request("POST", f"/containers/{cid}/wait")[1] == {"StatusCode": 4, "Error": None}
    wait_for(lambda: settled(api.rl, "flaky", 4), what="the policy to give up")
    for condition in ("not-running", ""):
        assert api.request("POST", f"/containers/{cid}/wait?condition={condition}")[1]["StatusCode"] == 4


def test_a_restarting_container_is_refused_by_rm_and_removed_by_rm_f(bb):
    bb("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "exit 1")
    wait_for(lambda: restart_count(bb, "loop") >= 4, what="a few restarts")
    wait_for(lambda: state(bb, "loop")["Restarting"], what="the back-off")
    r = bb("rm", "loop", expect=None)
    assert r.code != 0 and "Stop the container before" in r.err
    bb("rm", "-f", "loop")
    assert bb("ps", "-aq").out == ""
    wait_for(lambda: not monitors(bb), what="the monitor to go")


def test_stop_takes_a_container_out_of_its_back_off(bb):
    bb("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "exit 1")
    bb("run", "-d", "--name", "done", "busybox", "true")
    wait_for(lambda: restart_count(bb, "loop") >= 4, what="a few restarts")
    wait_for(lambda: state(bb, "loop")["Restarting"], what="the back-off")
    assert bb("container", "prune", "-f").code == 0  # a restarting container is not pruned (running, to Docker)
    assert bb("ps", "-a", "--format", "{{.Names}}").out == "loop\n"
    bb("stop", "loop")
    wait_for(lambda: not monitors(bb), what="the monitor to go")
    assert status(bb, "loop") == "exited"


def test_api_stop_takes_a_container_out_of_its_back_off(api):
    api.docker("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "exit 1")

    def restarting() -> bool:
        flag, count = api.docker("inspect", "-f", "{{.State.Restarting}} {{.RestartCount}}", "loop").out.split()
        return flag == "true" and int(count) >= 3
    wait_for(restarting, what="the back-off")
    api.docker("stop", "loop")
    assert api.docker("inspect", "-f", "{{.State.Status}}", "loop").out == "exited\n"
    wait_for(lambda: not monitors(api.rl), what="the monitor to go")
    assert api.docker("inspect", "-f", "{{.State.Status}}", "loop").out == "exited\n"


def test_start_all_with_a_restart_policy_filter(bb):
    """After a reboot or a logout: `start --all --filter restart-policy=always` (the systemd user unit's command)."""
    bb("create", "--name", "svc", "--restart", "always", "busybox", "sleep", "60")
    bb("create", "--name", "job", "busybox", "sleep", "60")
    bb("create", "--name", "other", "--restart", "unless-stopped", "busybox", "sleep", "60")
    assert bb("ps", "-a", "--filter", "restart-policy=always", "--format", "{{.Names}}").out == "svc\n"
    assert bb("start", "--all", "--filter", "restart-policy=always").out == "svc\n"
    assert (status(bb, "svc"), status(bb, "job"), status(bb, "other")) == ("running", "created", "created")
    # unless-stopped, as Docker's daemon at its start: not one that was stopped by hand
    bb("start", "other")
    bb("stop", "-t", "0", "svc", "other")
    r = bb("start", "--all", "--filter", "restart-policy=always", "--filter", "restart-policy=unless-stopped")
    assert r.out == "svc\n"
    assert (status(bb, "svc"), status(bb, "other")) == ("running", "exited")
    r = bb("start", "svc", "--filter", "restart-policy=always", expect=125)
    assert "--filter chooses among --all" in r.err


def test_restart_refuses_bad_policies_and_rm(bb):
    r = bb("run", "--rm", "--restart", "always", "busybox", "true", expect=125)
    assert "conflicting options: --restart and --rm" in r.err
    r = bb("create", "--restart", "sometimes", "busybox", "true", expect=125)
    assert "invalid restart policy" in r.err
    r = bb("create", "--restart", "always:3", "busybox", "true", expect=125)
    assert "only for on-failure" in r.err
    assert bb("ps", "-aq").out == ""


# ---- through the API (the docker CLI, docker-py, Compose send HostConfig.RestartPolicy) ----------------------------
def test_api_create_with_a_policy_restarts_and_is_refused_by_rm(api):
    """docker-py's test_create_with_restart_policy: after the first exit, `rm` without force is
    refused (the container is restarting or running again), `rm -f` removes it."""
    status_, body = api.request("POST", "/v1.41/containers/create?name=loop", {
        "Image": "busybox", "Cmd": ["sh", "-c", "exit 1"],
        "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}, "NetworkMode": "none"}})
    assert status_ == 201, body
    assert api.request("POST", "/v1.41/containers/loop/start")[0] == 204
    assert api.request("POST", "/v1.41/containers/loop/wait")[0] == 200
    status_, body = api.request("DELETE", "/v1.41/containers/loop")
    assert status_ == 409 and "stop the container before" in body["message"].lower()
    wait_for(lambda: api.docker("inspect", "-f", "{{.RestartCount}}", "loop").out != "0\n", what="a restart")
    assert api.request("DELETE", "/v1.41/containers/loop?force=1")[0] == 204
    assert api.docker("ps", "-aq").out == ""
    wait_for(lambda: not monitors(api.rl), what="the monitor to go")


def test_docker_restart_of_a_rm_container_keeps_it(api):
    """`docker run -d --rm` then `docker restart`: running again (Docker's HasBeenManuallyRestarted),
    removed by the stop after."""
    cid = api.docker("run", "-d", "--rm", "--name", "rmr", "--network", "none", "busybox", "sleep", "300").out.strip()
    assert api.docker("restart", "-t", "0", "rmr").out == "rmr\n"
    assert api.docker("inspect", "-f", "{{.State.Running}} {{.HostConfig.AutoRemove}}", "rmr").out == "true true\n"
    assert api.docker("ps", "-q", "--no-trunc").out == cid + "\n"
    api.docker("stop", "-t", "0", "rmr")
    wait_for(lambda: api.docker("ps", "-aq").out == "", what="its removal")


def test_api_refuses_a_bad_policy_with_dockers_words(api):
    status_, body = api.request("POST", "/v1.41/containers/create", {
        "Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}})
    assert status_ == 400 and "maximum retry count cannot be used with restart policy 'always'" in body["message"]
    status_, body = api.request("POST", "/v1.41/containers/create", {
        "Image": "busybox", "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}})
    assert status_ == 400 and "--restart and --rm" in body["message"]


def test_api_update_changes_the_restart_policy(api):
    """docker-py's test_restart_policy_update, and `docker update --restart`."""
    api.docker("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sleep", "60")
    status_, body = api.request("POST", "/v1.41/containers/svc/update",
                                {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 42}})
    assert (status_, body) == (200, {"Warnings": []})
    policy = json.loads(api.docker("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", "svc").out)
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 42}
    api.docker("update", "--restart", "unless-stopped", "svc")
    assert api.docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "svc").out == "unless-stopped\n"
    status_, body = api.request("POST", "/v1.41/containers/svc/update", {"RestartPolicy": {"Name": "often"}})
    assert status_ == 400 and "invalid restart policy" in body["message"]


def test_docker_ps_shows_a_restarting_container(api):
    # (the docker CLI polls: the service ends after a few idle seconds)
    api.docker("run", "-d", "--name", "loop", "--restart", "on-failure:6", "busybox", "sh", "-c", "exit 3")

    def seen() -> bool:
        return api.docker("ps", "--format", "{{.Status}}").out.startswith("Restarting (3) ")
    wait_for(seen, what="Restarting (3) in docker ps")

    def done() -> bool:
        return api.docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
                          "loop").out == "exited 6 3\n"
    wait_for(done, what="six restarts, then exited")


def test_compose_v2_restart_policies(api, tmp_path):
    """Compose v2 sends `restart:` as HostConfig.RestartPolicy: `on-failure:2` restarts twice,
    `always` keeps a service that exits 0 coming back; `down` removes both."""
    import subprocess

    from tests.apiservice import DOCKER
    api.enable_compose()
    project = tmp_path / "rp"
    project.mkdir()
    (project / "compose.yaml").write_text("""\
services:
  flaky:
    image: busybox
    network_mode: none
    restart: on-failure:2
    command: sh -c "echo flaky-run; exit 1"
  tick:
    image: busybox
    network_mode: none
    restart: always
    command: sh -c "echo . >> /runs; [ $$(wc -l < /runs) -ge 3 ] && exec sleep 60; exit 0"
""")

    def compose(*args):
        cp = subprocess.run([DOCKER, "compose", "--ansi", "never", *args], cwd=project, env=api.docker_env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert cp.returncode == 0, f"{args}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}\n{api.service_log()[-2000:]}"
        return cp
    compose("up", "-d")

    def shows(name: str, text: str) -> bool:
        return api.docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}",
                          name).out == text
    wait_for(lambda: shows("rp-flaky-1", "exited 2 on-failure\n"), what="two restarts of flaky")
    wait_for(lambda: shows("rp-tick-1", "running 2 always\n"), what="tick running after two restarts")
    assert api.docker("logs", "rp-flaky-1").out == "flaky-run\n" * 3
    compose("down")
    assert api.docker("ps", "-aq").out == ""


def test_a_killed_keeper_counts_as_an_exit(bb):
    """The keeper killed (a crash): the record reads exited (137) and the policy restarts it."""
    import os
    import signal
    bb("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sleep", "60")
    keeper = json.loads(bb.root.joinpath("containers", inspect(bb, "svc")["Id"], "container.json").read_text())
    os.kill(keeper["state"]["keeper"], signal.SIGKILL)
    wait_for(lambda: restart_count(bb, "svc") == 1 and status(bb, "svc") == "running", what="a restart")
    assert state(bb, "svc")["ExitCode"] == 0  # the new run's
    # a reader that reconciles the record before the monitor looks (held still meanwhile) changes nothing
    wait_for(lambda: len(monitors(bb)) == 1, what="the monitor")
    monitor = int(monitors(bb)[0])
    keeper = json.loads(bb.root.joinpath("containers", inspect(bb, "svc")["Id"], "container.json").read_text())
    os.kill(monitor, signal.SIGSTOP)
    try:
        os.kill(keeper["state"]["keeper"], signal.SIGKILL)
        wait_for(lambda: status(bb, "svc") == "exited", what="the reconciled record")
        assert state(bb, "svc")["ExitCode"] == 137
    finally:
        os.kill(monitor, signal.SIGCONT)
    wait_for(lambda: restart_count(bb, "svc") == 2 and status(bb, "svc") == "running", what="a second restart")


def test_after_a_reboot_start_all_brings_back_the_restarting_ones(bb):
    """A reboot ends the monitors too: a container left restarting reads as exited (after a few
    seconds' grace), and `start --all --filter restart-policy=always` starts it again."""
    import os
    import signal
    bb("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 1")
    wait_for(lambda: restart_count(bb, "loop") >= 4, what="a few restarts")
    wait_for(lambda: state(bb, "loop")["Restarting"], what="the back-off")
    for pid in monitors(bb):
        os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: status(bb, "loop") == "exited", what="the stale restarting record to read as exited")
    assert not monitors(bb)
    assert bb("start", "--all", "--filter", "restart-policy=always").out == "loop\n"
    wait_for(lambda: restart_count(bb, "loop") >= 1 and monitors(bb), what="restarts again, under a new monitor")


def test_a_policy_given_back_to_a_restarted_container_still_restarts_it(bb):
    """`update --restart no` and back to `always` while it runs: still one monitor, and the next
    end of the container (killed from outside: not a stop by hand) restarts it."""
    script = "echo . >> /runs; n=$(wc -l < /runs); echo run $n; [ $n -ge 2 ] && exec sleep 60; exit 0"
    bb("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sh", "-c", script)
    wait_for(lambda: bb("logs", "svc").out == "run 1\nrun 2\n", what="the restarted run")
    bb("update", "--restart", "no", "svc")
    bb("update", "--restart", "always", "svc")
    wait_for(lambda: len(monitors(bb)) == 1, what="one monitor")
    import os
    import signal
    pid = state(bb, "svc")["Pid"]
    os.kill(pid, signal.SIGKILL)  # its end, not a stop by hand
    wait_for(lambda: bb("logs", "svc").out.endswith("run 3\n"), what="a restart under the new monitor")
    assert restart_count(bb, "svc") == 2 and status(bb, "svc") == "running"


def _in_back_off(api, name: str, runs: int = 5):
    """In the back-off after ``runs`` restarts (5: 3.2 s before the next run)."""
    def restarting() -> bool:
        flag, count = api.docker("inspect", "-f", "{{.State.Restarting}} {{.RestartCount}}", name).out.split()
        return flag == "true" and int(count) >= runs
    wait_for(restarting, what="the back-off")


@pytest.mark.parametrize("condition", ["next-exit", "not-running"])
def test_api_wait_ends_when_stop_takes_a_container_out_of_its_back_off(api, condition):
    """As Docker's: the back-off's end by ``stop`` is the exit a waiter waits for (the last run's code)."""
    import threading
    api.docker("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "exit 5")
    _in_back_off(api, "loop")
    answer: list = []
    waiter = threading.Thread(target=lambda: answer.append(
        api.request("POST", f"/containers/loop/wait?condition={condition}")), daemon=True)
    waiter.start()
    time.sleep(0.5)  # the wait is registered (its headers came) before the stop
    api.docker("stop", "loop")
    waiter.join(30)
    assert answer == [(200, {"StatusCode": 5, "Error": None})]
    assert api.docker("inspect", "-f", "{{.State.Status}}", "loop").out == "exited\n"


def test_api_attach_ends_when_stop_takes_a_container_out_of_its_back_off(api):
    """An attached stream (a client's attach to a container in its back-off: the next run's
    output) ends with the back-off's end by ``stop``."""
    import socket
    api.docker("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c", "echo run; exit 5")
    _in_back_off(api, "loop")
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(api.socket))
        s.sendall(b"POST /containers/loop/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        time.sleep(0.3)
        api.docker("stop", "loop")
        assert time.monotonic() - started < 3, "the stop came after the back-off"
        got = b""
        while chunk := s.recv(65536):  # a hang here times out: the stream never ended
            got += chunk
    assert got.startswith(b"HTTP/1.1 101")


def test_exec_into_a_container_in_its_back_off_is_refused_as_docker(api):
    """Docker: running, but restarting: an exec is refused (409 on the API, exit 1 on the CLI)
    with its text, rather than joining no process."""
    cid = api.docker("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c",
                     "exit 5").out.strip()
    _in_back_off(api, "loop")
    text = f"Container {cid} is restarting, wait until the container is running"
    assert api.request("POST", "/containers/loop/exec", {"Cmd": ["true"]}) == (409, {"message": text})
    assert text in api.docker("exec", "loop", "true", expect=1).err
    r = api.rl("exec", "loop", "true", expect=1)
    assert r.err.startswith(f"rootless: error: {text}\n")
    api.docker("stop", "loop")
