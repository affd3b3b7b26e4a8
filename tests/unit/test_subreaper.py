"""Tests for rootless/runtime/subreaper.py: which processes are a --pid host container's."""

import os
import subprocess

from rootless.runtime import subreaper

# pid -> (parent, state): the keeper 10 with helpers 11 (slirp4netns, its child 12) and 13
# (fuse-overlayfs), PID 1 of the container 20 with a child 21, an orphan 30 (a daemonized
# grandchild, now the keeper's) with its own child 31, and an unrelated process 40.
TABLE = {10: (1, "S"), 11: (10, "S"), 12: (11, "S"), 13: (10, "S"), 20: (10, "Z"), 21: (20, "S"),
         30: (10, "S"), 31: (30, "S"), 40: (1, "S")}


def test_the_containers_processes_are_the_keepers_descendants_but_its_helpers():
    assert sorted(subreaper.container_pids(10, {11, 13}, TABLE)) == [20, 21, 30, 31]


def test_a_helper_that_moved_to_the_keeper_stays_a_helper():
    """fuse-overlayfs daemonizes: seen under its first parent when PID 1 was forked, the keeper's child later."""
    moved = {**TABLE, 12: (10, "S")}
    assert sorted(subreaper.container_pids(10, {11, 12, 13}, moved)) == [20, 21, 30, 31]


def test_descendants_are_listed_parents_first():
    assert subreaper.descendants(10, TABLE)[:1] == [10]
    order = subreaper.descendants(10, TABLE)
    assert sorted(order) == [10, 11, 12, 13, 20, 21, 30, 31]
    assert order.index(30) < order.index(31) and order.index(11) < order.index(12)


def test_pid_mode_host_is_read_from_the_asked_settings():
    class Spec:
        asked = {"PidMode": "host"}
    assert subreaper.pid_host(Spec) and not subreaper.pid_host(object())


def test_exited_sees_a_childs_exit_without_reaping_it():
    p = subprocess.Popen(["true"])
    while not subreaper.exited(p.pid):
        os.sched_yield()
    assert subreaper.exited(p.pid)  # still there to be reaped
    assert os.waitpid(p.pid, 0)[0] == p.pid


def test_timers_combine_the_soonest_and_tick_both():
    class T:
        def __init__(self, t):
            self.t, self.ticks = t, 0

        def timeout(self):
            return self.t

        def tick(self):
            self.ticks += 1
    a, b = T(2.0), T(None)
    assert subreaper.combined(None, None) is None and subreaper.combined(a, None) is a
    both = subreaper.combined(a, b)
    both.tick()
    assert both.timeout() == 2.0 and (a.ticks, b.ticks) == (1, 1)


def test_a_helper_is_held_by_pidfd_until_it_is_reaped():
    """A helper's pid stays a helper's while that process exists (a zombie too); once reaped, the
    pid may be another process's, which is no helper."""
    p = subprocess.Popen(["true"])
    helpers = subreaper.HelperSet([p.pid])
    try:
        assert p.pid in helpers
        while not subreaper.exited(p.pid):
            os.sched_yield()
        assert p.pid in helpers and list(helpers) == [p.pid]  # a zombie: still that helper
        p.wait()
        assert p.pid not in helpers and list(helpers) == []
    finally:
        helpers.close()


def test_orphans_are_reaped_as_they_exit_but_no_status_another_part_waits_for():
    """EndWatch.reap_orphans: an exited child that is neither PID 1, a helper, nor a child whose
    status another part waits for (a probe) is reaped at once; those are left to their owners."""
    pid1 = subprocess.Popen(["true"])
    helper = subprocess.Popen(["true"])
    probe = subprocess.Popen(["true"])
    orphans = [subprocess.Popen(["true"]) for _ in range(3)]
    watch = subreaper.EndWatch(pid1.pid, subreaper.HelperSet([helper.pid]))
    watch.waited = lambda: (probe.pid,)
    try:
        for p in (pid1, helper, probe, *orphans):
            while not subreaper.exited(p.pid):
                os.sched_yield()
        watch.reap_orphans()
        for p in orphans:
            assert not os.path.exists(f"/proc/{p.pid}"), "an orphan's zombie is left"
        for p in (pid1, helper, probe):  # their status is still there for their owners
            assert os.waitpid(p.pid, 0)[0] == p.pid
    finally:
        watch.helpers.close()
        for p in orphans:
            p.returncode = 0  # reaped here, not by Popen


def test_a_living_process_that_cannot_be_waited_for_this_instant_has_not_exited():
    """``waitid`` says ECHILD for PID 1 for an instant while the exit watch's ptrace lets it go;
    taking that for its exit killed the container's other processes (a healthcheck probe ended
    with 137 now and then with --pid host). /proc decides then."""
    assert subreaper.exited(os.getppid()) is False  # alive, and no child of ours: ECHILD
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert subreaper.exited(pid) is True  # gone


def test_a_traced_child_stopped_by_a_signal_has_not_exited():
    """The exit watch traces PID 1 in its first second, and a tracer's ``waitid`` reports its
    tracee's stops whatever the flags: each SIGCHLD to PID 1 (a child of its ended) is such a stop.
    Taking it for the exit killed the container's other processes with --pid host (a healthcheck
    probe ended with 137 now and then)."""
    from rootless.base import syscalls
    pid = os.fork()
    if pid == 0:
        import signal
        import time
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        time.sleep(5)
        os._exit(0)
    try:
        syscalls.ptrace(syscalls.PTRACE_SEIZE, pid, 0, syscalls.PTRACE_O_TRACEEXIT)
        os.kill(pid, 10)  # SIGUSR1: a signal-delivery stop, reported to the tracer
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            os.sched_yield()
        assert subreaper.exited(pid) is False
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
