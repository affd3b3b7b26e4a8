"""Healthchecks, end to end as the unprivileged user: the keeper runs the check in the container
(--health-* flags, the image's HEALTHCHECK, --no-healthcheck), State.Health in inspect, ps's
status and --filter health=, health_status events. The tests assert states, not times."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import Rootless, inspect, one_error, wait_for

pytestmark = pytest.mark.userns

FAST = ("--health-interval", "100ms", "--health-timeout", "2s")


def health(rl: Rootless, ref: str) -> dict:
    return inspect(rl, ref)["State"].get("Health") or {}


def wait_health(rl: Rootless, ref: str, wanted: str) -> dict:
    wait_for(lambda: health(rl, ref).get("Status") == wanted, what=f"{ref} {wanted}")
    return health(rl, ref)


def test_a_passing_check_makes_it_healthy(busybox):
    busybox("run", "-d", "--name", "ok", *FAST, "--health-cmd", "echo fine; id -u > /tmp/who",
            "--user", "1000", "busybox", "sleep", "60")
    cfg = inspect(busybox, "ok")["Config"]["Healthcheck"]
    assert cfg == {"Test": ["CMD-SHELL", "echo fine; id -u > /tmp/who"], "Interval": 100_000_000,
                   "Timeout": 2_000_000_000}
    h = wait_health(busybox, "ok", "healthy")
    assert h["FailingStreak"] == 0
    last = h["Log"][-1]
    assert last["ExitCode"] == 0 and last["Output"] == "fine\n"
    assert last["Start"] <= last["End"]
    # it ran in the container, as the container's user
    assert busybox("exec", "ok", "cat", "/tmp/who").out == "1000\n"
    assert "(healthy)" in busybox("ps", "--format", "{{.Status}}").out
    wait_for(lambda: len(health(busybox, "ok")["Log"]) == 5, what="five results")
    busybox("stop", "-t", "0", "ok")
    assert health(busybox, "ok")["Status"] == "unhealthy"  # as Docker's: the monitor has stopped


def test_a_failing_check_makes_it_unhealthy_after_the_retries(busybox):
    busybox("run", "-d", "--name", "bad", *FAST, "--health-retries", "3",
            "--health-cmd", "echo no >&2; exit 2", "busybox", "sleep", "60")
    assert health(busybox, "bad")["Status"] in ("starting", "unhealthy")
    h = wait_health(busybox, "bad", "unhealthy")
    assert h["FailingStreak"] >= 3
    assert [e["ExitCode"] for e in h["Log"]][:3] == [2, 2, 2]
    assert h["Log"][0]["Output"] == "no\n"
    assert "(unhealthy)" in busybox("ps", "--format", "{{.Status}}").out


def test_failures_in_the_start_period_do_not_count(busybox):
    # fails twice, then passes; the start period covers the failures, one retry would end it otherwise
    busybox("run", "-d", "--name", "slow", "--health-interval", "100ms", "--health-start-interval", "100ms",
            "--health-start-period", "1m", "--health-retries", "1",
            "--health-cmd", "echo x >> /n; test $(wc -l < /n) -ge 3", "busybox", "sleep", "60")
    h = wait_health(busybox, "slow", "healthy")
    assert [e["ExitCode"] for e in h["Log"]][:3] == [1, 1, 0]
    assert h["FailingStreak"] == 0


def test_a_check_that_runs_too_long_fails(busybox):
    busybox("run", "-d", "--name", "hang", "--health-interval", "100ms", "--health-timeout", "200ms",
            "--health-retries", "1", "--health-cmd", "sleep 30", "busybox", "sleep", "60")
    h = wait_health(busybox, "hang", "unhealthy")
    assert h["Log"][0]["ExitCode"] == -1
    assert h["Log"][0]["Output"] == "Health check exceeded timeout (200ms)"


def test_the_image_healthcheck_runs_and_no_healthcheck_disables_it(busybox, tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=100ms --retries=1 CMD [\"test\", \"-e\", \"/ready\"]\n")
    busybox("build", "-q", "-t", "hc", str(tmp_path / "ctx"))
    assert json.loads(busybox("image", "inspect", "-f", "{{json .Config.Healthcheck}}", "hc").out) == {
        "Test": ["CMD", "test", "-e", "/ready"], "Interval": 100_000_000, "Retries": 1}
    busybox("run", "-d", "--name", "img", "hc", "sleep", "60")
    wait_health(busybox, "img", "unhealthy")
    busybox("exec", "img", "touch", "/ready")
    wait_health(busybox, "img", "healthy")
    # the flags lay their fields over the image's: the test stays the image's
    busybox("create", "--name", "merged", "--health-timeout", "3s", "hc", "sleep", "60")
    assert inspect(busybox, "merged")["Config"]["Healthcheck"] == {
        "Test": ["CMD", "test", "-e", "/ready"], "Interval": 100_000_000, "Retries": 1, "Timeout": 3_000_000_000}
    busybox("run", "-d", "--name", "off", "--no-healthcheck", "hc", "sleep", "60")
    assert inspect(busybox, "off")["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in inspect(busybox, "off")["State"]
    assert busybox("ps", "--filter", "name=off", "--format", "{{.Status}}").out.startswith("Up ")
    assert "(" not in busybox("ps", "--filter", "name=off", "--format", "{{.Status}}").out


def test_ps_filters_by_health_and_events_say_the_changes(busybox):
    busybox("run", "-d", "--name", "good", *FAST, "--health-cmd", "true", "busybox", "sleep", "60")
    busybox("run", "-d", "--name", "poor", *FAST, "--health-retries", "1", "--health-cmd", "false",
            "busybox", "sleep", "60")
    busybox("run", "-d", "--name", "wait", "--health-interval", "1h", "--health-cmd", "true", "busybox", "sleep", "60")
    busybox("run", "-d", "--name", "plain", "busybox", "sleep", "60")
    wait_health(busybox, "good", "healthy")
    wait_health(busybox, "poor", "unhealthy")

    def names(value: str) -> set[str]:
        return set(busybox("ps", "--filter", f"health={value}", "--format", "{{.Names}}").out.split())
    assert names("healthy") == {"good"}
    assert names("unhealthy") == {"poor"}
    assert names("starting") == {"wait"}
    assert names("none") == {"plain"}
    assert "(health: starting)" in busybox("ps", "--filter", "name=wait", "--format", "{{.Status}}").out
    one_error(busybox("ps", "--filter", "health=fine", expect=125), "health", "fine")
    out = busybox("events", "--since", "0", "--until", "0s", "--filter", "event=health_status",
                  "--format", "{{.Actor.Attributes.name}} {{.Action}}").out.splitlines()
    assert "good health_status: healthy" in out and "poor health_status: unhealthy" in out
    assert out.count("good health_status: healthy") == 1  # only changes are told
    assert not any(line.startswith(("wait ", "plain ")) for line in out)


def test_each_probe_is_told_as_dockers_exec_events(busybox):
    busybox("run", "-d", "--name", "probed", "--label", "team=a", *FAST, "--health-cmd", "exit 0",
            "busybox", "sleep", "60")
    wait_for(lambda: len(health(busybox, "probed").get("Log") or []) >= 2, what="two probes")
    busybox("stop", "-t", "0", "probed")
    fmt = "{{.Action}}|{{.Actor.Attributes.execID}}|{{.Actor.Attributes.exitCode}}|{{.Actor.Attributes.team}}"
    rows = [line.split("|") for line in busybox(
        "events", "--since", "0", "--until", "0s", "--filter", "container=probed", "--filter", "event=exec_create",
        "--filter", "event=exec_start", "--filter", "event=exec_die", "--format", fmt).out.splitlines()]
    assert rows[:3] == [["exec_create: /bin/sh -c exit 0", rows[0][1], "<no value>", "a"],
                        ["exec_start: /bin/sh -c exit 0", rows[0][1], "<no value>", "a"],
                        ["exec_die", rows[0][1], "0", "a"]]
    assert len(rows[0][1]) == 64 and rows[3][1] != rows[0][1]  # one exec id per probe
    assert busybox("events", "--since", "0", "--until", "0s", "--filter", "event=exec_die",
                   "--filter", "container=probed", "--format", "{{.Action}}").out.split()[0] == "exec_die"


@pytest.mark.parametrize("flags, needle", [
    (("--no-healthcheck", "--health-cmd", "true"), "--no-healthcheck conflicts"),
    (("--health-interval", "5"), "not a duration"),
    (("--health-timeout", "-1s"), "cannot be negative"),
    (("--health-retries", "-1"), "cannot be negative"),
])
def test_bad_health_flags_are_refused(busybox, flags, needle):
    one_error(busybox("create", *flags, "busybox", "true", expect=125), needle)
    assert busybox("ps", "-aq").out == ""


# ---- through the API ------------------------------------------------------------------------------
def test_docker_cli_healthcheck_through_the_api(api):
    api.docker("run", "-d", "--name", "web", "--health-cmd", "test -e /tmp/up", "--health-interval", "100ms",
               "--health-retries", "1", "busybox", "sleep", "300")
    hc = json.loads(api.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "web").out)
    assert hc == {"Test": ["CMD-SHELL", "test -e /tmp/up"], "Interval": 100_000_000, "Retries": 1}
    wait_for(lambda: api.docker("inspect", "-f", "{{.State.Health.Status}}", "web").out.strip() == "unhealthy",
             what="unhealthy")
    assert api.docker("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").out == "web\n"
    api.docker("exec", "web", "touch", "/tmp/up")
    wait_for(lambda: api.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}}").out == "web\n",
             what="healthy")
    assert "(healthy)" in api.docker("ps", "--format", "{{.Status}}").out
    actions = api.docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter",
                         "event=health_status", "--format", "{{.Actor.Attributes.name}} {{.Action}}").out
    assert actions.splitlines() == ["web health_status: unhealthy", "web health_status: healthy"]


def test_api_healthcheck_forms_and_errors(api):
    status, body = api.request("POST", "/containers/create?name=cmd", {
        "Image": "busybox", "Cmd": ["sleep", "300"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 100_000_000, "Timeout": 1_000_000_000, "Retries": 1}})
    assert status == 201, body
    assert api.request("POST", "/containers/cmd/start")[0] == 204
    wait_for(lambda: api.request("GET", "/containers/cmd/json")[1]["State"]["Health"]["Status"] == "healthy",
             what="healthy")
    log = api.request("GET", "/containers/cmd/json")[1]["State"]["Health"]["Log"]
    assert log[0]["ExitCode"] == 0 and log[0]["Output"] == ""
    status, body = api.request("POST", "/containers/create?name=none", {
        "Image": "busybox", "Cmd": ["true"], "Healthcheck": {"Test": ["NONE"]}})
    assert status == 201, body
    for bad, needle in (({"Test": ["WHAT", "x"]}, "WHAT"), ({"Test": ["CMD", "true"], "Interval": 5}, "1ms"),
                        ({"Test": ["CMD", "true"], "Retries": -1}, "negative")):
        status, body = api.request("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                                   "Healthcheck": bad})
        assert status == 400 and needle in body["message"], body


COMPOSE_HEALTHY = """\
services:
  db:
    image: busybox
    command: sh -c "sleep 1; touch /shared/ready; exec sleep 300"
    volumes: ["shared:/shared"]
    healthcheck:
      test: ["CMD", "test", "-e", "/shared/ready"]
      interval: 200ms
      timeout: 2s
      retries: 100
  app:
    image: busybox
    command: sh -c "test -e /shared/ready && echo db-was-ready"
    volumes: ["shared:/shared"]
    depends_on:
      db:
        condition: service_healthy
volumes:
  shared: {}
"""


def test_compose_waits_for_a_healthy_service(api, tmp_path):
    """Compose v2's ``depends_on: condition: service_healthy`` starts the dependent service only
    once the other's healthcheck has passed (Compose polls State.Health.Status)."""
    import subprocess

    from tests.apiservice import DOCKER
    api.enable_compose()
    project = tmp_path / "hc"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_HEALTHY)

    def run(*args, expect=0):
        cp = subprocess.run([DOCKER, "compose", "--ansi", "never", *args], cwd=project, env=api.docker_env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert cp.returncode == expect, (f"{args}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}\n"
                                         f"{api.service_log()[-2000:]}")
        return cp
    run("up", "-d")
    assert api.docker("inspect", "-f", "{{.State.Health.Status}}", "hc-db-1").out.strip() == "healthy"
    wait_for(lambda: api.docker("inspect", "-f", "{{.State.Status}}", "hc-app-1").out.strip() == "exited",
             what="app done")
    assert api.docker("inspect", "-f", "{{.State.ExitCode}}", "hc-app-1").out.strip() == "0"
    assert run("logs", "app").stdout.strip().endswith("db-was-ready")
    run("down", "-v")


def test_the_check_runs_on_every_root_filesystem_method(rl_method, images):
    """The probe waits for PID 1's root to be the mounted one, whatever mounts it."""
    rl_method.load(images, "busybox")
    try:
        rl_method("run", "-d", "--name", "m", "--init", *FAST, "--health-cmd", "test -e /etc/passwd && ! test -e /work",
                  "busybox", "sleep", "60")
        assert wait_health(rl_method, "m", "healthy")["Log"][0]["ExitCode"] == 0
    finally:
        rl_method("rm", "-f", "m", expect=None)


def test_the_check_runs_in_a_single_uid_namespace(tmp_path, images):
    """With one uid mapped (no /etc/subuid range) the check runs as the container's root; the
    missing user is warned about once, by the container's start, not by each check."""
    solo = Rootless(tmp_path, idmap="single")
    solo.load(images, "busybox")
    r = solo("run", "--rm", "--user", "1000", *FAST, "--health-cmd", "id -u > /tmp/probe", "busybox", "sh", "-c",
             "until test -s /tmp/probe; do sleep 0.05; done; cat /tmp/probe")
    assert r.out == "0\n"
    assert r.err.count("does not exist in a single-uid user namespace") == 1, r.err


def test_the_check_runs_as_your_user_with_keep_id(busybox):
    busybox("run", "-d", "--name", "k", "--userns", "keep-id", "--network", "none", *FAST,
            "--health-cmd", "id -u", "busybox", "sleep", "60")
    assert wait_health(busybox, "k", "healthy")["Log"][0]["Output"] == f"{os.getuid()}\n"
