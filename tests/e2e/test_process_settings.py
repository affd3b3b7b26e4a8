"""``run``'s flags for the container's processes beside its command, as Docker has them:
``--ulimit``, ``--sysctl``, ``--oom-score-adj``, ``--shm-size``, ``--domainname``,
``--stop-signal``, ``--cidfile``, ``--label-file`` (``runtime.procsettings``); through the CLI and
through the API (the docker CLI's ``HostConfig.Ulimits``, ``Sysctls``, ``OomScoreAdj``,
``ShmSize``, ``Config.Domainname``, ``StopSignal``), each shown by ``inspect`` as Docker shows it.
Bad values are one line and exit 125, and no container is left."""

from __future__ import annotations

import json
import resource

import pytest

from tests.conftest import Rootless, wait_for

pytestmark = pytest.mark.userns


def run(rl: Rootless, *args: str, expect: int | None = 0):
    return rl("run", "--rm", "--network", "none", *args, expect=expect)


def test_ulimit_sets_soft_and_hard_limits_and_minus_one_is_unlimited(busybox):
    r = run(busybox, "--ulimit", "nofile=512:1024", "--ulimit", "core=-1", "busybox", "sh", "-c",
            "ulimit -n; ulimit -Hn; ulimit -c")
    assert r.out.split() == ["512", "1024", "unlimited"]
    assert run(busybox, "--ulimit", "nproc=77", "busybox", "sh", "-c", "ulimit -u; ulimit -Hu").out.split() == \
        ["77", "77"]  # SOFT alone: the hard limit too


def test_exec_takes_the_containers_ulimits(busybox):
    busybox("run", "-d", "--name", "ul", "--network", "none", "--ulimit", "nofile=200:300", "busybox", "sleep", "60")
    assert busybox("exec", "ul", "sh", "-c", "ulimit -n; ulimit -Hn").out.split() == ["200", "300"]


def test_a_hard_limit_above_the_users_own_is_refused_in_one_line(busybox):
    own = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    r = run(busybox, "--ulimit", f"nofile={own + 1}", "busybox", "true", expect=125)
    assert "cannot set the rlimit RLIMIT_NOFILE" in r.err and "Traceback" not in r.err
    assert busybox("ps", "-aq").out == ""


@pytest.mark.parametrize("flags, words", [
    (["--ulimit", "nofile=abc"], "invalid ulimit argument: nofile=abc"),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["--ulimit", "nofile=10:5"], "soft limit must be less than or equal to hard limit"),
    (["--sysctl", "kernel.panic=1"], "sysctl 'kernel.panic' is not allowed"),
    (["--sysctl", "nokey"], "invalid sysctl argument: nokey"),
    (["--network", "host", "--sysctl", "net.core.somaxconn=1"], "not allowed in host network namespace"),
    (["--ipc", "host", "--sysctl", "kernel.shmmax=1"], "not allowed with --ipc host"),
    (["--oom-score-adj", "5000"], "range for oom score adj is [-1000, 1000]"),
    (["--oom-score-adj", "-1"], "cannot have a lower OOM score than its user's processes"),
    (["--shm-size", "xyz"], "invalid size: 'xyz' (--shm-size)"),
    (["--ipc", "host", "--shm-size", "1g"], "conflicting options: --shm-size and --ipc host"),
    (["--stop-signal", "BOGUS"], "invalid signal: BOGUS"),
    (["--uts", "host", "--domainname", "x.org"], "conflicting options: domainname and the UTS mode host"),
])
def test_bad_values_are_one_line_and_leave_no_container(busybox, flags, words):
    r = busybox("run", "--rm", *flags, "busybox", "true", expect=125)
    assert words in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) <= 2
    assert busybox("ps", "-aq").out == ""


def test_sysctls_of_the_containers_network_and_ipc_namespaces(busybox):
    with open("/proc/sys/net/core/somaxconn") as f:
        host = f.read()
    r = busybox("run", "--rm", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0", "--sysctl",
                "net.core.somaxconn=1000", "--sysctl", "kernel.shmmax=1000000", "busybox", "cat",
                "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/net/core/somaxconn",
                "/proc/sys/kernel/shmmax")
    assert r.out.split() == ["0", "1000", "1000000"]
    with open("/proc/sys/net/core/somaxconn") as f:  # the host's own is untouched
        assert f.read() == host


def test_shm_size_and_its_default(busybox):
    assert run(busybox, "--shm-size", "128m", "busybox", "df", "-k", "/dev/shm").out.split()[-5] == "131072"
    assert run(busybox, "busybox", "df", "-k", "/dev/shm").out.split()[-5] == "65536"


def test_oom_score_adj_raised(busybox):
    assert run(busybox, "--oom-score-adj", "500", "busybox", "cat", "/proc/self/oom_score_adj").out == "500\n"


def test_domainname_beside_the_hostname(busybox):
    r = run(busybox, "--domainname", "example.org", "-h", "box", "busybox", "sh", "-c",
            "hostname; cat /proc/sys/kernel/domainname")
    assert r.out == "box\nexample.org\n"


def test_stop_signal_is_what_stop_sends(busybox):
    busybox("run", "-d", "--name", "quit", "--stop-signal", "SIGUSR1", "--network", "none", "busybox", "sh", "-c",
            "trap 'echo got usr1; exit 3' USR1; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: busybox("logs", "quit").out == "ready\n", what="the trap")
    assert busybox("inspect", "-f", "{{.Config.StopSignal}}", "quit").out == "SIGUSR1\n"
    busybox("stop", "-t", "10", "quit")
    assert busybox("logs", "quit").out == "ready\ngot usr1\n"
    assert busybox("inspect", "-f", "{{.State.ExitCode}}", "quit").out == "3\n"


def test_cidfile_gets_the_id_and_an_existing_one_is_refused(busybox, tmp_path):
    cid = tmp_path / "cid"
    r = busybox("run", "-d", "--cidfile", str(cid), "--network", "none", "busybox", "sleep", "60")
    assert cid.read_text() == r.out.strip()
    assert busybox("inspect", "-f", "{{.HostConfig.ContainerIDFile}}", r.out.strip()).out == f"{cid}\n"
    again = busybox("run", "--rm", "--cidfile", str(cid), "busybox", "true", expect=125)
    assert "container ID file found" in again.err and str(cid) in again.err
    assert busybox("ps", "-aq").out.split() == [r.out.strip()[:12]]
    missing = busybox("create", "--cidfile", str(tmp_path / "no" / "cid"), "busybox", "true", expect=125)
    assert "failed to create the container ID file" in missing.err
    assert len(busybox("ps", "-aq").out.split()) == 1


def test_a_failed_create_removes_the_cidfile_it_made(busybox, tmp_path):
    cid = tmp_path / "cid"
    busybox("create", "--cidfile", str(cid), "no-such-image:here", "true", expect=125)
    assert not cid.exists()


def test_label_file_then_label_flags_over_it(busybox, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("# a comment\na=1\n\nb=2\nempty\n")
    busybox("create", "--name", "lab", "--label-file", str(labels), "-l", "b=3", "busybox", "true")
    got = json.loads(busybox("inspect", "-f", "{{json .Config.Labels}}", "lab").out)
    assert got == {"a": "1", "b": "3", "empty": ""}
    r = busybox("create", "--label-file", str(tmp_path / "missing"), "busybox", "true", expect=125)
    assert "open" in r.err and "no such file" in r.err


def test_inspect_shows_the_settings_as_docker_does(busybox):
    busybox("create", "--name", "insp", "--stop-signal", "QUIT", "--ulimit", "nofile=100", "--sysctl",
            "net.core.somaxconn=77", "--shm-size", "1g", "--oom-score-adj", "10", "--domainname", "d.org",
            "busybox", "true")
    doc = json.loads(busybox("inspect", "insp").out)[0]
    hc, cfg = doc["HostConfig"], doc["Config"]
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 100}]
    assert hc["Sysctls"] == {"net.core.somaxconn": "77"}
    assert (hc["ShmSize"], hc["OomScoreAdj"]) == (1 << 30, 10)
    assert (cfg["StopSignal"], cfg["Domainname"]) == ("QUIT", "d.org")
    plain = json.loads(busybox("inspect", busybox("create", "busybox", "true").out.strip()).out)[0]
    assert (plain["HostConfig"]["Ulimits"], plain["HostConfig"]["ShmSize"], plain["Config"]["Domainname"]) == \
        (None, 64 << 20, "")
    record = json.loads((busybox.root / "containers" / plain["Id"] / "container.json").read_text())
    assert not {"ulimits", "sysctls", "shm_size", "oom_score_adj", "domainname"} & set(record["spec"])


def test_through_the_api_as_the_docker_cli_sends_them(api):
    r = api.docker("run", "--rm", "--network", "none", "--ulimit", "nofile=300:400", "--shm-size", "96m",
                   "--oom-score-adj", "300", "--domainname", "api.org", "--sysctl", "kernel.shmmni=1000",
                   "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; "
                   "cat /proc/self/oom_score_adj /proc/sys/kernel/domainname /proc/sys/kernel/shmmni")
    lines = r.out.splitlines()
    assert lines[:2] == ["300", "400"] and lines[2].split()[1] == "98304"
    assert lines[3:] == ["300", "api.org", "1000"]
    api.docker("create", "--name", "sig", "--stop-signal", "SIGHUP", "--ulimit", "core=0:-1", "busybox", "true")
    doc = json.loads(api.docker("inspect", "sig").out)[0]
    assert doc["Config"]["StopSignal"] == "SIGHUP"
    assert doc["HostConfig"]["Ulimits"] == [{"Name": "core", "Soft": 0, "Hard": -1}]
    bad = api.docker("run", "--rm", "--sysctl", "kernel.panic=1", "busybox", "true", expect=None)
    assert bad.code != 0 and "kernel.panic" in bad.err


def test_docker_exec_privileged_through_the_api(api):
    """The exec instance's ``Privileged`` (``docker exec --privileged``) was recorded and not applied."""
    from rootless.runtime.security import ALL_CAPS
    api.docker("run", "-d", "--name", "capa", "--cap-drop", "ALL", "--network", "none", "busybox", "sleep", "60")
    plain = api.docker("exec", "capa", "grep", "CapEff", "/proc/self/status").out
    privileged = api.docker("exec", "--privileged", "capa", "grep", "CapEff", "/proc/self/status").out
    assert int(plain.split()[1], 16) == 0 and int(privileged.split()[1], 16) == (1 << len(ALL_CAPS)) - 1


def test_dockers_usual_ping_group_range_is_refused_with_the_range_that_works(busybox):
    """Docker's own default, ``0 2147483647``, names groups the container's user namespace does not
    map: the kernel refuses it; the hint gives the range that works, and that one does."""
    r = busybox("run", "--rm", "--network", "none", "--sysctl", "net.ipv4.ping_group_range=0 2147483647",
                "busybox", "true", expect=125)
    hint = r.err.split('use "')[1].split('"')[0]
    assert "cannot set the sysctl net.ipv4.ping_group_range" in r.err and hint.startswith("0 ")
    out = busybox("run", "--rm", "--network", "none", "--sysctl", f"net.ipv4.ping_group_range={hint}", "busybox",
                  "cat", "/proc/sys/net/ipv4/ping_group_range").out
    assert out.split() == hint.split()
