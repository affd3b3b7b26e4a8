"""The fast parser must read a command line exactly as the typer application does, or decline."""

from __future__ import annotations

import pytest

from rootless.cli import (
    commands,  # noqa: F401 - registers the commands
    fast,
    typer_app,
)
from rootless.cli.params import COMMANDS


def typer_parse(argv: list[str]):
    import typer
    seen = {}

    def invoke(cmd, kwargs):
        seen["path"], seen["kwargs"] = cmd.path, kwargs

    def on_globals(root, debug):
        seen["root"], seen["debug"] = root, debug

    app = typer_app.build(invoke, on_globals)
    typer.main.get_command(app).main(args=argv, prog_name="rootless", standalone_mode=False)
    return seen


def norm(kwargs: dict) -> dict:
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in kwargs.items()}


SAME = [
    ["images"], ["images", "-q"], ["images", "--quiet"],
    ["--root", "/x", "images", "-q"], ["--root=/x", "--debug", "images"],
    ["load", "-i", "a.tar"], ["load", "--input=a.tar"], ["load", "-ia.tar"],
    ["import", "f.tar"], ["import", "f.tar", "name:tag"],
    ["build", "."], ["build", "-t", "a:1", "-t", "b", "--build-arg", "X=1", "--build-arg", "Y", "-f", "D", "ctx"],
    ["build", "-q", "--no-cache", "--pull", "--target", "s1", "--label", "k=v", "--network", "none", "-"],
    ["build", "--platform", "linux/amd64", "-f", "-", "."], ["builder", "prune", "-f"],
    ["update", "-m", "64m", "--pids-limit", "5", "c1", "c2"], ["stats", "--no-stream", "-a"], ["stats", "c1"],
    ["run", "--memory", "64m", "--cpus=0.5", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--privileged",
     "--security-opt", "no-new-privileges", "--device", "/dev/fuse", "busybox", "true"],
    ["rmi", "a", "b", "-f"], ["rmi", "-f", "a"],
    ["run", "busybox"], ["run", "--rm", "busybox", "true"],
    ["run", "-it", "--rm", "busybox", "sh", "-c", "echo hi"],
    ["run", "-e", "A=1", "-eB=2", "--env", "C", "--env=D=4", "busybox", "env"],
    ["run", "--env-file", "x", "--env-file=y", "-w", "/w", "-u", "app:users", "busybox"],
    ["run", "--entrypoint", "", "busybox", "ls", "-la", "--rm"],
    ["run", "--name", "n", "-h", "host", "--network", "host", "--init", "busybox", "--", "x"],
    ["run", "--net=none", "-i", "busybox", "cat", "-"],
    ["run", "-ite", "K=V", "busybox"],
    ["run", "-d", "-p", "8080:80", "-p127.0.0.1::53/udp", "--publish=[::1]:9:9", "-P", "busybox"],
    ["run", "--network", "slirp4netns:allow_host_loopback=true", "--expose", "80", "--expose=90-91/udp", "busybox"],
    ["run", "--link", "db", "--link=cache:c", "--add-host", "h:1.2.3.4", "--dns", "9.9.9.9", "busybox"],
    ["run", "--dns-search", "lan", "--dns-option", "ndots:2", "--dns-opt=edns0", "--mac-address",
     "02:42:ac:11:00:02", "busybox"],
    ["create", "--net", "container:web", "-Pit", "busybox", "sh"],
    ["port", "web"], ["port", "web", "80/tcp"],
    ["pull", "-q", "--platform", "linux/arm64", "r:5000/a:b"], ["pull", "--tls-verify=false", "--creds", "u:p", "x"],
    ["push", "img", "r:5000/a:b"], ["tag", "a", "b:1"], ["login", "-u", "me", "--password-stdin", "r:5000"],
    ["logout", "r:5000"], ["images", "--digests", "-f", "dangling=true", "--format", "{{.ID}}"],
    ["history", "--no-trunc", "x"], ["save", "-o", "f.tar", "--format", "oci-archive", "a", "b"],
    ["image", "prune", "-a", "-f"], ["image", "ls", "-q"], ["image", "rm", "-f", "x"], ["system", "df"],
    ["run", "--pull", "always", "--tls-verify=false", "busybox"],
    ["run", "--ulimit", "nofile=1:2", "--ulimit=core=-1", "--sysctl", "net.core.somaxconn=9", "--oom-score-adj",
     "-5", "--shm-size=1g", "--domainname", "d", "--stop-signal", "QUIT", "--cidfile", "c", "--label-file", "l",
     "-l", "a=b", "busybox"],
    ["info"], ["info", "--format", "json"], ["info", "-f", "json"],
    ["unshare"], ["unshare", "rm", "-rf", "/x"],
    ["system", "reset", "-f"], ["version"],
    ["events"], ["events", "--since", "10m", "--until=0s", "-f", "type=container", "--filter", "event=die",
                 "--format", "{{json .}}"], ["events", "--format", "json", "--filter=label=a=b"],
    ["network", "create", "--label", "a=b", "--internal", "-d", "bridge", "-o", "k=v", "app"],
    ["network", "ls", "-q", "--filter", "name=a", "-f", "label=x"],
    ["network", "ls", "--format", "{{.Name}}", "--no-trunc"],
    ["network", "inspect", "a", "b", "-f", "{{.Id}}"], ["network", "rm", "a", "b"], ["network", "prune", "-f"],
    ["network", "connect", "--alias", "db", "--alias=d2", "app", "c1"], ["network", "disconnect", "-f", "app", "c1"],
    ["run", "--network", "app", "--network-alias", "web", "--net-alias=w2", "busybox"],
]


@pytest.mark.parametrize("argv", SAME, ids=[" ".join(a) or "(none)" for a in SAME])
def test_fast_parser_agrees_with_typer(argv):
    got = fast.parse(argv)
    assert got is not None, "the fast parser should handle this well-formed line"
    want = typer_parse(argv)
    assert got.command.path == want["path"]
    assert norm(got.kwargs) == norm(want["kwargs"])
    assert (got.root, got.debug) == (want.get("root"), want.get("debug"))


DECLINED = [
    [], ["--help"], ["run", "--help"], ["images", "--help"], ["nosuchcommand"], ["run"],
    ["run", "--bogus", "busybox"], ["run", "-e"], ["images", "repo", "extra"], ["run", "--rm=yes", "busybox"],
    ["system"], ["system", "nope"], ["rmi"], ["--root"], ["-x", "images"],
]


@pytest.mark.parametrize("argv", DECLINED, ids=[" ".join(a) or "(none)" for a in DECLINED])
def test_fast_parser_declines_what_typer_should_report(argv):
    assert fast.parse(argv) is None


def test_every_command_has_help_and_typer_builds():
    for path, cmd in COMMANDS.items():
        assert cmd.help, path
    typer_parse(["version"])


@pytest.mark.parametrize("argv, expected", [
    (["run", "--rm=false", "busybox"], {"rm": False}),
    (["run", "--rm=true", "--privileged=True", "--init=1", "busybox"], {"rm": True, "privileged": True, "init": True}),
    (["run", "-d=false", "-i=t", "busybox", "--rm=true"], {"detach": False, "interactive": True, "rm": False}),
    (["create", "--read-only=FALSE", "busybox"], {"read_only": False}),
])
def test_boolean_flags_take_a_value_after_equals_as_dockers_do(argv, expected):
    """Docker's flags are Go's pflag: ``--rm=false``, ``--privileged=true``, ``-d=false`` (a value
    after the image is the command's, untouched)."""
    parsed = fast.parse(argv)
    assert parsed is not None
    assert {k: parsed.kwargs[k] for k in expected} == expected
    if argv[-1] == "--rm=true":
        assert parsed.kwargs["command"] == ["--rm=true"]


def test_a_boolean_flag_with_a_value_that_is_not_one_is_left_to_typer_to_refuse():
    assert fast.parse(["run", "--rm=maybe", "busybox"]) is None
