"""Bounded logs (drivers, rotation, a flood) and the faults and bad inputs a careless or hostile
user meets: each gets Docker's answer or one clear line, never an internal error."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading

import pytest

from tests.conftest import Rootless, inspect, one_error, rootless_argv, status, wait_for

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def log_files(rl: Rootless, cid: str) -> list[str]:
    d = rl.root / "containers" / cid
    return sorted(p.name for p in d.iterdir() if p.name.startswith("ctr.log"))


# ---- logs ---------------------------------------------------------------------------------------
def test_a_flood_is_bounded_by_rotation_and_logs_shows_its_end(bb):
    cid = bb("run", "-d", "--log-opt", "max-size=64k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
             "yes | head -c 4000000; echo last-line").out.strip()
    assert bb("wait", cid, timeout=120).out.strip() == "0"
    assert log_files(bb, cid) == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    sizes = [os.path.getsize(bb.root / "containers" / cid / f) for f in log_files(bb, cid)]
    assert all(s <= 64 * 1024 for s in sizes), sizes
    assert bb("logs", "--tail", "1", cid).out == "last-line\n"
    out = bb("logs", cid).out.splitlines()
    assert out[-1] == "last-line" and set(out[:-1]) == {"y"} and len(out) > 2000  # all three files, in order
    f = bb("logs", "-f", "--tail", "2", cid).out
    assert f == "y\nlast-line\n"
    h = inspect(bb, cid)["HostConfig"]["LogConfig"]
    assert h == {"Type": "json-file", "Config": {"max-size": "64k", "max-file": "3"}}


def test_the_default_cap_is_documented_in_info_and_applied(bb):
    assert "json-file, rotated at 20m, 5 file(s) kept" in bb("info").out
    cid = bb("create", "busybox", "true").out.strip()
    assert inspect(bb, cid)["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                           "Config": {"max-size": "20m", "max-file": "5"}}
    bb.config.write_text(bb.config.read_text() + '\n[logs]\nmax_size = "1m"\nmax_file = 2\n')
    assert "rotated at 1m, 2 file(s) kept" in bb("info").out
    cid = bb("create", "busybox", "true").out.strip()
    assert inspect(bb, cid)["HostConfig"]["LogConfig"]["Config"] == {"max-size": "1m", "max-file": "2"}


def test_k8s_file_driver(bb):
    bb("run", "--name", "k8", "--log-driver", "k8s-file", "busybox", "sh", "-c",
       "echo out; echo err >&2; printf partial")
    cid = inspect(bb, "k8")["Id"]
    with open(bb.root / "containers" / cid / "ctr.log", "rb") as f:
        lines = f.read().splitlines()
    assert {ln.split(b" ", 1)[1] for ln in lines} == {b"stdout F out", b"stderr F err", b"stdout P partial"}
    r = bb("logs", "k8")
    assert (r.out, r.err) == ("out\npartial", "err\n")
    assert inspect(bb, "k8")["HostConfig"]["LogConfig"]["Type"] == "k8s-file"


def test_local_driver_and_the_details_its_options_name(bb):
    """Docker's ``local`` driver (kept in json-file's lines here) with labels=/env= options: ``logs
    --details`` puts the labels and variables they name before each line, as Docker does."""
    bb("run", "--name", "loc", "--log-driver", "local", "--log-opt", "labels=team", "--log-opt", "env=STAGE",
       "--log-opt", "compress=false", "-l", "team=a b", "-e", "STAGE=prod", "busybox", "sh", "-c",
       "echo out; echo err >&2")
    r = bb("logs", "loc")
    assert (r.out, r.err) == ("out\n", "err\n")
    r = bb("logs", "--details", "loc")
    assert (r.out, r.err) == ("STAGE=prod,team=a+b out\n", "STAGE=prod,team=a+b err\n")
    config = inspect(bb, "loc")["HostConfig"]["LogConfig"]
    assert config["Type"] == "local"
    assert {k: config["Config"][k] for k in ("labels", "env", "compress")} == {"labels": "team", "env": "STAGE",
                                                                               "compress": "false"}


def test_none_driver_keeps_nothing_but_shows_an_attached_run(bb):
    r = bb("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "seen")
    assert r.out == "seen\n"
    cid = inspect(bb, "quiet")["Id"]
    assert log_files(bb, cid) == []
    one_error(bb("logs", "quiet", expect=1), "does not support reading")


def test_bad_log_flags_are_one_line_before_anything_is_made(bb):
    for args, words in ((["--log-driver", "syslog"], ["unsupported log driver 'syslog'"]),
                        (["--log-opt", "max-size=lots"], ["invalid max-size 'lots'"]),
                        (["--log-opt", "max-file=0"], ["max-file cannot be less than 1"]),
                        (["--log-opt", "compress=maybe"], ["invalid value for compress 'maybe'"]),
                        (["--log-opt", "tag=x"], ["unknown log opt 'tag'"]),
                        (["--log-opt", "env-regex=("], ["invalid env-regex '('"]),
                        (["--log-driver", "none", "--log-opt", "max-size=1m"], ["for none log driver"])):
        one_error(bb("run", *args, "busybox", "true", expect=125), *words)
    assert bb("ps", "-aq").out == ""


def test_system_df_counts_logs(bb):
    def containers_size() -> str:
        line = [ln for ln in bb("system", "df").out.splitlines() if ln.startswith("Containers")][0]
        return line.split()[3]

    bb("run", "--name", "quiet", "busybox", "true")
    small = containers_size()
    bb("run", "--name", "talk", "busybox", "sh", "-c", "yes | head -c 300000")  # some 11 MB of log
    big = containers_size()
    assert small.endswith(("B", "kB")) and big.endswith("MB") and float(big[:-2]) > 10, (small, big)


def test_logs_f_ends_cleanly_when_the_container_is_removed(bb):
    bb("run", "-d", "--name", "goner", "busybox", "sh", "-c", "echo hello; sleep 60")
    wait_for(lambda: "hello" in bb("logs", "goner").out, what="the first line")
    p = subprocess.Popen(rootless_argv() + ["logs", "-f", "goner"], env=bb.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.stdout.readline() == b"hello\n"
    bb("rm", "-f", "goner")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert b"error" not in err


def test_logs_right_after_start_of_a_quick_container(bb):
    """``start`` then ``logs`` at once, on the command line: what ``echo`` wrote is there, however
    fast it ended, and also when it had not run yet when ``logs`` asked (the keeper awaits the
    first output of a PID 1 still starting)."""
    for i in range(12):
        cid = bb("create", *(["-t"] if i % 3 == 1 else []), "busybox", "echo", f"quick {i}").out.strip()
        bb("start", cid)
        assert bb("logs", cid).out.replace("\r\n", "\n") == f"quick {i}\n", i
        bb("rm", "-f", cid)
    cid = bb("create", "busybox", "sh", "-c", "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done; echo late").out.strip()
    bb("start", cid)
    assert bb("logs", cid).out == "late\n"


# ---- wait, kill, -u, --root, -p ---------------------------------------------------------------
def test_wait_racing_rm_f_says_137(bb):
    bb("run", "-d", "--name", "victim", "busybox", "sleep", "60")
    p = subprocess.Popen(rootless_argv() + ["wait", "victim"], env=bb.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wait_for(lambda: _has_socket(p.pid), what="wait to ask the keeper")
    bb("rm", "-f", "victim")
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out) == (0, b"137\n"), err
    one_error(bb("wait", "victim", expect=1), "No such container: victim")


def _has_socket(pid: int) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_wait_on_an_rm_container_gives_its_own_code(bb):
    cid = bb("run", "-d", "--rm", "busybox", "sh", "-c", "sleep 1; exit 7").out.strip()
    assert bb("wait", cid).out == "7\n"


def test_kill_with_a_signal_the_kernel_lacks(bb):
    bb("run", "-d", "--name", "k", "busybox", "sleep", "60")
    for sig in ("99", "0", "SIGNOPE"):
        one_error(bb("kill", "-s", sig, "k", expect=1), "invalid signal")  # as for a name it lacks
    assert status(bb, "k") == "running"
    bb("rm", "-f", "k")


@pytest.mark.parametrize("user", ["4294967295", "0:4294967295", "99999999999", "70000", "0:70000"])
def test_uids_no_process_can_have_are_refused(bb, user):
    r = bb("run", "-u", user, "busybox", "id", expect=125)
    one_error(r, "invalid user")
    assert "uid=0" not in r.out
    bb("run", "-d", "--name", "ex", "busybox", "sleep", "60")
    one_error(bb("exec", "-u", user, "ex", "id", expect=125), "invalid user")
    bb("rm", "-f", "ex")


def test_a_big_uid_from_the_images_passwd_is_refused(bb, tmp_path):
    bb("run", "--name", "pw", "busybox", "sh", "-c", "echo 'big:x:4294967295:0::/:/bin/sh' >> /etc/passwd")
    bb("commit", "pw", "bigpw")
    r = bb("run", "-u", "big", "bigpw", "id", expect=125)
    one_error(r, "out of range")
    assert "uid=0" not in r.out


@pytest.mark.parametrize("root", ["/etc", "/proc/self", "/dev/null/store"])
def test_a_root_that_cannot_hold_a_store(rl, root):
    r = rl("--root", root, "ps", expect=125)
    one_error(r, "cannot keep the store in", root)


def test_publish_errors_quote_the_flag(bb):
    one_error(bb("run", "-p", "80:-1", "busybox", "true", expect=125), "'-1' in '80:-1'")


# ---- damaged records --------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b'{"id": "x"', b"{}", b"[]", b'{"id":"%s","name":"n"}'])
def test_a_damaged_record_is_listed_named_and_removable(bb, content):
    cid = bb("create", "--name", "dmg", "busybox", "true").out.strip()
    record = bb.root / "containers" / cid / "container.json"
    record.write_bytes(content.replace(b"%s", cid.encode()))
    ps = bb("ps", "-a", "--no-trunc").out
    assert cid in ps and "Dead (damaged record" in ps
    assert cid[:12] in bb("info").out
    r = bb("system", "check", expect=1)
    assert f"rm -f {cid[:12]}" in r.out
    one_error(bb("start", cid[:12], expect=125), "unreadable")
    bb("rm", "-f", cid[:12])
    assert not (bb.root / "containers" / cid).exists()
    assert bb("ps", "-aq").out == ""
    bb("system", "check")


def test_a_running_container_with_a_damaged_record_is_killed_by_rm_f(bb):
    cid = bb("run", "-d", "busybox", "sleep", "60").out.strip()
    st = json.loads((bb.root / "containers" / cid / "container.json").read_text())["state"]
    (bb.root / "containers" / cid / "container.json").write_bytes(b"{trunc")
    one_error(bb("rm", cid[:12], expect=1), "running")
    bb("rm", "-f", cid[:12])
    for pid in (st["pid"], st["keeper"]):
        wait_for(lambda p=pid: not os.path.exists(f"/proc/{p}") or _zombie(p), what=f"{pid} to end")
    assert not (bb.root / "containers" / cid).exists()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ---- cp and symlinks ----------------------------------------------------------------------------
def test_cp_copies_a_link_as_a_link_unless_L(bb, tmp_path):
    bb("run", "--name", "ln", "busybox", "sh", "-c",
       "echo target > /data.txt; ln -s /data.txt /link; ln -s /etc/passwd /abs")
    bb("cp", "ln:/link", tmp_path / "as-link")
    assert os.readlink(tmp_path / "as-link") == "/data.txt"
    bb("cp", "-L", "ln:/link", tmp_path / "followed")
    assert (tmp_path / "followed").read_text() == "target\n" and not os.path.islink(tmp_path / "followed")
    bb("cp", "--follow-link", "ln:/abs", tmp_path / "passwd")  # followed inside the container's root
    assert (tmp_path / "passwd").read_text().startswith("root:")
    assert (tmp_path / "passwd").read_text() != open("/etc/passwd").read()


# ---- a soak: many lives at once, keepers killed at random -----------------------------------
def test_soak_parallel_lifecycles_with_killed_keepers(bb):
    errors: list[str] = []
    rng = random.Random(12)

    def worker(w: int) -> None:
        for i in range(50):
            name = f"s{w}-{i}"
            r = bb("run", "-d", "--name", name, "--log-opt", "max-size=4k", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; sleep 30", expect=None)
            if r.code != 0:
                errors.append(f"run {name}: {r.err}")
                continue
            if rng.random() < 0.5:
                bb("logs", "--tail", "3", name, expect=None)
            if rng.random() < 0.5:
                e = bb("exec", name, "echo", "in", expect=None)
                if e.code not in (0, 125, 126) or "internal error" in e.err:
                    errors.append(f"exec {name}: {e.code} {e.err}")
            if rng.random() < 0.25:  # a keeper dies without a word
                rec = json.loads((bb.root / "containers" / r.out.strip() / "container.json").read_text())
                if rec["state"].get("keeper"):
                    try:
                        os.kill(rec["state"]["keeper"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            d = bb("rm", "-f", name, expect=None)
            if d.code != 0:
                errors.append(f"rm {name}: {d.err}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:5]
    assert bb("ps", "-aq").out == ""
    bb("system", "check")
    runroot = bb.runtime / "rootless"
    assert not [d for d in os.listdir(runroot) if len(d) == 64] if runroot.is_dir() else True
    with open("/proc/self/mountinfo") as f:
        assert str(bb.root) not in f.read()
    wait_for(lambda: not _processes_of(bb), what="the store's processes to end")


def _processes_of(rl: Rootless) -> list[str]:
    """Processes started for this store (they inherit its ROOTLESS_ROOT)."""
    found = []
    needle = f"ROOTLESS_ROOT={rl.root}".encode()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(d)
            except OSError:
                continue
    return found


TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
FLOOD = "yes | head -c 400000; echo err >&2; yes ab | head -c 3000 >&2; sleep 1; printf 'é\\r\\ny\\nlast'"


@pytest.mark.parametrize("driver", ["json-file", "k8s-file"])
def test_logs_of_a_flood_read_in_bulk_keep_streams_stamps_tail_and_the_partial_end(bb, driver):
    """The reader takes the writer's runs in bulk (issue 25): what ``logs`` shows is still every
    entry on its stream, ``-t`` stamps each, ``--tail`` counts entries, the partial end stays."""
    cid = bb("run", "-d", "--log-driver", driver, "--log-opt", "max-size=1g", "busybox", "sh", "-c",
             FLOOD).out.strip()
    assert bb("wait", cid, timeout=120).out.strip() == "0"
    r = bb("logs", cid)
    assert r.out == "y\n" * 200_000 + "é\r\ny\nlast"
    assert r.err == "err\n" + "ab\n" * 1000
    stamped = bb("logs", "-t", cid)
    lines = stamped.out.split("\n")
    assert len(lines) == 200_003 and all(TIME.fullmatch(line[:30]) and line[30] == " " for line in lines)
    assert [line[31:] for line in lines] == ["y"] * 200_000 + ["é\r", "y", "last"]
    assert [line[31:] for line in stamped.err.splitlines()] == ["err"] + ["ab"] * 1000
    detailed = bb("logs", "--details", cid)  # Docker's: each line after its attributes (none) and a space
    assert detailed.out == " y\n" * 200_000 + " é\r\n y\n last" and detailed.err == " err\n" + " ab\n" * 1000
    both = bb("logs", "-t", "--details", cid).out.split("\n")
    assert all(TIME.fullmatch(line[:30]) and line[30:32] == "  " for line in both) and both[-1][32:] == "last"
    tail = bb("logs", "--tail", "3", cid)
    # the two streams are two pipes, so only the second's pause orders stdout's end after stderr's lines
    assert (tail.out, tail.err) == ("é\r\ny\nlast", "")
    assert bb("logs", "--since", "2000-01-01", "--until", "2001-01-01", cid).out == ""

