"""Healthchecks' pure parts: the --health-* flags, the API's Config.Healthcheck, the merge over
the image's, and the monitor's states (driven with probes that are host processes)."""

from __future__ import annotations

import os
import re
import time

import pytest

from rootless.base.errors import UsageError
from rootless.runtime import health, healthmonitor
from rootless.runtime.spec import RunOptions, build

S = 10**9


@pytest.mark.parametrize("kw, expected", [
    ({}, None),
    ({"cmd": "curl -f http://x/ || exit 1"}, {"Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"]}),
    ({"cmd": "true", "interval": "1m30s", "timeout": "500ms", "retries": "2", "start_period": "0",
      "start_interval": "1s"},
     {"Test": ["CMD-SHELL", "true"], "Interval": 90 * S, "Timeout": S // 2, "Retries": 2, "StartPeriod": 0,
      "StartInterval": S}),
    ({"interval": "5s"}, {"Test": [], "Interval": 5 * S}),  # the image's test stays
    ({"no_healthcheck": True}, {"Test": ["NONE"]}),
])
def test_flags(kw, expected):
    assert health.from_flags(**kw) == expected


@pytest.mark.parametrize("kw, needle", [
    ({"no_healthcheck": True, "cmd": "true"}, "--no-healthcheck conflicts with --health-* options"),
    ({"no_healthcheck": True, "retries": "1"}, "--no-healthcheck conflicts"),
    ({"interval": "5"}, "--health-interval"),  # a duration needs its unit
    ({"timeout": "-1s"}, "--health-timeout cannot be negative"),
    ({"start_period": "soon"}, "--health-start-period"),
    ({"retries": "-1"}, "--health-retries cannot be negative"),
    ({"retries": "many"}, "--health-retries"),
])
def test_bad_flags(kw, needle):
    with pytest.raises(UsageError) as e:
        health.from_flags(**kw)
    assert needle in e.value.message


def test_api_object():
    assert health.check(None) is None
    assert health.check({"Test": ["CMD", "true"], "Interval": S, "Timeout": 0, "Retries": 0}) == {
        "Test": ["CMD", "true"], "Interval": S}
    assert health.check({"Test": ["NONE"]}) == {"Test": ["NONE"]}
    assert health.check({"Interval": S}) == {"Test": [], "Interval": S}
    for bad, needle in (({"Test": ["SHELL", "x"]}, "SHELL"), ({"Test": ["CMD"]}, "needs a command"),
                        ({"Test": "true"}, "list"), ({"Test": ["CMD", "x"], "Timeout": 999_999}, "1ms"),
                        ({"Test": ["CMD", "x"], "StartPeriod": -1}, "1ms"),
                        ({"Test": ["CMD", "x"], "Retries": -2}, "negative"),
                        ({"Test": ["CMD", "x"], "Interval": "1s"}, "nanoseconds"), ([], "object")):
        with pytest.raises(UsageError) as e:
            health.check(bad)
        assert needle in e.value.message


def test_merge_over_the_image():
    image = {"Test": ["CMD-SHELL", "check"], "Interval": 5 * S, "Retries": 4}
    assert health.merge(None, image) == image
    assert health.merge({"Test": [], "Timeout": S}, image) == {"Test": ["CMD-SHELL", "check"], "Timeout": S,
                                                                "Interval": 5 * S, "Retries": 4}
    assert health.merge({"Test": ["CMD", "x"], "Interval": S}, image)["Interval"] == S
    assert health.merge({"Test": ["NONE"]}, image)["Test"] == ["NONE"]
    assert health.merge({"Test": ["CMD", "x"]}, None) == {"Test": ["CMD", "x"]}
    assert health.merge(None, None) is None


def test_the_spec_keeps_the_merged_healthcheck():
    image = {"id": "sha256:" + "1" * 64, "layers": []}
    cfg = {"config": {"Cmd": ["sh"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": S}}}
    spec = build(RunOptions(image="x", healthcheck={"Test": [], "Retries": 2}), "c" * 64, "n", image, cfg, "x", {}, {})
    assert spec.healthcheck == {"Test": ["CMD", "true"], "Retries": 2, "Interval": S}
    plain = build(RunOptions(image="x"), "c" * 64, "n", image, {"config": {"Cmd": ["sh"]}}, "x", {}, {})
    assert plain.healthcheck is None


def test_commit_keeps_the_container_healthcheck():
    from layers.imageconfig import container_config_from_spec
    base = {"Cmd": ["sh"], "Healthcheck": {"Test": ["CMD", "true"]}}
    spec = {"argv": ["sh"], "healthcheck": {"Test": ["CMD-SHELL", "check"], "Interval": S}}
    assert container_config_from_spec(spec, base)["Healthcheck"] == {"Test": ["CMD-SHELL", "check"], "Interval": S}
    assert container_config_from_spec({"argv": ["sh"]}, base)["Healthcheck"] == {"Test": ["CMD", "true"]}


@pytest.mark.parametrize("hc, argv", [
    (None, None), ({"Test": ["NONE"]}, None), ({"Test": []}, None),
    ({"Test": ["CMD-SHELL", "a && b"]}, ["/bin/sh", "-c", "a && b"]),
    ({"Test": ["CMD", "curl", "-f", "x"]}, ["curl", "-f", "x"]),
])
def test_probe_argv(hc, argv):
    assert health.probe_argv(hc) == argv


def test_ps_suffix_and_status():
    assert health.ps_suffix({}) == "" and health.status({"health": None}) == "none"
    assert health.ps_suffix({"health": {"Status": "starting"}}) == " (health: starting)"
    assert health.ps_suffix({"health": {"Status": "healthy"}}) == " (healthy)"
    assert health.ps_suffix({"health": {"Status": "unhealthy"}}) == " (unhealthy)"


@pytest.mark.parametrize("ns, text", [(30 * S, "30s"), (S + S // 2, "1.5s"), (S // 2, "500ms"),
                                      (90 * S, "1m30s"), (3600 * S, "1h0m0s"), (1500, "1.5µs"), (7, "7ns")])
def test_go_duration(ns, text):
    assert health.go_duration(ns) == text


# ---- the monitor, with probes that are host processes -----------------------------------------------
def _spawn_host(argv, out):
    pid = os.fork()
    if pid == 0:
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execv("/bin/sh", ["sh", "-c", argv[-1]])
    return pid


def _run(hc, until, spawn=_spawn_host, limit=20.0):
    saved = []
    m = healthmonitor.Monitor(hc, spawn, lambda h, changed: saved.append((dict(h, Log=list(h["Log"])), changed)))
    deadline = time.monotonic() + limit
    while not until(m.health) and time.monotonic() < deadline:
        time.sleep(min(m.timeout(), 0.05))
        m.tick()
    m.stop()
    return m, saved


def test_monitor_healthy_then_unhealthy_after_the_retries(tmp_path):
    flag = tmp_path / "ok"
    flag.write_text("")
    hc = {"Test": ["CMD-SHELL", f"echo out; test -e {flag}"], "Interval": S // 50, "Retries": 2}
    m, saved = _run(hc, lambda h: h["Status"] == "healthy")
    assert saved[0][0]["Status"] == "healthy" and saved[0][1] is True
    assert saved[0][0]["Log"][0]["Output"] == "out\n" and saved[0][0]["Log"][0]["ExitCode"] == 0
    flag.unlink()
    m, saved = _run(hc, lambda h: h["Status"] == "unhealthy" or len(h["Log"]) >= 5)
    states = [(s["Status"], s["FailingStreak"]) for s, _ in saved]
    assert states[:2] == [("starting", 1), ("unhealthy", 2)]
    assert [c for _, c in saved[:2]] == [False, True]  # only the change is an event
    assert saved[-1][0]["Status"] == "unhealthy"  # the monitor stopped


def test_monitor_start_period_and_log_length():
    hc = {"Test": ["CMD-SHELL", "exit 1"], "Interval": S // 50, "StartInterval": S // 50, "StartPeriod": 60 * S,
          "Retries": 1}
    m, saved = _run(hc, lambda h: len(h["Log"]) >= 5 and h["Log"][0]["ExitCode"] == 1, limit=10)
    last = saved[-2][0]  # before stop()
    assert last["Status"] == "starting" and last["FailingStreak"] == 0
    assert len(last["Log"]) == healthmonitor.MAX_LOG


def test_monitor_timeout_kills_the_probe():
    hc = {"Test": ["CMD-SHELL", "exec sleep 30"], "Interval": S // 50, "Timeout": S // 10, "Retries": 1}
    m, saved = _run(hc, lambda h: h["Status"] == "unhealthy")
    entry = saved[0][0]["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (100ms)"


def test_monitor_waits_while_the_probe_cannot_run():
    hc = {"Test": ["CMD", "true"], "Interval": S // 50}
    calls = []
    m, saved = _run(hc, lambda h: len(calls) >= 3, spawn=lambda argv, out: calls.append(argv))
    assert calls[0] == ["true"] and len(saved) == 1 and saved[0][0]["Log"] == []


def test_monitor_says_each_probe_as_dockers_exec_events():
    hc = {"Test": ["CMD-SHELL", "exit 3"], "Interval": S // 50, "Retries": 1}
    told = []
    m = healthmonitor.Monitor(hc, _spawn_host, lambda h, changed: None, lambda a, attrs: told.append((a, attrs)))
    deadline = time.monotonic() + 20
    while len(told) < 3 and time.monotonic() < deadline:
        time.sleep(min(m.timeout(), 0.05))
        m.tick()
    m.stop()
    (create, c_attrs), (start, s_attrs), (die, d_attrs) = told[:3]
    assert (create, start, die) == ("exec_create: /bin/sh -c exit 3", "exec_start: /bin/sh -c exit 3", "exec_die")
    assert re.fullmatch("[0-9a-f]{64}", c_attrs["execID"]) and c_attrs == s_attrs
    assert d_attrs == {"execID": c_attrs["execID"], "exitCode": 3}


def test_monitor_says_a_probe_killed_at_its_timeout_died_of_sigkill():
    hc = {"Test": ["CMD-SHELL", "exec sleep 30"], "Interval": S // 50, "Timeout": S // 10, "Retries": 1}
    told = []
    m = healthmonitor.Monitor(hc, _spawn_host, lambda h, changed: None, lambda a, attrs: told.append((a, attrs)))
    deadline = time.monotonic() + 20
    while len(told) < 3 and time.monotonic() < deadline:
        time.sleep(min(m.timeout(), 0.05))
        m.tick()
    m.stop()
    assert told[0][0] == "exec_create: /bin/sh -c exec sleep 30"
    assert told[2] == ("exec_die", {"execID": told[0][1]["execID"], "exitCode": 137})
