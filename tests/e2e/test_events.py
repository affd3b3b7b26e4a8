"""``rootless events``: what real containers, images and volumes do, as Docker reports it; the
past between --since and --until, and a follower that sees what happens after it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.conftest import Rootless, rootless_argv, wait_for

pytestmark = pytest.mark.userns

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d)"


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def now() -> str:
    return f"{time.time():.9f}"


def past(rl: Rootless, since: str, *args: str) -> list[dict]:
    out = rl("events", "--since", since, "--until", now(), "--format", "json", *args, timeout=30).out
    return [json.loads(line) for line in out.splitlines()]


def test_run_rm_gives_create_start_die_destroy_in_order(bb):
    since = now()
    bb("run", "--rm", "--name", "once", "--label", "com.example.k=v", "busybox", "sh", "-c", "exit 3", expect=3)
    evs = [e for e in past(bb, since) if e["Type"] == "container"]
    assert [e["Action"] for e in evs] == ["create", "start", "die", "destroy"]
    cid = evs[0]["Actor"]["ID"]
    assert len(cid) == 64
    for e in evs:
        attrs = e["Actor"]["Attributes"]
        assert e["Actor"]["ID"] == e["id"] == cid and e["status"] == e["Action"] and e["scope"] == "local"
        assert attrs["name"] == "once" and attrs["com.example.k"] == "v" and attrs["image"].startswith("busybox")
        assert e["from"] == attrs["image"] and e["time"] == e["timeNano"] // 10**9
    assert evs[2]["Actor"]["Attributes"]["exitCode"] == "3"
    assert [e["timeNano"] for e in evs] == sorted(e["timeNano"] for e in evs)
    assert bb("ps", "-aq").out == ""


def test_events_prints_dockers_lines_and_filters_them(bb):
    since = now()
    cid = bb("run", "-d", "--name", "web", "--label", "tier=front", "busybox", "sleep", "60").out.strip()
    bb("create", "--name", "other", "busybox", "true")
    bb("stop", "-t", "0", "web")  # sleep, PID 1, ignores SIGTERM: then SIGKILL
    bb("rename", "web", "web2")
    bb("rm", "web2")
    bb("volume", "create", "vol1")
    bb("volume", "rm", "vol1")
    bb("tag", "busybox", "mine:1")
    bb("rmi", "mine:1")
    until = now()

    lines = bb("events", "--since", since, "--until", until).out.splitlines()
    assert all(re.fullmatch(STAMP + r" (container|image|volume) \S+ \S+( \(.*\))?", line) for line in lines), lines
    mine = [line.split(" ", 1)[1] for line in lines if f" {cid} " in line]
    image = mine[0].rpartition("image=")[2].partition(",")[0]
    assert image.startswith("busybox")
    common = f"image={image}, name=web, tier=front"
    assert mine == [f"container create {cid} ({common})",
                    f"container start {cid} ({common})",
                    f"container kill {cid} (image={image}, name=web, signal=15, tier=front)",
                    f"container kill {cid} (image={image}, name=web, signal=9, tier=front)",
                    f"container die {cid} (exitCode=137, {common})",
                    f"container stop {cid} ({common})",
                    f"container rename {cid} (image={image}, name=web2, oldName=web, tier=front)",
                    f"container destroy {cid} (image={image}, name=web2, tier=front)"]
    assert [line.split(" ", 1)[1] for line in lines if " volume " in line] == [
        "volume create vol1 (driver=local)", "volume destroy vol1 (driver=local)"]
    tagged = [line.split(" ", 1)[1] for line in lines if " image " in line]
    assert [t.split()[1] for t in tagged] == ["tag", "untag"] and all(t.endswith("(name=mine:1)") for t in tagged)

    def names_actions(*filters: str) -> list[str]:
        out = bb("events", "--since", since, "--until", until, "--format",
                 "{{.Actor.Attributes.name}} {{.Action}}", *filters).out
        return out.splitlines()
    assert names_actions("-f", "container=web2", "-f", "event=rename") == ["web2 rename"]
    assert names_actions("--filter", "label=tier=front", "--filter", "event=die") == ["web die"]
    assert names_actions("-f", "container=other") == ["other create"]
    assert bb("events", "--since", since, "--until", until, "--format", "{{.Actor.ID}} {{.Action}}",
              "-f", "type=volume", "-f", "event=create").out == "vol1 create\n"
    assert names_actions("-f", f"container={cid[:12]}", "-f", "event=create", "-f", "event=destroy") == [
        "web create", "web2 destroy"]
    assert [e["Action"] for e in past(bb, since, "-f", "image=busybox", "-f", "type=container")][:2] == [
        "create", "start"]
    r = bb("events", "--since", since, "--until", until, "-f", "colour=red", expect=125)
    assert "invalid filter 'colour'" in r.err


def test_until_in_the_future_follows_then_ends(bb):
    since = now()
    bb("volume", "create", "early")
    started = time.monotonic()
    out = bb("events", "--since", since, "--until", f"{time.time() + 1.5:.3f}", timeout=30).out
    assert time.monotonic() - started >= 1.0
    assert [line.split(" ", 1)[1] for line in out.splitlines()] == ["volume create early (driver=local)"]


class Follower:
    """``rootless events`` running, its lines collected by a thread."""

    def __init__(self, rl: Rootless, *args: str):
        self.p = subprocess.Popen(rootless_argv() + ["events", *args], env=rl.env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.t = threading.Thread(target=lambda: self.lines.extend(iter(self.p.stdout.readline, "")), daemon=True)
        self.t.start()

    def interrupt(self) -> tuple[int, str]:
        self.p.send_signal(signal.SIGINT)  # Ctrl-C: the way to end it
        try:
            _out, err = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            pytest.fail("events did not end on SIGINT")
        self.t.join(10)
        return self.p.returncode, err


def test_a_follower_sees_what_happens_after_it_started(bb):
    f = Follower(bb, "--format", "{{json .}}")
    try:
        n = iter(range(1000))

        def marker_seen() -> bool:  # when it follows is not observable from outside: mark until it shows
            bb("volume", "create", f"mark{next(n)}")
            return any('"volume"' in line for line in f.lines)
        wait_for(marker_seen, what="the follower to see a marker")
        bb("run", "--rm", "--name", "seen", "busybox", "true")

        def actions() -> list[str]:
            evs = [json.loads(line) for line in list(f.lines)]
            return [e["Action"] for e in evs if e["Type"] == "container" and e["Actor"]["Attributes"]["name"] == "seen"]
        wait_for(lambda: "destroy" in actions(), what="the run's events")
        assert actions() == ["create", "start", "die", "destroy"]
        assert all(not re.search(r'"name":"mark\d+"', line) or '"volume"' in line for line in f.lines)
    finally:
        code, err = f.interrupt()
    assert (code, err) == (0, "")


def test_a_build_reports_its_names_not_its_step_containers(bb):
    since = now()
    bb("build", "-q", "-t", "built:1", "-t", "built:2", "-", input="FROM busybox\nRUN echo hi > /f\n", timeout=300)
    evs = past(bb, since)
    image_id = bb("image", "inspect", "-f", "{{.Id}}", "built:1").out.strip()
    assert [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in evs] == [
        ("image", "tag", image_id, {"name": "built:1"}), ("image", "tag", image_id, {"name": "built:2"})]


def _execs(evs: list[dict]) -> list[tuple[str, dict]]:
    return [(e["Action"], e["Actor"]["Attributes"]) for e in evs if e["Action"].startswith("exec_")]


def test_every_exec_is_told_as_dockers_exec_events(busybox):
    """``exec_create: CMD ARGS``, ``exec_start: CMD ARGS`` (one ``execID``), then ``exec_die`` with
    the exit code: for a foreground exec, an ``exec -d`` (when its process ends, after exec
    returned), and one whose process is killed (128 + the signal)."""
    bb = busybox
    bb("run", "-d", "--name", "box", "--label", "com.example.k=v", "busybox", "sleep", "300")
    since = now()
    bb("exec", "box", "sh", "-c", "exit 3", expect=3)
    bb("exec", "-d", "box", "sleep", "1")
    bb("exec", "box", "true")
    killed = subprocess.Popen(rootless_argv() + ["exec", "box", "sleep", "301"], env=bb.env)
    try:
        wait_for(lambda: _pids_of(b"sleep\x00301\x00"), what="the exec'd process")
        for pid in _pids_of(b"sleep\x00301\x00"):
            os.kill(pid, signal.SIGKILL)
        assert killed.wait(30) == 137
    finally:
        killed.kill()
    wait_for(lambda: len(_execs(past(bb, since))) == 12, what="the detached exec's end")
    evs = _execs(past(bb, since, "--filter", "container=box"))
    ids = [attrs["execID"] for _, attrs in evs]
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)
    by_id: dict[str, list] = {}
    for action, attrs in evs:
        assert attrs["name"] == "box" and attrs["image"] == "busybox" and attrs["com.example.k"] == "v"
        by_id.setdefault(attrs["execID"], []).append(
            action if action != "exec_die" else f"exec_die {attrs['exitCode']}")
    assert sorted(by_id.values()) == sorted([
        ["exec_create: sh -c exit 3", "exec_start: sh -c exit 3", "exec_die 3"],
        ["exec_create: sleep 1", "exec_start: sleep 1", "exec_die 0"],
        ["exec_create: true ", "exec_start: true ", "exec_die 0"],
        ["exec_create: sleep 301", "exec_start: sleep 301", "exec_die 137"],
    ])
    # Docker's event filter matches these actions by their prefix
    assert [a for a, _ in _execs(past(bb, since, "--filter", "event=exec_die"))] == ["exec_die"] * 4
    assert len(past(bb, since, "--filter", "event=exec_start")) == 4


def _pids_of(cmdline: bytes) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if d.isdigit() and f.read() == cmdline:
                    found.append(int(d))
        except OSError:
            continue
    return found
