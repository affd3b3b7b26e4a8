"""Restart policies as data: ``--restart`` and Docker's RestartPolicy, Docker's restart manager's
rules and back-off, and how a restarting container reads (inspect, ps, the API's create)."""

from __future__ import annotations

import pytest

from rootless.base.errors import UsageError
from rootless.runtime import restart


@pytest.mark.parametrize("text, policy", [
    (None, None), ("", None), ("no", None),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ("on-failure", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ("on-failure:5", {"Name": "on-failure", "MaximumRetryCount": 5}),
])
def test_parse(text, policy):
    assert restart.parse(text) == policy


@pytest.mark.parametrize("text, words", [
    ("sometimes", "invalid restart policy"), ("always:3", "only for on-failure"),
    ("on-failure:x", "must be a number"), ("on-failure:-1", "must be a number"), ("no:1", "only for on-failure"),
])
def test_parse_refuses(text, words):
    with pytest.raises(UsageError, match=words):
        restart.parse(text)


@pytest.mark.parametrize("body, text", [
    (None, "no"), ({}, "no"), ({"Name": ""}, "no"), ({"Name": "always", "MaximumRetryCount": 0}, "always"),
    ({"Name": "on-failure", "MaximumRetryCount": 42}, "on-failure:42"), ({"Name": "unless-stopped"}, "unless-stopped"),
])
def test_from_api(body, text):
    assert restart.from_api(body) == text


@pytest.mark.parametrize("body, words", [
    ({"Name": "sometimes"}, "invalid restart policy 'sometimes'"),
    ({"Name": "always", "MaximumRetryCount": 3}, "maximum retry count cannot be used with restart policy 'always'"),
    ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
])
def test_from_api_refuses_as_docker_does(body, words):
    with pytest.raises(UsageError, match=words):
        restart.from_api(body)


def test_rm_and_a_policy_conflict():
    restart.check(None, True)
    restart.check({"Name": "always"}, False)
    with pytest.raises(UsageError, match="conflicting options: --restart and --rm"):
        restart.check({"Name": "always"}, True)


ALWAYS, UNLESS = {"Name": "always"}, {"Name": "unless-stopped"}


@pytest.mark.parametrize("policy, code, count, stopped, again", [
    (None, 1, 0, False, False),
    (ALWAYS, 0, 0, False, True), (ALWAYS, 1, 99, False, True), (ALWAYS, 0, 0, True, False),
    (UNLESS, 0, 0, False, True), (UNLESS, 137, 0, True, False),
    ({"Name": "on-failure", "MaximumRetryCount": 0}, 0, 0, False, False),
    ({"Name": "on-failure", "MaximumRetryCount": 0}, 1, 1000, False, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 1, False, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 2, False, False),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 0, True, False),
])
def test_should_restart(policy, code, count, stopped, again):
    assert restart.should_restart(policy, code, count, stopped) is again


def test_the_back_off_doubles_to_a_minute_and_starts_again_after_a_long_run():
    delays, d = [], 0.0
    for _ in range(12):
        d = restart.next_delay(d, ran=0.5)
        delays.append(d)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0 and delays == sorted(delays)
    assert restart.next_delay(60.0, ran=10.0) == 0.1


def test_the_keeper_records_restarting_with_the_count():
    rec = {"spec": {"restart": {"Name": "on-failure", "MaximumRetryCount": 2}}, "state": {"restart_count": 1}}
    assert restart.exit_fields(rec, 1) == {"status": "restarting", "restart_count": 2}
    assert restart.exit_fields({**rec, "state": {"restart_count": 2}}, 1) == {}
    assert restart.exit_fields(rec, 0) == {}
    assert restart.exit_fields({**rec, "state": {"manually_stopped": True}}, 1) == {}
    assert restart.exit_fields({"spec": {}, "state": {}}, 1) == {}
    assert restart.exit_fields(None, 1) == {}


def test_ran_for():
    st = {"started_at": "2026-12-06T10:00:00.5Z", "finished_at": "2026-12-06T10:00:12.75Z"}
    assert restart.ran_for(st) == pytest.approx(12.25)
    assert restart.ran_for({"started_at": "", "finished_at": ""}) == 0.0


def _record(status: str, **state) -> dict:
    return {"id": "c" * 64, "name": "web", "created": "", "spec": {"restart": {"Name": "always",
                                                                                 "MaximumRetryCount": 0}},
            "state": {"status": status, "pid": 0, "exit_code": 1, "error": "", "started_at": "",
                      "finished_at": "2026-12-06T10:00:00Z", **state}}


def test_a_restarting_container_as_docker_shows_it(tmp_path):
    from rootless.base.paths import Paths
    from rootless.engine import dockerview
    rec = _record("restarting", restart_count=3)
    now = dockerview.parse_time("2026-12-06T10:00:05Z")
    assert dockerview.status_text(rec, now) == "Restarting (1) 5 seconds ago"
    doc = dockerview.inspect(rec, Paths(str(tmp_path), str(tmp_path / "run")))
    assert (doc["State"]["Restarting"], doc["State"]["Running"], doc["State"]["Pid"]) == (True, True, 0)
    assert doc["RestartCount"] == 3
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert dockerview.matches(rec, ["restart-policy=always"])
    assert not dockerview.matches(rec, ["restart-policy=no"])


def test_a_container_without_a_policy_shows_no():
    from rootless.engine import dockerview
    rec = _record("exited")
    rec["spec"] = {}
    assert dockerview.matches(rec, ["restart-policy=no"])


def test_the_api_create_takes_the_restart_policy():
    from rootless.api.createconfig import to_run_options
    opts = to_run_options({"Image": "busybox", "HostConfig": {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}}, None)
    assert opts.restart == "on-failure:3"
    with pytest.raises(UsageError, match="cannot be used with restart policy 'always'"):
        to_run_options({"Image": "busybox", "HostConfig": {
            "RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}}, None)


def test_a_restarting_record_without_its_monitor_is_stale(tmp_path):
    import os

    from rootless.base.paths import Paths
    paths = Paths(str(tmp_path), str(tmp_path / "run"))
    rec = _record("restarting")
    os.makedirs(paths.container(rec["id"]))
    later = restart.seconds("2026-12-06T10:00:00Z") + restart.GRACE + 1
    assert restart.stale(paths, rec, later)
    assert not restart.stale(paths, rec, later - 2)  # a monitor may be on its way
    assert not restart.stale(paths, _record("exited"), later)
    import fcntl
    fd = os.open(restart.lock_path(paths, rec["id"]), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a monitor holds it
        assert not restart.stale(paths, rec, later)
    finally:
        os.close(fd)
