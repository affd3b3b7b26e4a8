"""Tests for rootless/runtime/spec.py: Docker's rules for the command line, the environment and the spec."""

import json

import pytest

from rootless.base.errors import UsageError
from rootless.runtime import spec
from rootless.runtime.spec import DEFAULT_PATH, ContainerSpec, RunOptions

CID = "0123456789ab" + "c" * 52
IMAGE = {"id": "sha256:" + "1" * 64,
         "layers": [{"diff_id": "sha256:" + "a" * 64}, {"diff_id": "sha256:" + "b" * 64}]}
HOST_ENV = {"HOME": "/home/me", "LANG": "C.UTF-8", "EMPTY": ""}


# ---- command_line ---------------------------------------------------------------------
@pytest.mark.parametrize("cfg, command, entrypoint, argv", [
    ({"Cmd": ["sh"]}, (), None, ["sh"]),
    ({"Entrypoint": ["/init"], "Cmd": ["a", "b"]}, (), None, ["/init", "a", "b"]),
    ({"Entrypoint": ["/init"]}, (), None, ["/init"]),
    ({"Entrypoint": ["/init"], "Cmd": ["a"]}, ("x", "y"), None, ["/init", "x", "y"]),  # CLI replaces Cmd
    ({"Cmd": ["sh"]}, ("echo", "hi"), None, ["echo", "hi"]),
    ({"Entrypoint": ["/init"], "Cmd": ["a"]}, (), "/bin/ls", ["/bin/ls"]),  # drops the image's Cmd
    ({"Entrypoint": ["/init"], "Cmd": ["a"]}, ("-l",), "/bin/ls", ["/bin/ls", "-l"]),
    ({"Entrypoint": ["/init"], "Cmd": ["a"]}, ("echo", "x"), "", ["echo", "x"]),  # --entrypoint "" clears
    ({"Entrypoint": None, "Cmd": None}, ("true",), None, ["true"]),
    ({}, ("true",), None, ["true"]),
])
def test_command_line(cfg, command, entrypoint, argv):
    assert spec.command_line(cfg, command, entrypoint) == argv


@pytest.mark.parametrize("cfg, command, entrypoint", [
    ({}, (), None),
    ({"Entrypoint": None, "Cmd": None}, (), None),
    ({"Entrypoint": [], "Cmd": []}, (), None),
    ({"Entrypoint": ["/init"], "Cmd": ["a"]}, (), ""),
])
def test_command_line_empty(cfg, command, entrypoint):
    with pytest.raises(UsageError, match="no command specified"):
        spec.command_line(cfg, command, entrypoint)


# ---- environment ----------------------------------------------------------------------
@pytest.mark.parametrize("arg, result", [
    ("K=V", ["K=V"]),
    ("K=", ["K="]),
    ("K=a=b", ["K=a=b"]),
    ("K= spaced value ", ["K= spaced value "]),
    ("LANG", ["LANG=C.UTF-8"]),  # from the host
    ("EMPTY", ["EMPTY="]),
    ("MISSING", []),  # not on the host: dropped
])
def test_merge_env_arg(arg, result):
    assert spec.merge_env_arg(arg, HOST_ENV) == result


@pytest.mark.parametrize("arg", ["", "=V", " K=V", "K =V", "A B=1", "A B"])
def test_merge_env_arg_invalid(arg):
    with pytest.raises(UsageError, match="invalid environment variable") as e:
        spec.merge_env_arg(arg, HOST_ENV, where="env.list:3")
    assert "env.list:3" in str(e.value)


def test_parse_env_file():
    text = "# a comment\n\nA=1\n  B=two words\nLANG\nMISSING\n   # indented comment\nC=\n"
    assert spec.parse_env_file(text, "env.list", HOST_ENV) == ["A=1", "B=two words", "LANG=C.UTF-8", "C="]


def test_parse_env_file_names_the_bad_line():
    with pytest.raises(UsageError, match="env.list:2"):
        spec.parse_env_file("A=1\n=oops\n", "env.list", HOST_ENV)


@pytest.mark.parametrize("text, env", [
    ("A=x  \n", ["A=x  "]),  # Docker passes a value through untrimmed
    ("  A= x \t\n", ["A= x \t"]),
    ("LANG  \n", ["LANG=C.UTF-8"]),  # a bare name is trimmed
    ("\tMISSING \n", []),
])
def test_parse_env_file_whitespace(text, env):
    assert spec.parse_env_file(text, "env.list", HOST_ENV) == env


@pytest.mark.parametrize("base, overrides, merged", [
    ([], [], []),
    (["A=1", "B=2"], [], ["A=1", "B=2"]),
    (["A=1", "B=2"], ["A=3"], ["A=3", "B=2"]),  # later wins, first position kept
    (["A=1"], ["B=2", "A=3", "B=4"], ["A=3", "B=4"]),
    (["A=1", "A=2"], [], ["A=2"]),
    (["P=x=y"], ["Q="], ["P=x=y", "Q="]),
])
def test_merge_env(base, overrides, merged):
    assert spec.merge_env(base, overrides) == merged


# ---- build ----------------------------------------------------------------------------
def build(opts: RunOptions, config: dict | None = None, env_files: dict | None = None,
          name: str = "web") -> ContainerSpec:
    return spec.build(opts, CID, name, IMAGE, {"config": config or {}}, "busybox:latest",
                      HOST_ENV, env_files or {})


def test_build_basic():
    s = build(RunOptions(image="busybox", command=("sh",)))
    assert s.id == CID and s.name == "web"
    assert s.image_id == IMAGE["id"] and s.image_name == "busybox:latest"
    assert s.layers == ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    assert s.argv == ("sh",)
    assert s.env == (f"HOSTNAME={CID[:12]}", f"PATH={DEFAULT_PATH}")
    assert (s.user, s.workdir, s.hostname, s.network) == ("", "/", CID[:12], "slirp4netns")
    assert (s.init, s.tty, s.interactive, s.remove) == (False, False, False, False)
    assert s.labels == {} and s.stop_signal == "SIGTERM"


@pytest.mark.parametrize("image_env, opts_env, env", [
    (["PATH=/bin"], (), ["HOSTNAME=h", "PATH=/bin"]),  # the image's PATH is kept
    (["A=1"], (), ["HOSTNAME=h", f"PATH={DEFAULT_PATH}", "A=1"]),  # a default PATH is added
    (["A=1"], ("A=2", "B=3"), ["HOSTNAME=h", f"PATH={DEFAULT_PATH}", "A=2", "B=3"]),
    ([], ("PATH=/x", "LANG", "MISSING"), ["HOSTNAME=h", "PATH=/x", "LANG=C.UTF-8"]),
    (["HOSTNAME=image"], (), ["HOSTNAME=image", f"PATH={DEFAULT_PATH}"]),
    ([], ("HOSTNAME=cli",), ["HOSTNAME=cli", f"PATH={DEFAULT_PATH}"]),
])
def test_build_env(image_env, opts_env, env):
    s = build(RunOptions(image="i", command=("sh",), env=opts_env, hostname="h"), {"Env": image_env})
    assert list(s.env) == env


def test_build_env_files_then_env_flags():
    opts = RunOptions(image="i", command=("sh",), env_files=("a.env", "b.env"), env=("C=flag",))
    s = build(opts, {"Env": ["PATH=/bin"]},
              env_files={"a.env": "A=1\nC=file\n", "b.env": "# b\nA=2\nLANG\n"})
    assert list(s.env) == [f"HOSTNAME={CID[:12]}", "PATH=/bin", "A=2", "C=flag", "LANG=C.UTF-8"]


@pytest.mark.parametrize("hostname, expected", [(None, CID[:12]), ("", CID[:12]), ("box", "box")])
def test_build_hostname(hostname, expected):
    s = build(RunOptions(image="i", command=("sh",), hostname=hostname))
    assert s.hostname == expected
    assert f"HOSTNAME={expected}" in s.env


@pytest.mark.parametrize("image_workdir, opt_workdir, workdir", [
    (None, None, "/"),
    ("", None, "/"),
    ("/app", None, "/app"),
    ("/app", "/srv", "/srv"),
    (None, "/a/b/../c/", "/a/c"),
    ("/app/", None, "/app"),
])
def test_build_workdir(image_workdir, opt_workdir, workdir):
    s = build(RunOptions(image="i", command=("sh",), workdir=opt_workdir), {"WorkingDir": image_workdir})
    assert s.workdir == workdir


@pytest.mark.parametrize("image_workdir, opt_workdir", [(None, "rel"), (None, ""), ("app", None)])
def test_build_relative_workdir_rejected(image_workdir, opt_workdir):
    with pytest.raises(UsageError, match="absolute path"):
        build(RunOptions(image="i", command=("sh",), workdir=opt_workdir), {"WorkingDir": image_workdir})


@pytest.mark.parametrize("network, stored", [
    ("host", "host"), ("none", "none"), ("slirp4netns", "slirp4netns"), ("bridge", "slirp4netns"),
    ("default", "slirp4netns"), ("slirp4netns:allow_host_loopback=true", "slirp4netns:allow_host_loopback=true"),
    ("container:" + "c" * 64, "container:" + "c" * 64),
])
def test_build_network_supported(network, stored):
    assert build(RunOptions(image="i", command=("sh",), network=network)).network == stored


@pytest.mark.parametrize("network, message", [
    ("macvlan", "not found"), ("slirp4netns:bogus=1", "unknown slirp4netns option"),
    ("slirp4netns:mtu=big", "mtu"), ("slirp4netns:port_handler=rootlesskit", "port_handler"),
    ("container:", "needs a container"), ("host:x", "takes no options"),
])
def test_build_network_refused(network, message):
    with pytest.raises(UsageError, match=message):
        build(RunOptions(image="i", command=("sh",), network=network))


@pytest.mark.parametrize("flags, message", [
    (dict(publish=("80",)), "port publishing"), (dict(publish_all=True), "port publishing"),
    (dict(links=("a:b",)), "links"), (dict(dns=("1.1.1.1",)), "DNS"), (dict(add_hosts=("h:1.2.3.4",)), "add-host"),
    (dict(hostname="h"), "hostname"), (dict(expose=("80",)), "expose"),
])
def test_build_container_network_conflicts(flags, message):
    with pytest.raises(UsageError, match=f"conflicting options: .*{message}"):
        build(RunOptions(image="i", command=("sh",), network="container:" + "c" * 64, **flags))


def test_build_host_network_refuses_links():
    with pytest.raises(UsageError, match="host type networking can't be used with links"):
        build(RunOptions(image="i", command=("sh",), network="host", links=("a:b",)))


def test_build_network_fields():
    s = build(RunOptions(image="i", command=("sh",), publish=("127.0.0.1:8080:80", "53/udp"), expose=("9000-9001",),
                         links=("db", "cache:c"), add_hosts=("h:10.1.1.1",), dns=("9.9.9.9",), dns_search=("lan",),
                         dns_options=("ndots:2",), mac_address="02:42:AC:11:00:02"),
              {"ExposedPorts": {"443/tcp": {}}})
    assert s.ports == (("127.0.0.1", 8080, 8080, 80, "tcp"), ("", 0, 0, 53, "udp"))
    assert s.exposed == ("53/udp", "80/tcp", "443/tcp", "9000/tcp", "9001/tcp")
    assert s.links == (("db", "db"), ("cache", "c"))
    assert s.add_hosts == (("h", "10.1.1.1"),)
    assert (s.dns, s.dns_search, s.dns_options, s.mac) == (("9.9.9.9",), ("lan",), ("ndots:2",), "02:42:ac:11:00:02")
    again = ContainerSpec.from_json(json.loads(json.dumps(s.to_json())))
    assert again == s


@pytest.mark.parametrize("image_user, opt_user, user", [
    (None, None, ""),
    ("app", None, "app"),
    ("app", "0", "0"),
    ("app", "", ""),  # an explicit empty -u overrides the image's user
    (None, "1000:100", "1000:100"),
])
def test_build_user(image_user, opt_user, user):
    s = build(RunOptions(image="i", command=("sh",), user=opt_user), {"User": image_user})
    assert s.user == user


def test_build_labels_flags_and_stop_signal():
    cfg = {"Labels": {"a": "1", "b": "2"}, "StopSignal": "SIGQUIT", "Entrypoint": ["/init"], "Cmd": ["x"]}
    opts = RunOptions(image="i", init=True, rm=True, interactive=True, tty=True)
    s = build(opts, cfg)
    assert s.labels == {"a": "1", "b": "2"}
    assert s.stop_signal == "SIGQUIT"
    assert s.argv == ("/init", "x")
    assert (s.init, s.tty, s.interactive, s.remove) == (True, True, True, True)


def test_build_without_config_section():
    s = spec.build(RunOptions(image="i", command=("true",)), CID, "n", IMAGE, {}, "i", {}, {})
    assert s.argv == ("true",) and s.workdir == "/"


def test_spec_json_round_trip():
    cfg = {"Env": ["A=1"], "Labels": {"k": "v"}, "User": "app", "WorkingDir": "/w"}
    s = build(RunOptions(image="i", command=("sh", "-c", "echo hi"), tty=True), cfg)
    data = s.to_json()
    assert isinstance(data["argv"], list) and isinstance(data["layers"], list)
    back = ContainerSpec.from_json(json.loads(json.dumps(data)))
    assert back == s
    assert isinstance(back.argv, tuple) and isinstance(back.env, tuple)


def test_spec_from_json_ignores_unknown_keys():
    data = build(RunOptions(image="i", command=("sh",))).to_json()
    data["from_the_future"] = 1
    assert ContainerSpec.from_json(data).argv == ("sh",)


def test_records_take_their_fields_by_name_only():
    """A slip in the order of same-typed flags cannot go unnoticed: the records refuse positions."""
    import copy
    import pickle
    with pytest.raises(TypeError, match="by name"):
        RunOptions("busybox", ("sh",))
    with pytest.raises(TypeError, match="by name"):
        ContainerSpec(CID, "n", "i", "img", (), ("sh",), (), "", "/", "h")
    opts = RunOptions(image="i", tty=True)
    s = build(RunOptions(image="i", command=("sh",)))
    for value in (opts, s):
        assert pickle.loads(pickle.dumps(value)) == value and copy.deepcopy(value) == value
        assert type(copy.copy(value)) is type(value)


# The keys of a stored container.json's "spec", in order: a record written by this version must
# keep its shape (and older ones, with fewer keys, still load).
SPEC_KEYS = ["id", "name", "image_id", "image_name", "layers", "argv", "env", "user", "workdir", "hostname",
             "network", "init", "tty", "interactive", "remove", "labels", "stop_signal", "entrypoint", "ports",
             "publish_all", "exposed", "links", "add_hosts", "dns", "dns_search", "dns_options", "mac", "log",
             "mounts", "read_only", "no_new_privs", "limits", "caps", "privileged", "devices", "seccomp",
             "root_emulation", "userns", "networks", "group_add", "stop_timeout", "asked"]


def test_spec_record_shape_and_older_records():
    data = build(RunOptions(image="i", command=("sh",))).to_json()
    assert list(data) == SPEC_KEYS
    old = {k: data[k] for k in SPEC_KEYS[:SPEC_KEYS.index("log")]}  # a record from before logs and mounts
    back = ContainerSpec.from_json(json.loads(json.dumps(old)))
    assert back.log is None and back.mounts == () and back.seccomp is True and back.root_emulation == "auto"
    assert back.networks == () and back.userns == "" and back.argv == ("sh",)


def test_run_flags_reach_their_fields():
    """Every flag of ``run`` lands in its own RunOptions field (distinct values, so a swap shows)."""
    from rootless.cli import (
        commands,  # noqa: F401 - registers the commands
        fast,
    )
    from rootless.cli.commands.containers import _run_options
    argv = ["run", "--rm", "-i", "-t", "-e", "E=1", "--env-file", "ef", "-w", "/wd", "-u", "usr",
            "--entrypoint", "ep", "-h", "hn", "--name", "nm", "--network", "none", "--network-alias", "al",
            "-p", "8080:80", "-P", "--expose", "9000", "--link", "lk", "--add-host", "ah:1.2.3.4",
            "--dns", "9.9.9.9", "--dns-search", "ds", "--dns-option", "do", "--mac-address", "02:00:00:00:00:01",
            "--log-driver", "none", "--log-opt", "lo=1", "-v", "/vol", "--mount", "type=tmpfs,dst=/m",
            "--tmpfs", "/tm", "--volumes-from", "vf", "--read-only", "-m", "64m", "--pids-limit", "7",
            "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--privileged", "--security-opt", "so",
            "--device", "/dev/null", "--userns", "keep-id", "-l", "k=v", "--init", "--pull", "never",
            "--tls-verify", "false", "--platform", "linux/amd64", "-d", "img", "cmd", "arg"]
    parsed = fast.parse(argv)
    assert parsed is not None
    kw = dict(parsed.kwargs)
    del kw["detach"], kw["detach_keys"], kw["attach"], kw["sig_proxy"]
    o = _run_options(**kw)
    assert o == RunOptions(
        image="img", command=("cmd", "arg"), entrypoint="ep", env=("E=1",), env_files=("ef",), workdir="/wd",
        user="usr", hostname="hn", name="nm", network="none", init=True, rm=True, interactive=True, tty=True,
        publish=("8080:80",), publish_all=True, expose=("9000",), links=("lk",), add_hosts=("ah:1.2.3.4",),
        dns=("9.9.9.9",), dns_search=("ds",), dns_options=("do",), mac_address="02:00:00:00:00:01",
        pull="never", tls_verify=False, platform="linux/amd64", log_driver="none", log_opts=("lo=1",),
        volumes=("/vol",), mounts=("type=tmpfs,dst=/m",), tmpfs=("/tm",), volumes_from=("vf",), read_only=True,
        limits=o.limits, cap_add=("NET_ADMIN",), cap_drop=("CHOWN",), privileged=True, security_opts=("so",),
        devices=("/dev/null",), userns="keep-id", labels={"k": "v"}, network_aliases=("al",))
    from rootless.runtime import cgroups
    assert o.limits == cgroups.parse(cgroups.LimitOptions(memory="64m", pids_limit="7")) and o.limits


def test_the_apis_env_is_kept_as_sent():
    """Config.Env: a name without a value stays so (Docker keeps it), never looked up in the
    environment of the service."""
    s = build(RunOptions(image="i", command=("sh",), hostname="h", raw_env=("LANG", "Other=one", "Blank=")))
    assert list(s.env) == ["HOSTNAME=h", f"PATH={DEFAULT_PATH}", "LANG", "Other=one", "Blank="]
    with pytest.raises(UsageError):
        build(RunOptions(image="i", command=("sh",), raw_env=("=x",)))


def test_build_keeps_what_inspect_shows_as_asked():
    s = build(RunOptions(image="i", command=("sh",), volumes_from=("src:ro",), tmpfs=("/t:size=1m", "/u"),
                         log_opts=("max-file=3",), group_add=("users", "1000"), stop_timeout=3,
                         asked={"Isolation": "default"}))
    assert s.asked == {"Isolation": "default", "VolumesFrom": ["src:ro"], "Tmpfs": {"/t": "size=1m", "/u": ""},
                       "LogConfig": {"Type": "json-file", "Config": {"max-file": "3"}}}
    assert (s.group_add, s.stop_timeout) == (("users", "1000"), 3)
    assert ContainerSpec.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_uts_mode_host_takes_the_hosts_name():
    import os
    s = build(RunOptions(image="i", command=("sh",), asked={"UTSMode": "host"}))
    assert s.hostname == os.uname().nodename and f"HOSTNAME={os.uname().nodename}" in s.env
    with pytest.raises(UsageError, match="hostname and the UTS mode"):
        build(RunOptions(image="i", command=("sh",), hostname="h", asked={"UTSMode": "host"}))


def test_group_add_and_stop_timeout_flags_reach_their_fields():
    from rootless.cli import (
        commands,  # noqa: F401 - registers the commands
        fast,
    )
    from rootless.cli.commands.containers import _run_options
    parsed = fast.parse(["create", "--group-add", "users", "--group-add", "1000", "--stop-timeout", "3", "img"])
    assert parsed is not None
    o = _run_options(**dict(parsed.kwargs))
    assert (o.group_add, o.stop_timeout) == (("users", "1000"), 3)


def test_process_flags_reach_their_fields(tmp_path):
    from rootless.cli import (
        commands,  # noqa: F401 - registers the commands
        fast,
    )
    from rootless.cli.commands.containers import _run_options
    labels = tmp_path / "labels"
    labels.write_text("a=1\n")
    argv = ["run", "--stop-signal", "QUIT", "--ulimit", "nofile=1:2", "--sysctl", "net.core.somaxconn=9",
            "--oom-score-adj", "7", "--shm-size", "1m", "--domainname", "d.org", "--cidfile", "cf",
            "--label-file", str(labels), "-l", "b=2", "-a", "stdout", "img"]
    kw = dict(fast.parse(argv).kwargs)
    assert kw.pop("attach") == ["stdout"]
    del kw["detach"], kw["detach_keys"], kw["sig_proxy"]
    o = _run_options(**kw)
    assert (o.stop_signal, o.ulimits, o.sysctls, o.oom_score_adj, o.shm_size, o.domainname, o.cidfile, o.labels) == (
        "QUIT", ({"Name": "nofile", "Soft": 1, "Hard": 2},), {"net.core.somaxconn": "9"}, 7, "1m", "d.org", "cf",
        {"a": "1", "b": "2"})
    assert o.asked == {"ContainerIDFile": "cf"}
