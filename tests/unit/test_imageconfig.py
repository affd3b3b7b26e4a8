"""layers.imageconfig: ``-c`` changes, their effect on a config, the committed image config."""

from __future__ import annotations

import json

import pytest

from layers.imageconfig import (
    apply_changes,
    committed_config,
    container_config_from_spec,
    parse_change,
)
from rootless.base.errors import UsageError

SH = ["/bin/sh", "-c"]


@pytest.mark.parametrize("text, expected", [
    ('CMD ["a", "b"]', ("CMD", ["a", "b"])),
    ("CMD []", ("CMD", [])),
    ("CMD echo hi  there", ("CMD", SH + ["echo hi  there"])),
    ('cmd ["x"]', ("CMD", ["x"])),
    ('ENTRYPOINT ["/bin/app", "--flag"]', ("ENTRYPOINT", ["/bin/app", "--flag"])),
    ("entrypoint /bin/app -v", ("ENTRYPOINT", SH + ["/bin/app -v"])),
    ('ENV K=V K2="v 2"', ("ENV", {"K": "V", "K2": "v 2"})),
    ("ENV A=1 B= C='single q' D=a\\ b", ("ENV", {"A": "1", "B": "", "C": "single q", "D": "a b"})),
    ('ENV URL=http://x/?a=b E="say \\"hi\\""', ("ENV", {"URL": "http://x/?a=b", "E": 'say "hi"'})),
    ("ENV K V", ("ENV", {"K": "V"})),
    ("ENV K  a long   value", ("ENV", {"K": "a long   value"})),
    ('ENV K "quoted value"', ("ENV", {"K": "quoted value"})),
    ("\tENV\tK=V\t", ("ENV", {"K": "V"})),
    ("EXPOSE 80", ("EXPOSE", ["80/tcp"])),
    ("EXPOSE 80 53/udp 8000-8002", ("EXPOSE", ["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"])),
    ("EXPOSE 9/UDP 7-8/sctp", ("EXPOSE", ["9/udp", "7/sctp", "8/sctp"])),
    ('LABEL k=v "k 2"="v"', ("LABEL", {"k": "v", "k 2": "v"})),
    ('LABEL org.x.y="a b" z=1', ("LABEL", {"org.x.y": "a b", "z": "1"})),
    ("LABEL maintainer Some One", ("LABEL", {"maintainer": "Some One"})),
    ("USER nobody", ("USER", "nobody")),
    ("USER 1000:100", ("USER", "1000:100")),
    ('VOLUME ["/a", "/b"]', ("VOLUME", ["/a", "/b"])),
    ("VOLUME /a /b", ("VOLUME", ["/a", "/b"])),
    ("WORKDIR /x", ("WORKDIR", "/x")),
    ("WORKDIR rel/dir", ("WORKDIR", "rel/dir")),
    ('WORKDIR "/with space"', ("WORKDIR", "/with space")),
    ("STOPSIGNAL SIGTERM", ("STOPSIGNAL", "SIGTERM")),
    ("STOPSIGNAL 15", ("STOPSIGNAL", "15")),
    ("stopsignal kill", ("STOPSIGNAL", "SIGKILL")),
    ("STOPSIGNAL SIGRTMIN+3", ("STOPSIGNAL", "SIGRTMIN+3")),
])
def test_parse_change(text, expected):
    assert parse_change(text) == expected


@pytest.mark.parametrize("text, match", [
    ("", "empty change"),
    ("   ", "empty change"),
    ("RUN make", "RUN is not a valid change command; supported: CMD, ENTRYPOINT, ENV"),
    ("FROM scratch", "FROM is not a valid change command"),
    ("CMD", "CMD requires at least one argument"),
    ('CMD ["a", b]', r"CMD: malformed JSON array"),
    ("ENTRYPOINT ['a']", "ENTRYPOINT: malformed JSON array"),
    ('CMD ["a", 1]', "not a JSON array of strings"),
    ('CMD ["a"', "malformed JSON array"),
    ("VOLUME [/a]", "VOLUME: malformed JSON array"),
    ('VOLUME [""]', "VOLUME: empty path"),
    ("ENV K", "ENV K needs a value"),
    ("ENV K=V L", "can't find = in 'L'"),
    ("ENV =v", "ENV: empty name"),
    ('ENV K="open', "unterminated \" quote"),
    ("LABEL =x", "LABEL: empty name"),
    ("EXPOSE http", "EXPOSE: invalid port 'http'"),
    ("EXPOSE 80/tcpx", "invalid protocol 'tcpx'"),
    ("EXPOSE 0", "ports are 1-65535"),
    ("EXPOSE 70000", "ports are 1-65535"),
    ("EXPOSE 9-8", "invalid port range"),
    ("USER a b", "USER requires exactly one argument"),
    ("USER a:", "USER: invalid user"),
    ("USER :g", "USER: invalid user"),
    ("WORKDIR /a /b", "WORKDIR requires exactly one argument"),
    ("STOPSIGNAL SIGNOPE", "STOPSIGNAL: unknown signal 'SIGNOPE'"),
    ("STOPSIGNAL 0", "invalid signal number"),
    ("STOPSIGNAL 9999", "invalid signal number"),
])
def test_parse_change_errors(text, match):
    with pytest.raises(UsageError, match=match):
        parse_change(text)


def test_unknown_instruction_lists_all_supported():
    with pytest.raises(UsageError) as e:
        parse_change("HEALTHCHECK NONE")
    for name in ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL"):
        assert name in e.value.message
    assert "HEALTHCHECK" in e.value.message


BASE = {
    "Env": ["PATH=/usr/bin", "A=1"],
    "Cmd": ["sh"],
    "Entrypoint": None,
    "ExposedPorts": {"22/tcp": {}},
    "Labels": {"a": "1", "b": "2"},
    "Volumes": {"/data": {}},
    "WorkingDir": "/srv",
}


def test_apply_changes_returns_a_new_config_and_leaves_the_old_alone():
    before = json.loads(json.dumps(BASE))
    out = apply_changes(BASE, ["ENV A=2 B=3", "EXPOSE 80 53/udp", "LABEL b=two c=3", "VOLUME /logs",
                               "USER app:app", "STOPSIGNAL SIGINT"])
    assert BASE == before
    assert out is not BASE
    assert out["Env"] == ["PATH=/usr/bin", "A=2", "B=3"]
    assert out["ExposedPorts"] == {"22/tcp": {}, "80/tcp": {}, "53/udp": {}}
    assert out["Labels"] == {"a": "1", "b": "two", "c": "3"}
    assert out["Volumes"] == {"/data": {}, "/logs": {}}
    assert out["User"] == "app:app"
    assert out["StopSignal"] == "SIGINT"
    assert out["Cmd"] == ["sh"] and out["WorkingDir"] == "/srv"
    out["Labels"]["x"] = "y"
    assert "x" not in BASE["Labels"]


def test_apply_changes_to_an_empty_config():
    out = apply_changes({}, ['CMD ["/bin/sh"]', "ENV K=V", "EXPOSE 80", "LABEL l=1", "VOLUME /v",
                             "WORKDIR app"])
    assert out == {"Cmd": ["/bin/sh"], "Env": ["K=V"], "ExposedPorts": {"80/tcp": {}}, "Labels": {"l": "1"},
                   "Volumes": {"/v": {}}, "WorkingDir": "/app"}
    assert apply_changes({}, []) == {}


def test_entrypoint_clears_the_inherited_cmd_unless_a_cmd_is_set_too():
    assert "Cmd" not in apply_changes(BASE, ['ENTRYPOINT ["/app"]'])
    assert apply_changes(BASE, ['ENTRYPOINT ["/app"]'])["Entrypoint"] == ["/app"]
    both = apply_changes(BASE, ['CMD ["--help"]', 'ENTRYPOINT ["/app"]'])
    assert both["Cmd"] == ["--help"] and both["Entrypoint"] == ["/app"]
    after = apply_changes(BASE, ['ENTRYPOINT ["/app"]', 'CMD ["-v"]'])
    assert after["Cmd"] == ["-v"] and after["Entrypoint"] == ["/app"]


@pytest.mark.parametrize("changes, workdir", [
    (["WORKDIR /x"], "/x"),
    (["WORKDIR rel"], "/srv/rel"),
    (["WORKDIR a", "WORKDIR b/../c"], "/srv/a/c"),
    (["WORKDIR /x/", "WORKDIR .."], "/"),
    (["WORKDIR //x//y/"], "/x/y"),
])
def test_workdir_relative_joins_the_previous(changes, workdir):
    assert apply_changes(BASE, changes)["WorkingDir"] == workdir


def test_env_replaces_in_place_and_later_changes_win():
    out = apply_changes({"Env": ["A=1", "B=2", "NOEQ"]}, ["ENV B=20", "ENV C 3", "ENV A=10 C=30"])
    assert out["Env"] == ["A=10", "B=20", "NOEQ", "C=30"]


def test_a_bad_change_changes_nothing():
    with pytest.raises(UsageError):
        apply_changes(BASE, ["ENV A=9", "RUN x"])


BASE_IMAGE = {
    "architecture": "amd64", "os": "linux", "variant": "v8", "created": "2020-01-01T00:00:00Z",
    "author": "base author", "config": {"Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]},
    "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "import"}],
}
NEW = "sha256:" + "c" * 64


def test_committed_config_shape():
    out = committed_config(BASE_IMAGE, {"Cmd": ["run"]}, NEW, author="Me <me@x>", comment="fixed it",
                           created="2024-05-01T10:00:00.000000000Z", created_by="rootless commit web")
    assert out == {
        "architecture": "amd64", "os": "linux", "variant": "v8",
        "created": "2024-05-01T10:00:00.000000000Z", "author": "Me <me@x>",
        "config": {"Cmd": ["run"]},
        "rootfs": {"type": "layers", "diff_ids": BASE_IMAGE["rootfs"]["diff_ids"] + [NEW]},
        "history": [
            {"created": "2020-01-01T00:00:00Z", "created_by": "import"},
            {"created": "2024-05-01T10:00:00.000000000Z", "created_by": "rootless commit web",
             "author": "Me <me@x>", "comment": "fixed it"},
        ],
    }
    assert len(BASE_IMAGE["rootfs"]["diff_ids"]) == 2 and len(BASE_IMAGE["history"]) == 1


def test_committed_config_without_author_or_comment_and_pure():
    cfg = {"Env": ["A=1"]}
    out = committed_config(BASE_IMAGE, cfg, NEW, author=None, comment=None, created="T", created_by="by")
    assert "author" not in out and out["history"][-1] == {"created": "T", "created_by": "by"}
    assert out["config"] == cfg and out["config"] is not cfg
    assert committed_config(BASE_IMAGE, cfg, NEW, author=None, comment=None, created="T", created_by="by") == out
    bare = committed_config({"architecture": "arm64", "os": "linux"}, {}, NEW, author=None, comment=None,
                            created="T", created_by="by")
    assert bare["rootfs"]["diff_ids"] == [NEW] and len(bare["history"]) == 1
    json.dumps(out)


def _spec(**kw) -> dict:
    spec = {"id": "c" * 64, "name": "web", "image_id": "sha256:" + "d" * 64, "image_name": "img",
            "layers": [], "argv": ["sh"], "env": ["HOSTNAME=abc", "PATH=/bin", "A=1"], "user": "",
            "workdir": "/", "hostname": "abc", "network": "none", "init": False, "tty": False,
            "interactive": False, "remove": False, "labels": {}, "stop_signal": "SIGTERM"}
    spec.update(kw)
    return spec


def test_config_from_spec_keeps_the_entrypoint_when_argv_starts_with_it():
    base = {"Entrypoint": ["/app", "--serve"], "Cmd": ["--port", "80"], "ExposedPorts": {"80/tcp": {}},
            "Volumes": {"/data": {}}, "Healthcheck": {"Test": ["NONE"]}}
    out = container_config_from_spec(_spec(argv=["/app", "--serve", "--port", "81"]), base)
    assert out["Entrypoint"] == ["/app", "--serve"] and out["Cmd"] == ["--port", "81"]
    assert out["ExposedPorts"] == {"80/tcp": {}} and out["Volumes"] == {"/data": {}}
    assert out["Healthcheck"] == {"Test": ["NONE"]}
    assert out["Env"] == ["PATH=/bin", "A=1"]
    assert base["Cmd"] == ["--port", "80"]  # not modified
    only_ep = container_config_from_spec(_spec(argv=["/app", "--serve"]), base)
    assert only_ep["Entrypoint"] == ["/app", "--serve"] and "Cmd" not in only_ep


def test_config_from_spec_drops_an_entrypoint_the_container_did_not_use():
    base = {"Entrypoint": ["/app"], "Cmd": ["x"]}
    out = container_config_from_spec(_spec(argv=["/bin/sh", "-c", "true"]), base)
    assert "Entrypoint" not in out and out["Cmd"] == ["/bin/sh", "-c", "true"]


def test_config_from_spec_user_workdir_labels_stop_signal():
    out = container_config_from_spec(
        _spec(user="1000:1000", workdir="/srv/app", labels={"a": "1"}, stop_signal="SIGINT"), {"Cmd": ["sh"]})
    assert out == {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "User": "1000:1000", "WorkingDir": "/srv/app",
                   "Labels": {"a": "1"}, "StopSignal": "SIGINT"}
    plain = container_config_from_spec(_spec(), {"Cmd": ["sh"]})
    assert plain == {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"]}  # defaults are not written out
    kept = container_config_from_spec(_spec(), {"WorkingDir": "/", "StopSignal": "SIGTERM"})
    assert kept["WorkingDir"] == "/" and kept["StopSignal"] == "SIGTERM"


def test_config_from_spec_accepts_a_whole_image_config():
    whole = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
             "config": {"Entrypoint": ["/app"], "ExposedPorts": {"1/tcp": {}}}}
    out = container_config_from_spec(_spec(argv=["/app", "x"]), whole)
    assert out["Entrypoint"] == ["/app"] and out["Cmd"] == ["x"] and out["ExposedPorts"] == {"1/tcp": {}}


def test_spec_json_round_trip_through_changes():
    from rootless.runtime.spec import ContainerSpec
    spec = ContainerSpec(id="c" * 64, name="n", image_id="i", image_name="img", layers=("sha256:x",),
                         argv=("sleep", "1"), env=("HOSTNAME=h", "PATH=/bin"), user="", workdir="/w",
                         hostname="h", labels={"k": "v"})
    cfg = container_config_from_spec(spec.to_json(), {})
    out = apply_changes(cfg, ['CMD ["sleep", "2"]', "LABEL k=w"])
    assert out == {"Cmd": ["sleep", "2"], "Env": ["PATH=/bin"], "WorkingDir": "/w", "Labels": {"k": "w"}}


def test_onbuild_triggers_are_appended_in_order():
    assert parse_change("onbuild run make") == ("ONBUILD", "RUN make")
    out = apply_changes({"OnBuild": ["COPY . /src"]}, ["ONBUILD RUN make", "ONBUILD ENV A=1"])
    assert out["OnBuild"] == ["COPY . /src", "RUN make", "ENV A=1"]
    for trigger in ("ONBUILD ONBUILD RUN x", "ONBUILD FROM busybox", "ONBUILD maintainer me"):
        with pytest.raises(UsageError, match="isn't allowed as an ONBUILD trigger"):
            parse_change(trigger)
