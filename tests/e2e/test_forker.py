"""The warm forker (issue 25): detached keepers forked from one warm process share its pages.

Each test gives its CLI a soft core-size limit of its own: the limits are part of the identity a
forker serves (``rootless.runtime.forker.identity``), so each test has a forker of its own, which
it finds by that limit.
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import time

import pytest

from tests.conftest import Result, Rootless, one_error, rootless_argv, wait_for
from tests.e2e.test_network import HTTPD, fetch_eventually, free_port, record

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    yield rl
    rl("rm", "-f", *rl("ps", "-aq").out.split(), expect=None)


_TESTS = itertools.count(1)


@pytest.fixture
def core() -> int:
    """A soft core-size limit no other test uses: this process's and this test's own."""
    return 4096 * (os.getpid() * 64 + next(_TESTS))


def cli(rl: Rootless, core: int, *args: str, expect: int | None = 0, **env: str) -> Result:
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard != resource.RLIM_INFINITY and hard < core:
        pytest.skip("the hard core-size limit is too low to give each test its own")

    def limit():
        resource.setrlimit(resource.RLIMIT_CORE, (core, hard))

    cp = subprocess.run(rootless_argv() + list(args), env=dict(rl.env, **env), capture_output=True, timeout=120,
                        stdin=subprocess.DEVNULL, preexec_fn=limit)
    res = Result(list(args), cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace"))
    if expect is not None:
        assert res.code == expect, res
    return res


def forkers(core: int) -> list[tuple[int, str]]:
    """(pid, socket path) of the forkers of this test's identity."""
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "rootless-forker":
                    continue
            with open(f"/proc/{entry}/limits") as f:
                line = next(x for x in f if x.startswith("Max core file size"))
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode()
        except (OSError, StopIteration, ValueError):
            continue
        if line.split()[4] == str(core) and title:  # a zombie's command line is empty
            out.append((int(entry), title.split()[-1]))
    return out


def serving(core: int) -> tuple[int, str]:
    """The forker of this identity, once its socket is there."""
    def ready():
        found = [f for f in forkers(core) if os.path.exists(f[1])]
        return found[0] if found else None
    return wait_for(ready, what="the warm forker to listen")


def private_dirty(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("Private_Dirty:"))


def test_a_keeper_forked_warm_keeps_less_memory_of_its_own(bb, core):
    cli(bb, core, "run", "-d", "--name", "first", "busybox", "sleep", "300", ROOTLESS_FORKER="0")  # by its CLI
    cli(bb, core, "run", "--rm", "busybox", "true")  # starts a forker
    serving(core)
    cli(bb, core, "run", "-d", "--name", "warm", "busybox", "sleep", "300")
    time.sleep(0.5)  # both idle
    cold, warm = (private_dirty(record(bb, name)["state"]["keeper"]) for name in ("first", "warm"))
    assert warm < 0.7 * cold, (warm, cold)
    for name in ("first", "warm"):
        assert cli(bb, core, "exec", name, "echo", "hi").out == "hi\n"
    cli(bb, core, "stop", "-t", "1", "warm")
    assert bb("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "warm").out.split() == ["exited", "137"]


def test_a_warm_keeper_serves_ports_logs_restarts_and_says_why_it_failed(bb, core):
    cli(bb, core, "run", "-d", "busybox", "true")
    serving(core)
    port = free_port()
    cli(bb, core, "run", "-d", "--name", "web", "-e", "MSG=warm", "-p", f"127.0.0.1:{port}:80", "busybox", "sh",
        "-c", "echo started; " + HTTPD)
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "warm\n"
    assert bb("logs", "web").out == "started\n"
    cli(bb, core, "restart", "-t", "1", "web")  # stop, then a detached start: warm again
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == "warm\n"
    r = cli(bb, core, "run", "-d", "busybox", "/no/such/command", expect=127)
    one_error(r, "/no/such/command")
    r = cli(bb, core, "run", "-d", "-v", "/no/such/dir:/x", "busybox", "true", expect=None)
    assert r.code == 125 and "Traceback" not in r.err, r


def test_the_forker_leaves_when_idle_and_its_keepers_stay(bb, core):
    cli(bb, core, "run", "-d", "--name", "cold", "busybox", "sleep", "300", ROOTLESS_FORKER="0")
    cli(bb, core, "run", "-d", "busybox", "true", ROOTLESS_FORKER_IDLE="1")
    pid, path = serving(core)
    # the keepers' own forker beside it, made before the commands' modules were loaded
    assert len([f for f in forkers(core) if f[1] == path]) == 2, forkers(core)
    cli(bb, core, "run", "-d", "--name", "stays", "busybox", "sleep", "300", ROOTLESS_FORKER_IDLE="1")
    wait_for(lambda: not forkers(core), what="the idle forker (and the keepers' own) to exit")
    assert not os.path.exists(path)
    assert bb("exec", "stays", "echo", "still").out == "still\n"
    # alone now with what it inherited: the keeper heap, not the commands' modules too, so no
    # more than a keeper its CLI forked (measured: 7.6 MB against 10.8; 9.0 from the forker itself)
    cold, warm = (private_dirty(record(bb, name)["state"]["keeper"]) for name in ("cold", "stays"))
    assert warm < cold, (warm, cold)
    bb("stop", "-t", "1", "stays")


def test_ROOTLESS_FORKER_0_and_a_Slurm_job_start_no_forker(bb, core):
    for env in ({"ROOTLESS_FORKER": "0"}, {"SLURM_JOB_ID": "4242"}):  # a job's processes end with it
        cli(bb, core, "run", "-d", "busybox", "true", **env)
        cli(bb, core, "run", "--rm", "busybox", "true", **env)
        cli(bb, core, "ps", **env)
    time.sleep(0.5)
    assert forkers(core) == []


# ---- warm commands (rootless.cli.warm) ------------------------------------------------------------
def popen(rl: Rootless, core: int, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    return subprocess.Popen(rootless_argv() + list(args), env=rl.env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (core, hard)))


def sessions_of(forker_pid: int) -> list[int]:
    """The forker's children that run a command (``rootless``, not a keeper's middle process)."""
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == forker_pid and comm == "rootless":
            out.append(int(entry))
    return out


def test_a_warm_command_runs_in_a_fork_of_the_forker_and_ends_as_it_would_have(bb, core):
    cli(bb, core, "run", "--rm", "busybox", "true")  # runs here, starts the forker
    pid, _ = serving(core)
    r = cli(bb, core, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", expect=3)
    assert (r.out, r.err) == ("out\n", "err\n")
    assert cli(bb, core, "run", "--rm", "-i", "busybox", "cat", expect=0).out == ""  # stdin: /dev/null
    p = popen(bb, core, "run", "--rm", "busybox", "sleep", "2")
    assert wait_for(lambda: sessions_of(pid), what="the command's process, forked by the forker")
    assert p.wait(timeout=60) == 0
    one_error(cli(bb, core, "run", "--rm", "busybox", "/no/such/command", expect=127), "/no/such/command")
    r = cli(bb, core, "ps", "--nosuchflag", expect=125)
    assert "unknown flag" in r.err and "Traceback" not in r.err


def test_a_warm_command_gets_its_callers_signals_and_dies_with_it(bb, core):
    cli(bb, core, "run", "--rm", "busybox", "true")
    pid, _ = serving(core)
    p = popen(bb, core, "run", "--rm", "busybox", "sh", "-c", "trap 'exit 42' TERM; echo ready; sleep 30 & wait")
    assert p.stdout.readline() == b"ready\n"
    p.terminate()  # forwarded to the command, which forwards it to the container
    assert p.wait(timeout=60) == 42
    p = popen(bb, core, "run", "--rm", "--name", "orphan", "busybox", "sleep", "30")
    session = wait_for(lambda: sessions_of(pid), what="the command's process")[0]
    wait_for(lambda: bb("ps", "-q", "--filter", "name=orphan").out.strip(), what="the container to run")
    p.kill()  # as a CLI killed: its work ends with it, the container goes on (it is not tied)
    p.wait(timeout=60)
    wait_for(lambda: not os.path.exists(f"/proc/{session}"), what="the command's process to be killed")
    assert bb("inspect", "-f", "{{.State.Status}}", "orphan").out.strip() == "running"


def test_a_terminal_on_stdin_keeps_the_command_in_its_cli(bb, core):
    import pty
    cli(bb, core, "run", "--rm", "busybox", "true")
    pid, _ = serving(core)
    master, slave = pty.openpty()
    try:
        p = popen(bb, core, "run", "--rm", "busybox", "sleep", "2", stdin=slave)
        time.sleep(1)
        assert sessions_of(pid) == []
        assert p.wait(timeout=60) == 0
    finally:
        os.close(master)
        os.close(slave)
