"""Plain ``rootless run`` in Slurm jobs across the test bed's nodes (issue 26, points 3 and 5):
two nodes' names, a node-local store each, ``scancel`` leaving nothing behind on either node,
and two ranks talking over the host network."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.cluster


def _processes_with(marker: str) -> list[str]:
    """Live processes (not zombies) whose command line or environment holds ``marker``: the nodes
    share the host's pid namespace, so this sees every node's."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
        except OSError:  # another user's, or a container's
            env = b""
        if marker.encode() in args or marker.encode() in env:
            found.append(d + ": " + args.decode(errors="replace"))
    return found


def test_srun_on_two_nodes_runs_a_container_on_each_with_its_node_local_store(loaded):
    c = loaded
    r = c.srun("-N2", "--ntasks-per-node=1", c.rootless, "run", "--rm", "--network", "host", "busybox", "hostname")
    assert sorted(r.out.split()) == sorted(c.nodes), r
    assert r.err == "", r.err  # no warning in a job: no systemd, no XDG_RUNTIME_DIR, no cgroup of our own
    # each node's store is its own (its /tmp), none in the shared home or on the host
    stores = c.by_node(f"test -f {c.store}/version && {c.rootless} images -q | wc -l; "
                       f"df -P {c.store} | tail -1 | cut -d' ' -f1")
    assert set(stores) == set(c.nodes)
    assert not os.path.exists(c.store)
    assert not (c.shared / "store").exists()
    for node, out in stores.items():
        assert out.splitlines()[0] == "1", (node, out)


def test_a_jobs_runtime_directory_is_its_own_and_gone_when_the_job_ends(loaded):
    c = loaded
    out = c.by_node(f"{c.rootless} run --rm busybox true; echo $SLURM_JOB_ID; "
                    f"ls -d /tmp/rootless-run-{os.getuid()}-job$SLURM_JOB_ID")
    job = None
    for node, text in out.items():
        lines = text.splitlines()
        job = lines[0]
        assert lines[1] == f"/tmp/rootless-run-{os.getuid()}-job{job}", (node, text)
    # the epilog (scripts/slurm-epilog.sh) removed it on both nodes when the job ended
    after = c.by_node(f"ls -d /tmp/rootless-run-{os.getuid()}-job{job} 2>/dev/null; echo checked")
    assert all(text == "checked" for text in after.values()), after


def test_scancel_of_a_running_containerised_step_leaves_nothing_on_either_node(loaded):
    c = loaded
    name = f"rltest-scancel-{c.key}"
    marker = f"sleep {3000 + os.getpid() % 1000}"  # the containers' command line, found from the host
    argv = ["srun", "--quiet", f"--chdir={c.shared}", f"--job-name={name}", "-u", "-N2", "--ntasks-per-node=1",
            c.rootless, "run", "--rm", "busybox", "sh", "-c", f"echo started; exec {marker}"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=c.env, cwd=c.shared,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout is not None
        started = 0
        while started < 2:
            line = p.stdout.readline()
            assert line, "srun ended before both containers started"
            started += line.strip() == b"started"
        wait_for(lambda: len([x for x in _processes_with(marker) if x.split(": ", 1)[1].strip() == marker]) == 2,
                 30, "both containers' commands")
        job = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True).stdout.strip()
        assert job.isdigit(), job
        begun = time.monotonic()
        subprocess.run(["scancel", job], check=True)
        try:
            rest = p.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            pytest.fail("srun did not end within 60 s of scancel")
    finally:
        if p.poll() is None:
            subprocess.run(["scancel", "-n", name], check=False)
            p.send_signal(signal.SIGKILL)
            p.wait()
    # the keepers stopped their containers (SIGKILL after the stop timeout, 10 s) before Slurm's
    # SIGKILL (KillWait, 30 s), and cleaned up
    assert time.monotonic() - begun < 28, rest
    wait_for(lambda: not _processes_with(marker), 10, f"no process of {marker}")
    wait_for(lambda: not _processes_with(c.store), 10, "no process of the store")
    left = c.by_node(f"ls -A {c.store}/containers; {c.rootless} ps -aq; grep -c {c.store} /proc/self/mountinfo; "
                     f"ls -d /tmp/rootless-run-{os.getuid()}-job{job} 2>/dev/null; true")
    assert set(left) == set(c.nodes)
    for node, text in left.items():
        assert text.split() == ["0"], (node, text)  # no record, no container, no mount, no runtime dir


def test_two_ranks_on_two_nodes_ping_pong_over_tcp_on_the_host_network(loaded):
    c = loaded
    first = c.state[f"node_{c.nodes[0]}_address"]
    port = 20000 + os.getpid() % 20000
    script = (
        'if [ "$SLURM_PROCID" = 0 ]; then '
        f'  exec {c.rootless} run --rm --network host busybox nc -l -p {port} -e sh -c '
        '"read ping; echo pong from \\$(hostname) to \\$ping"; '
        'else '
        f'  for i in $(seq 100); do out=$({c.rootless} run --rm --network host busybox sh -c '
        f'"echo \\$(hostname) | nc -w 5 {first} {port}") && [ -n "$out" ] && break; sleep 0.2; done; '
        '  echo "$out"; '
        'fi')
    r = c.srun("-N2", "-n2", "--ntasks-per-node=1", "sh", "-c", script, timeout=180)
    assert r.out.strip() == f"pong from {c.nodes[0]} to {c.nodes[1]}", r


def test_the_steps_exit_code_is_the_containers(loaded):
    c = loaded
    r = c.srun("-N1", c.rootless, "run", "--rm", "busybox", "sh", "-c", "exit 7", expect=None)
    assert r.code == 7, r
    r = c.srun("-N1", c.rootless, "run", "--rm", "busybox", "no-such-command", expect=None)
    assert r.code == 127, r


def test_a_time_limit_ends_the_container_and_leaves_nothing(loaded):
    """A job over its time limit gets what scancel gives (SIGTERM, SIGKILL after KillWait): the
    container stops within its stop timeout (2 s here), a --rm container leaves nothing. Slurm
    checks time limits every 30 s: this test takes a minute or two."""
    c = loaded
    marker = f"sleep {5000 + os.getpid() % 1000}"
    began = time.monotonic()
    r = c.run(["sbatch", "--wait", "--quiet", "--time=1", "-N1", f"--chdir={c.shared}", f"--job-name=rltest-tl-{c.key}",
               f"--output={c.shared}/timelimit.out", "--wrap",
               f"{c.rootless} run --rm --stop-timeout 2 busybox {marker}; echo exit=$?"],
              timeout=240, expect=None)
    assert r.code != 0, r  # TIMEOUT
    out = (c.shared / "timelimit.out").read_text()
    assert "DUE TO TIME LIMIT" in out, out
    assert time.monotonic() - began < 200
    wait_for(lambda: not _processes_with(marker), 10, f"no process of {marker}")
    left = c.by_node(f"ls -A {c.store}/containers 2>/dev/null | wc -l")
    assert all(text.split() == ["0"] for text in left.values()), left
