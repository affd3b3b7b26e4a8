"""scripts/bench_goals.py: issue 25's scoreboard, PASS/MISS/n/a from given figures (nothing is measured)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "bench_goals.py"
_spec = importlib.util.spec_from_file_location("bench_goals", SCRIPT)
bench_goals = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_goals)

ALL = ["run", "lifecycle", "net", "pull", "logs", "volumes", "build", "api", "scale"]


def _med(ms):
    return {"median": ms}


def figures(**over):
    f = {
        "groups": ALL, "podman_unavailable": None,
        "results": {"rootless run": _med(30.0), "podman run": _med(137.0),
                    "rootless run net": _med(40.0), "podman run net": _med(150.0)},
        "network cost": {"median": 4.0, "none": 30.0, "default": 34.0, "pairs": 10},
        "lifecycle": {"detail": {"keeper (MB medians)": {"VmRSS": 7.5, "Pss": 2.5},
                                 "conmon (MB medians)": {"VmRSS": 2.6, "Pss": 0.8}}},
        "scale": {"containers": 100, "rootless": {"pss": 100e6, "start s": 9.0},
                  "podman": {"pss": 300e6, "start s": 30.0}},
        "logs": {"results": {"yes flood": {"rootless json-file": {"logs MB/s": 25.0},
                                           "podman k8s-file": {"logs MB/s": 0.7}}}},
        "volumes": {"speed vs host": {"volume": {"write 1 GB": 0.97}}, "seconds": {"host": {"write 1 GB": 2.0}}},
        "net": {"results": {"rootless (built-in relay)": {"conn/s": 900.0}, "host loopback": {"conn/s": 1000.0},
                            "podman (rootlessport)": {"conn/s": 500.0}},
                "client address": {"rootless (built-in relay)": "127.0.0.1", "podman (rootlessport)": "10.0.2.100"}},
        "build": {"real": {"unavailable": None, "failures": {},
                           "cold": {"rootless": 40000.0, "podman": 60000.0},
                           "reused": {"rootless": True, "podman": True},
                           "disk": {"rootless": {"real": 330e6, "apparent": 320e6},
                                    "podman": {"real": 321e6, "apparent": 310e6}}}},
    }
    f.update(over)
    return f


def statuses(f):
    return {r["figure"]: r["status"] for r in bench_goals.goals(f)}


def test_one_row_per_figure_of_the_issue_all_pass():
    rows = bench_goals.goals(figures())
    assert len(rows) == 13
    assert [r["status"] for r in rows] == ["PASS"] * 13
    for r in rows:
        assert set(r) == {"figure", "value", "reference", "goal", "status", "ratio"}


def test_each_goal_missed():
    f = figures()
    f["results"]["rootless run"] = _med(50.0)           # 0.36x
    f["results"]["rootless run net"] = _med(80.0)       # 0.53x
    f["network cost"]["median"] = 7.0
    f["lifecycle"]["detail"]["keeper (MB medians)"] = {"VmRSS": 14.2, "Pss": 9.4}
    f["scale"]["rootless"]["pss"] = 200e6               # 0.67x
    f["logs"]["results"]["yes flood"]["rootless json-file"]["logs MB/s"] = 1.58
    f["volumes"]["speed vs host"]["volume"]["write 1 GB"] = 0.84
    f["net"]["results"]["rootless (built-in relay)"]["conn/s"] = 620.0
    f["net"]["client address"]["rootless (built-in relay)"] = "10.0.2.2"
    f["build"]["real"]["cold"]["rootless"] = 65000.0    # 1.08x
    f["build"]["real"]["reused"]["rootless"] = False
    f["build"]["real"]["disk"]["rootless"] = {"real": 622e6, "apparent": 640e6}
    rows = bench_goals.goals(f)
    assert [r["status"] for r in rows] == ["MISS"] * 13


def test_disk_goal_needs_apparent_and_real():
    f = figures()
    f["build"]["real"]["disk"]["rootless"] = {"real": 330e6, "apparent": 400e6}  # real 1.03x, apparent 1.29x
    assert statuses(f)["disk used by debian + curl (real / apparent)"] == "MISS"


def test_boundaries_are_inclusive():
    f = figures()
    f["results"]["rootless run"] = _med(0.3 * 137.0)
    f["network cost"]["median"] = 5.0
    f["volumes"]["speed vs host"]["volume"]["write 1 GB"] = 0.95
    f["logs"]["results"]["yes flood"]["rootless json-file"]["logs MB/s"] = 20.0
    s = statuses(f)
    assert s["run --rm --network none"] == "PASS"
    assert s["the network's cost over --network none (paired)"] == "PASS"
    assert s["volume 1 GB write"] == "PASS"
    assert s["logs of a `yes` flood (2-byte lines)"] == "PASS"


def test_groups_that_did_not_run_say_so():
    rows = bench_goals.goals({"groups": ["logs"], "podman_unavailable": None,
                              "logs": figures()["logs"]})
    for r in rows:
        if r["figure"].startswith("logs"):
            assert r["status"] == "PASS"
        else:
            assert r["status"].startswith("n/a: the ") and r["status"].endswith(" group did not run"), r


def test_without_podman_the_podman_ratios_are_na_with_the_reason():
    f = figures(podman_unavailable="not on PATH")
    del f["results"]["podman run"], f["results"]["podman run net"]
    del f["scale"]["podman"]
    f["build"]["real"]["cold"].pop("podman")
    f["build"]["real"]["disk"].pop("podman")
    f["build"]["real"]["reused"]["podman"] = None
    s = statuses(f)
    for name in ("run --rm --network none", "run --rm, default network (slirp4netns)",
                 "cold build of real Dockerfiles (apt-get, gcc)", "disk used by debian + curl (real / apparent)"):
        assert s[name] == "n/a: no podman (not on PATH)", name
    assert s["100 idle run -d containers: total memory (PSS) and time to start them"] == "n/a: no podman (not on PATH)"
    # figures with an absolute goal still get their verdict
    assert s["idle keeper RSS"] == "PASS"
    assert s["multi-stage rebuild, a stage's output byte-identical: later steps reused"] == "PASS"


def test_mirror_unreachable_and_unreadable_pss_are_na():
    f = figures()
    f["build"]["real"] = {"unavailable": "the Debian mirror does not answer"}
    f["lifecycle"]["detail"]["keeper (MB medians)"]["Pss"] = None
    f["net"]["client address"] = {}
    s = statuses(f)
    assert s["cold build of real Dockerfiles (apt-get, gcc)"] == "n/a: the Debian mirror does not answer"
    assert s["disk used by debian + curl (real / apparent)"] == "n/a: the Debian mirror does not answer"
    assert s["idle keeper PSS"].startswith("n/a: ")
    assert s["idle keeper RSS"] == "PASS"
    assert s["client address seen through a published port"] == "n/a: not measured"


def test_report_prints_every_row(capsys):
    rows = bench_goals.goals({"groups": [], "podman_unavailable": None})
    bench_goals.report(rows)
    out = capsys.readouterr().out
    assert "goals (issue 25)" in out
    for r in rows:
        assert r["figure"] in out
    assert "0 PASS, 0 MISS, 13 n/a" in out


def test_a_failed_tool_is_na_with_its_first_line():
    f = figures()
    f["build"]["real"]["disk"].pop("podman")
    f["build"]["real"]["failures"] = {"podman": "podman import x: exit code 125\n  Error: runroot too long"}
    s = statuses(f)
    assert s["disk used by debian + curl (real / apparent)"] == "n/a: podman failed: podman import x: exit code 125"
    assert s["cold build of real Dockerfiles (apt-get, gcc)"] == "PASS"
    f["build"]["real"]["cold"] = {}
    f["build"]["real"]["reused"] = {"rootless": None, "podman": True}
    f["build"]["real"]["failures"]["rootless"] = "rootless build: exit code 1\nE: Unable to locate package"
    s = statuses(f)
    assert s["cold build of real Dockerfiles (apt-get, gcc)"] == "n/a: rootless failed: rootless build: exit code 1"
    assert s["multi-stage rebuild, a stage's output byte-identical: later steps reused"] == \
        "n/a: rootless failed: rootless build: exit code 1"


def test_real_dockerfiles_are_na_when_the_mirror_does_not_answer(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_build_real", SCRIPT.with_name("bench_build_real.py"))
    real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real)
    assert real.mirror_answers(None) is False
    assert real.mirror_answers("http://127.0.0.1:9") is False  # the discard port: nothing listens
    monkeypatch.setattr(real, "mirror", lambda: "http://127.0.0.1:9")
    out = real.bench_real(["false"], {}, None, str(tmp_path), 1, None, None)
    assert out["unavailable"] == "the Debian mirror does not answer"
    assert list(tmp_path.iterdir()) == []  # nothing built, nothing left
    rows = bench_goals.goals(figures(build={"real": out}))
    assert [r["status"] for r in rows[3:6]] == ["n/a: the Debian mirror does not answer"] * 3


def test_the_volume_write_names_its_paired_host_reference():
    f = figures()
    f["volumes"]["volume write"] = {"pairs": 4, "host s": [2.1, 1.9, 2.0, 2.2], "volume s": [2.0, 2.0, 2.1, 2.2],
                                    "ratio": 0.98}
    f["volumes"]["speed vs host"]["volume"]["write 1 GB"] = 0.98
    row = next(r for r in bench_goals.goals(f) if r["figure"] == "volume 1 GB write")
    assert "in the volume's directory" in row["reference"] and "4 alternating pairs" in row["reference"]
    assert row["status"] == "PASS"


def test_connections_row_names_the_least_a_relay_costs():
    f = figures()
    f["net"]["results"]["least a relay costs (C)"] = {"conn/s": 700.0}
    row = [r for r in bench_goals.goals(f) if r["figure"] == "published-port connections/s"][0]
    assert "the least a relay costs 700/s = 0.70x" in row["reference"]
    assert row["status"] == "PASS"  # a reference only: the verdict is still against loopback
