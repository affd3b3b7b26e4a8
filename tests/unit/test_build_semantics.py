"""What a Dockerfile's instructions do to the image (layers.build.Builder), against Docker's
documented rules, with a fake executor: stages, ARG scoping, substitution, each instruction's
effect on the image config, RUN steps, the build cache and the history."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json

import pytest

from layers import dockerfile
from layers.build import Builder, BuildOptions, Executor
from layers.buildctx import BuildContext
from layers.dockerfile import DockerfileError

HOST = ("linux", "amd64", "")
_LAYER_IDS = itertools.count(1)  # unique across builds, so a cached layer is recognisable

BASES = {
    "alpine": {"architecture": "amd64", "os": "linux",
               "config": {"Env": ["PATH=/usr/bin:/bin", "HOME=/root"], "Cmd": ["/bin/sh"],
                          "Labels": {"base": "yes", "over": "base"}},
               "history": [{"created": "2000-01-01T00:00:00Z", "created_by": "ADD rootfs"}]},
    "trigger-base": {"architecture": "amd64", "os": "linux",
                     "config": {"Env": ["PATH=/bin"],
                                "OnBuild": ["ENV FROM_TRIGGER=yes", "RUN echo trigger"]},
                     "history": [{"created": "2000-01-01T00:00:00Z", "created_by": "ADD rootfs"}]},
    "imported": {"architecture": "amd64", "os": "linux", "config": {},  # `import`'s: no Env at all
                 "history": [{"created": "2000-01-01T00:00:00Z", "created_by": "ADD rootfs"}]},
}


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class FakeExecutor(Executor):
    """Records what the builder asks; every run/files call makes a new fake layer."""

    def __init__(self, clock_start: int = 0):
        self.said: list[str] = []
        self.bases: list[str] = []
        self.platforms: list[str | None] = []
        self.runs: list[dict] = []
        self.files_ops: list[list[dict]] = []
        self.clock = itertools.count(clock_start)

    def say(self, text):
        self.said.append(text)

    def base(self, name, platform, pull):
        self.bases.append(name)
        self.platforms.append(platform)
        config = copy.deepcopy(BASES.get(name, BASES["alpine"]))
        d = _digest("layer of " + name)
        return _digest(name), config, [{"diff_id": d, "blob": d, "media_type": "tar", "size": 0}]

    def _layer(self):
        d = f"sha256:{next(_LAYER_IDS):064x}"
        return {"diff_id": d, "blob": d, "media_type": "application/vnd.oci.image.layer.v1.tar", "size": 0}

    def run(self, stage, step):
        self.runs.append(step)
        return self._layer()

    def files(self, stage, ops):
        self.files_ops.append(ops)
        return self._layer()

    def fetch(self, url, checksum):
        raise AssertionError("no URL is fetched in these tests")

    def now(self):
        n = next(self.clock)
        return f"2024-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"

    # conveniences
    @property
    def calls(self) -> int:
        return len(self.runs) + len(self.files_ops)

    def scripts(self) -> list[str]:
        return [r["argv"][-1] for r in self.runs]


class FakeStore:
    def has_blob(self, blob):
        return True

    def layer_present(self, diff_id):
        return True


class Build:
    """One build: ``image`` (the config), ``layers`` and the executor ``ex``."""

    def __init__(self, tmp_path, text, files=None, ex=None, **opts):
        ctxdir = tmp_path / "ctx"
        ctxdir.mkdir(exist_ok=True)
        for rel, content in (files or {}).items():
            (ctxdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (ctxdir / rel).write_text(content)
        self.ex = ex or FakeExecutor()
        self.df = dockerfile.parse(text)
        builder = Builder(self.df, BuildContext(str(ctxdir)), BuildOptions(**opts), self.ex, FakeStore(),
                          str(tmp_path / "cache"), HOST)
        self.image, self.layers = builder.build()

    @property
    def config(self) -> dict:
        return self.image["config"]

    def env(self) -> dict:
        return dict(e.split("=", 1) for e in self.config.get("Env") or [])

    def run_env(self, n: int = -1) -> dict:
        return dict(e.split("=", 1) for e in self.ex.runs[n]["env"])


def build(tmp_path, text, **kw) -> Build:
    return Build(tmp_path, text, **kw)


# ---- ENV ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lines, expected", [
    ("ENV A=1 B=2", {"A": "1", "B": "2"}),
    ("ENV A 1 2", {"A": "1 2"}),  # the legacy form: the rest of the line
    ('ENV A="x y" B=z\\ w', {"A": "x y", "B": "z w"}),
    ("ENV A=1\nENV B=$A-${A}", {"A": "1", "B": "1-1"}),
    ("ENV A=1\nENV A=2", {"A": "2"}),
    ("ENV HOME=/home/me", {"HOME": "/home/me"}),  # the base's value overridden
    ("ENV A='$HOME'", {"A": "$HOME"}),
    ("ENV A=\"$HOME\"", {"A": "/root"}),
    ("ENV A=\\$HOME", {"A": "$HOME"}),
    ("ENV A=", {"A": ""}),
])
def test_env(tmp_path, lines, expected):
    b = build(tmp_path, "FROM alpine\n" + lines + "\n")
    env = b.env()
    for k, v in expected.items():
        assert env[k] == v
    assert env["PATH"] == "/usr/bin:/bin"
    assert len(b.config["Env"]) == len(env)  # one entry per name


def test_env_new_names_are_appended_in_order(tmp_path):
    b = build(tmp_path, "FROM alpine\nENV Z=1 A=2\nENV M=3\n")
    assert b.config["Env"] == ["PATH=/usr/bin:/bin", "HOME=/root", "Z=1", "A=2", "M=3"]


def test_env_override_keeps_its_position(tmp_path):
    b = build(tmp_path, "FROM alpine\nENV PATH=/x\n")
    assert b.config["Env"] == ["PATH=/x", "HOME=/root"]


@pytest.mark.parametrize("base", ["imported", "scratch"])
def test_a_base_without_path_starts_from_dockers_default_path(tmp_path, base):
    """Docker's builders give a stage whose base sets no PATH the default one: ``$PATH`` means it,
    the RUN steps and the image have it."""
    default = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    b = build(tmp_path, f"FROM {base}\nENV PATH=/x:$PATH\n")
    assert b.config["Env"] == [f"PATH=/x:{default}"]
    b = build(tmp_path, "FROM imported\nRUN true\n")
    assert b.config["Env"] == [f"PATH={default}"] and b.run_env()["PATH"] == default


def test_env_same_instruction_sees_previous_values(tmp_path):
    b = build(tmp_path, "FROM alpine\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert (b.env()["abc"], b.env()["def"], b.env()["ghi"]) == ("bye", "hello", "bye")


# ---- LABEL, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER ------------------------------------

@pytest.mark.parametrize("lines, expected", [
    ('LABEL a=b "c d"="e f"', {"a": "b", "c d": "e f"}),
    ("LABEL over=mine", {"over": "mine"}),
    ("LABEL multi=\"one \\\ntwo\"", {"multi": "one two"}),
    ("ENV V=1.0\nLABEL version=$V v2=${V}-x", {"version": "1.0", "v2": "1.0-x"}),
    ("LABEL a=1\nLABEL a=2", {"a": "2"}),
    ("LABEL 'q'='$NOPE'", {"q": "$NOPE"}),
])
def test_label(tmp_path, lines, expected):
    b = build(tmp_path, "FROM alpine\n" + lines + "\n")
    labels = b.config["Labels"]
    assert labels["base"] == "yes"  # inherited
    for k, v in expected.items():
        assert labels[k] == v


def test_build_option_labels_win(tmp_path):
    b = build(tmp_path, "FROM alpine\nLABEL a=file\n", labels={"a": "cli", "b": "cli"})
    assert b.config["Labels"]["a"] == "cli" and b.config["Labels"]["b"] == "cli"


@pytest.mark.parametrize("line, expected", [
    ("EXPOSE 80", {"80/tcp"}),
    ("EXPOSE 80/tcp 53/udp 9/sctp", {"80/tcp", "53/udp", "9/sctp"}),
    ("EXPOSE 53/UDP", {"53/udp"}),
    ("EXPOSE 8000-8002", {"8000/tcp", "8001/tcp", "8002/tcp"}),
    ("EXPOSE 7000-7001/udp", {"7000/udp", "7001/udp"}),
    ("EXPOSE 80 80/tcp", {"80/tcp"}),
    ("ENV P=8080\nEXPOSE $P ${P}/udp", {"8080/tcp", "8080/udp"}),
])
def test_expose(tmp_path, line, expected):
    assert set(build(tmp_path, "FROM alpine\n" + line + "\n").config["ExposedPorts"]) == expected


@pytest.mark.parametrize("line", ["EXPOSE 80/xyz", "EXPOSE 0", "EXPOSE 70000", "EXPOSE http",
                                  "EXPOSE 90-80"])
def test_bad_expose(tmp_path, line):
    with pytest.raises(DockerfileError) as e:
        build(tmp_path, "FROM alpine\n" + line + "\n")
    assert e.value.message.startswith("Dockerfile:2: ")


@pytest.mark.parametrize("lines, expected", [
    ("VOLUME /data", {"/data"}),
    ("VOLUME /a /b", {"/a", "/b"}),
    ('VOLUME ["/c", "/d e"]', {"/c", "/d e"}),
    ("ENV D=/var/x\nVOLUME $D", {"/var/x"}),
    ("VOLUME /a\nVOLUME /b", {"/a", "/b"}),
])
def test_volume(tmp_path, lines, expected):
    assert set(build(tmp_path, "FROM alpine\n" + lines + "\n").config["Volumes"]) == expected


@pytest.mark.parametrize("lines, user", [
    ("USER app", "app"),
    ("USER 1000:1000", "1000:1000"),
    ("ENV U=nobody\nUSER $U", "nobody"),
    ("USER a\nUSER b", "b"),
])
def test_user(tmp_path, lines, user):
    b = build(tmp_path, "FROM alpine\n" + lines + "\nRUN id\n")
    assert b.config["User"] == user
    assert b.ex.runs[-1]["user"] == user


@pytest.mark.parametrize("lines, workdir", [
    ("WORKDIR /a", "/a"),
    ("WORKDIR a", "/a"),
    ("WORKDIR /a\nWORKDIR b\nWORKDIR c", "/a/b/c"),
    ("WORKDIR /a\nWORKDIR ../b", "/b"),
    ("WORKDIR /a\nWORKDIR /z", "/z"),
    ("WORKDIR /a/\nWORKDIR ./b/", "/a/b"),
    ("ENV DIRPATH=/path\nWORKDIR $DIRPATH/$DIRNAME", "/path"),
    ("ENV D=x\nWORKDIR /${D}\nWORKDIR ${NOPE:-y}", "/x/y"),
])
def test_workdir(tmp_path, lines, workdir):
    b = build(tmp_path, "FROM alpine\n" + lines + "\nRUN pwd\n")
    assert b.config["WorkingDir"] == workdir
    assert b.ex.runs[-1]["workdir"] == workdir


@pytest.mark.parametrize("lines, signal", [
    ("STOPSIGNAL SIGKILL", "SIGKILL"),
    ("STOPSIGNAL 9", "9"),
    ("STOPSIGNAL SIGRTMIN+3", "SIGRTMIN+3"),
    ("ENV S=SIGQUIT\nSTOPSIGNAL $S", "SIGQUIT"),
])
def test_stopsignal(tmp_path, lines, signal):
    assert build(tmp_path, "FROM alpine\n" + lines + "\n").config["StopSignal"] == signal


@pytest.mark.parametrize("line", ["STOPSIGNAL SIGFOO", "STOPSIGNAL 0", "STOPSIGNAL 99"])
def test_bad_stopsignal(tmp_path, line):
    with pytest.raises(DockerfileError):
        build(tmp_path, "FROM alpine\n" + line + "\n")


def test_maintainer_sets_the_author(tmp_path):
    b = build(tmp_path, "FROM alpine\nMAINTAINER Jane Doe <jane@example.com>\n")
    assert b.image["author"] == "Jane Doe <jane@example.com>"


# ---- CMD, ENTRYPOINT, SHELL ---------------------------------------------------------------------

@pytest.mark.parametrize("lines, cmd, entrypoint", [
    ('CMD ["echo", "hi"]', ["echo", "hi"], None),
    ("CMD echo $HOME", ["/bin/sh", "-c", "echo $HOME"], None),  # no substitution: the shell's
    ('ENTRYPOINT ["/e", "x"]', None, ["/e", "x"]),  # a new ENTRYPOINT drops the base's CMD
    ("ENTRYPOINT exec top -b", None, ["/bin/sh", "-c", "exec top -b"]),
    ('CMD ["c"]\nENTRYPOINT ["/e"]', ["c"], ["/e"]),  # a CMD of this stage stays
    ('ENTRYPOINT ["/e"]\nCMD ["c"]', ["c"], ["/e"]),
    ('CMD ["a"]\nCMD ["b"]', ["b"], None),
    ('SHELL ["/bin/bash", "-c"]\nCMD echo hi', ["/bin/bash", "-c", "echo hi"], None),
    ('SHELL ["pwsh", "-Command"]\nENTRYPOINT Get-Date', None, ["pwsh", "-Command", "Get-Date"]),
])
def test_cmd_and_entrypoint(tmp_path, lines, cmd, entrypoint):
    b = build(tmp_path, "FROM alpine\n" + lines + "\n")
    assert b.config.get("Cmd") == cmd
    assert b.config.get("Entrypoint") == entrypoint


def test_base_cmd_is_kept_without_a_new_entrypoint(tmp_path):
    assert build(tmp_path, "FROM alpine\nENV A=1\n").config["Cmd"] == ["/bin/sh"]


def test_shell_affects_later_shell_forms_only(tmp_path):
    b = build(tmp_path, 'FROM alpine\nRUN before\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
                        'RUN after\nRUN ["exec", "form"]\n')
    assert [r["argv"] for r in b.ex.runs] == [
        ["/bin/sh", "-c", "before"],
        ["/bin/bash", "-o", "pipefail", "-c", "after"],
        ["exec", "form"],
    ]
    assert b.config["Shell"] == ["/bin/bash", "-o", "pipefail", "-c"]


# ---- HEALTHCHECK ----------------------------------------------------------------------------------

S = 10**9


@pytest.mark.parametrize("line, expected", [
    ("HEALTHCHECK NONE", {"Test": ["NONE"]}),
    ("HEALTHCHECK CMD curl -f http://localhost/ || exit 1",
     {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}),
    ('HEALTHCHECK CMD ["curl", "-f", "http://x/"]', {"Test": ["CMD", "curl", "-f", "http://x/"]}),
    ("HEALTHCHECK --interval=5m --timeout=3s CMD true",
     {"Test": ["CMD-SHELL", "true"], "Interval": 300 * S, "Timeout": 3 * S}),
    ("HEALTHCHECK --start-period=1m30s --start-interval=500ms --retries=3 CMD true",
     {"Test": ["CMD-SHELL", "true"], "StartPeriod": 90 * S, "StartInterval": S // 2, "Retries": 3}),
    ("HEALTHCHECK --interval=1h CMD true", {"Test": ["CMD-SHELL", "true"], "Interval": 3600 * S}),
    ("HEALTHCHECK --timeout=1.5s CMD true", {"Test": ["CMD-SHELL", "true"], "Timeout": 1500 * 10**6}),
])
def test_healthcheck(tmp_path, line, expected):
    assert build(tmp_path, "FROM alpine\n" + line + "\n").config["Healthcheck"] == expected


@pytest.mark.parametrize("line", [
    "HEALTHCHECK --interval=5 CMD true",  # a duration needs a unit
    "HEALTHCHECK --timeout=abc CMD true",
    "HEALTHCHECK --retries=0 CMD true",
    "HEALTHCHECK --retries=x CMD true",
    "HEALTHCHECK NONE extra",
    "HEALTHCHECK CMD",
])
def test_bad_healthcheck(tmp_path, line):
    with pytest.raises(DockerfileError):
        build(tmp_path, "FROM alpine\n" + line + "\n")


# ---- ONBUILD ------------------------------------------------------------------------------------

def test_onbuild_is_stored(tmp_path):
    b = build(tmp_path, "FROM alpine\nONBUILD RUN echo later\nONBUILD COPY . /app\n")
    assert b.config["OnBuild"] == ["RUN echo later", "COPY . /app"]
    assert b.ex.runs == []  # not run in this build


def test_onbuild_triggers_of_the_base_run_and_are_cleared(tmp_path):
    b = build(tmp_path, "FROM trigger-base\nRUN echo mine\n")
    assert b.ex.scripts() == ["echo trigger", "echo mine"]  # triggers first
    assert b.env()["FROM_TRIGGER"] == "yes"
    assert b.run_env(0)["FROM_TRIGGER"] == "yes"
    assert not b.config.get("OnBuild")


def test_onbuild_of_this_build_survives_the_base_triggers(tmp_path):
    b = build(tmp_path, "FROM trigger-base\nONBUILD RUN echo grandchild\n")
    assert b.config["OnBuild"] == ["RUN echo grandchild"]


# ---- ARG scoping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, build_args, expected", [
    # a meta ARG is only visible in FROM ...
    ("ARG V=meta\nFROM alpine\nRUN x\n", {}, None),
    ("ARG V=meta\nFROM alpine\nRUN x\n", {"V": "cli"}, None),
    # ... unless the stage declares it again, without a default: it takes the meta value
    ("ARG V=meta\nFROM alpine\nARG V\nRUN x\n", {}, "meta"),
    ("ARG V=meta\nFROM alpine\nARG V\nRUN x\n", {"V": "cli"}, "cli"),
    ("ARG V=meta\nFROM alpine\nARG V=stage\nRUN x\n", {}, "stage"),
    # a stage ARG: default, overridden by --build-arg
    ("FROM alpine\nARG V=def\nRUN x\n", {}, "def"),
    ("FROM alpine\nARG V=def\nRUN x\n", {"V": "cli"}, "cli"),
    ("FROM alpine\nARG V\nRUN x\n", {"V": "cli"}, "cli"),
    ("FROM alpine\nARG V\nRUN x\n", {}, None),  # no value: not set at all
    ("FROM alpine\nARG V=\nRUN x\n", {}, ""),
    # visible from its line on, to the end of its stage
    ("FROM alpine\nRUN x\nARG V=1\n", {}, None),
    ("FROM alpine AS a\nARG V=1\nFROM a\nRUN x\n", {}, None),
    ("FROM alpine AS a\nARG V=1\nFROM alpine\nRUN x\n", {"V": "cli"}, None),
    # ENV always beats ARG, before or after it
    ("FROM alpine\nARG V=arg\nENV V=env\nRUN x\n", {"V": "cli"}, "env"),
    ("FROM alpine\nENV V=env\nARG V=arg\nRUN x\n", {"V": "cli"}, "env"),
    # a default may use an earlier ARG or ENV
    ("FROM alpine\nARG A=1\nARG V=$A-2\nRUN x\n", {}, "1-2"),
    ("FROM alpine\nARG A=1\nARG V=$A-2\nRUN x\n", {"A": "9"}, "9-2"),
    ("FROM alpine\nENV E=e\nARG V=${E}x\nRUN x\n", {}, "ex"),
    # predefined platform ARGs: declared in the stage to be seen
    ("FROM alpine\nARG TARGETARCH\nARG V=$TARGETARCH\nRUN x\n", {}, "amd64"),
    ("FROM alpine\nARG V=$TARGETARCH\nRUN x\n", {}, ""),
    ("FROM alpine\nARG TARGETPLATFORM\nARG V=$TARGETPLATFORM\nRUN x\n", {}, "linux/amd64"),
])
def test_arg_scoping_in_run_env(tmp_path, text, build_args, expected):
    b = build(tmp_path, text, build_args=build_args)
    assert b.run_env().get("V") == expected
    assert "V" not in b.env() or b.env()["V"] == "env"  # an ARG never lands in Config.Env


@pytest.mark.parametrize("text, build_args, label", [
    ("ARG V=meta\nFROM alpine\nLABEL v=x$V\n", {}, "x"),
    ("ARG V=meta\nFROM alpine\nARG V\nLABEL v=x$V\n", {}, "xmeta"),
    ("FROM alpine\nARG V=arg\nENV V=env\nLABEL v=$V\n", {}, "env"),
    ("FROM alpine\nARG V=arg\nLABEL v=$V\n", {"V": "cli"}, "cli"),
    ("FROM alpine\nARG V\nLABEL v=${V:-unset}\n", {}, "unset"),
    ("FROM alpine\nARG V=\nLABEL v=${V-unset}\n", {}, ""),
    ("FROM alpine\nARG V=\nLABEL v=${V:-empty}\n", {}, "empty"),
    ("FROM alpine\nARG V=set\nLABEL v=${V:+alt}\n", {}, "alt"),
    ("FROM alpine\nARG V\nLABEL v=x${V:+alt}\n", {}, "x"),
    ("FROM alpine\nENV V=a.tar.gz\nLABEL v=${V%%.*}\n", {}, "a"),
])
def test_substitution_in_instructions(tmp_path, text, build_args, label):
    b = build(tmp_path, text, build_args=build_args)
    assert b.config["Labels"]["v"] == label


@pytest.mark.parametrize("text, build_args, base", [
    ("ARG IMG=alpine\nFROM $IMG\n", {}, "alpine"),
    ("ARG IMG=alpine\nFROM $IMG\n", {"IMG": "busybox"}, "busybox"),
    ("ARG IMG\nFROM ${IMG:-debian}\n", {}, "debian"),
    ("ARG REPO=lib TAG=1\nFROM $REPO/img:$TAG\n", {"TAG": "2"}, "lib/img:2"),
    ("ARG A=x\nARG B=${A}y\nFROM $B\n", {}, "xy"),
    ("FROM alpine\nARG IMG=stage-only\nFROM ${IMG:-fallback}\n", {}, "fallback"),
])
def test_meta_args_in_from(tmp_path, text, build_args, base):
    b = build(tmp_path, text, build_args=build_args)
    assert b.ex.bases[-1] == base


def test_args_reach_run_as_env_but_not_the_image(tmp_path):
    b = build(tmp_path, "FROM alpine\nARG A=1\nENV B=$A\nRUN x\n")
    assert b.run_env()["A"] == "1"
    assert b.env() == {"PATH": "/usr/bin:/bin", "HOME": "/root", "B": "1"}


@pytest.mark.parametrize("name", ["HTTP_PROXY", "https_proxy", "NO_PROXY", "ftp_proxy", "ALL_PROXY"])
def test_proxy_build_args_reach_run_undeclared(tmp_path, name):
    b = build(tmp_path, "FROM alpine\nRUN x\n", build_args={name: "http://proxy:3128"})
    assert b.run_env()[name] == "http://proxy:3128"
    assert name not in b.env()
    assert "proxy" not in b.image["history"][-1]["created_by"]
    assert not [s for s in b.ex.said if "not consumed" in s]


@pytest.mark.parametrize("text, build_args, unused", [
    ("FROM alpine\nRUN x\n", {"NOPE": "1"}, ["NOPE"]),
    ("FROM alpine\nARG A\nRUN x\n", {"A": "1", "B": "2"}, ["B"]),
    ("ARG A\nFROM alpine\n", {"A": "1"}, []),  # a meta ARG consumes it
    ("FROM alpine\nARG A\n", {"A": "1", "HTTP_PROXY": "p"}, []),
])
def test_unused_build_args_warning(tmp_path, text, build_args, unused):
    said = build(tmp_path, text, build_args=build_args).ex.said
    warnings = [s for s in said if "not consumed" in s]
    if unused:
        assert len(warnings) == 1
        for name in unused:
            assert name in warnings[0]
        assert "HTTP_PROXY" not in warnings[0]
    else:
        assert warnings == []


# ---- RUN --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lines, argv", [
    ("RUN echo $HOME", ["/bin/sh", "-c", "echo $HOME"]),  # the shell substitutes, not the builder
    ('RUN ["echo", "$HOME"]', ["echo", "$HOME"]),
    ("RUN echo a \\\n  && echo b", ["/bin/sh", "-c", "echo a   && echo b"]),
    ("RUN <<EOF\necho hi\necho there\nEOF", ["/bin/sh", "-c", "echo hi\necho there\n"]),
    ('SHELL ["/bin/bash", "-c"]\nRUN <<EOF\necho hi\nEOF', ["/bin/bash", "-c", "echo hi\n"]),
])
def test_run_argv(tmp_path, lines, argv):
    assert build(tmp_path, "FROM alpine\n" + lines + "\n").ex.runs[-1]["argv"] == argv


@pytest.mark.parametrize("lines, script", [
    ("RUN cat <<EOF > /x\nhello $A\nEOF", "cat <<EOF > /x\nhello $A\nEOF"),
    ("RUN python3 <<EOF\nprint(1)\nEOF", "python3 <<EOF\nprint(1)\nEOF"),
    ("RUN <<A cat > /a && <<B cat > /b\n1\nA\n2\nB", "<<A cat > /a && <<B cat > /b\n1\nA\n2\nB"),
])
def test_run_with_heredoc_for_a_command_goes_to_the_shell(tmp_path, lines, script):
    argv = build(tmp_path, "FROM alpine\n" + lines + "\n").ex.runs[-1]["argv"]
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2].rstrip("\n") == script


def test_run_heredoc_with_a_shebang_uses_its_interpreter(tmp_path):
    b = build(tmp_path, "FROM alpine\nRUN <<EOT\n#!/usr/bin/env python3\nprint('hi')\nEOT\n")
    step = b.ex.runs[-1]
    assert step["argv"] == ["/dev/pipes/EOT"]  # executed as a file: the kernel reads its #! line
    assert {"type": "script", "target": "/dev/pipes/EOT",
            "content": "#!/usr/bin/env python3\nprint('hi')\n"} in step["mounts"]


def test_run_step_fields(tmp_path):
    b = build(tmp_path, "FROM alpine\nUSER app\nWORKDIR /w\nENV E=1\nARG A=2\nRUN --network=none x\n")
    step = b.ex.runs[-1]
    assert (step["user"], step["workdir"], step["network"]) == ("app", "/w", "none")
    assert b.run_env() == {"A": "2", "E": "1", "PATH": "/usr/bin:/bin", "HOME": "/root"}
    assert step["where"] == "Dockerfile:6"


# ---- COPY -----------------------------------------------------------------------------------------

def test_copy_from_the_context(tmp_path):
    b = build(tmp_path, "FROM alpine\nWORKDIR /app\nCOPY a.txt b.txt ./\nCOPY a.txt rel\n",
              files={"a.txt": "a", "b.txt": "b"})
    multi, single = b.ex.files_ops[1], b.ex.files_ops[2]
    assert [(o["op"], o["name"], o["dest"], o["dest_dir"]) for o in multi] == [
        ("copy", "a.txt", "/app", True), ("copy", "b.txt", "/app", True)]
    assert [(o["name"], o["dest"], o["dest_dir"]) for o in single] == [("a.txt", "/app/rel", False)]


@pytest.mark.parametrize("lines, content", [
    ("COPY <<EOF /f\nhello\nEOF", "hello\n"),
    ("ARG FOO=bar\nCOPY <<EOF /f\nhello ${FOO}\nEOF", "hello bar\n"),  # unquoted: expanded
    ("ENV FOO=env\nCOPY <<EOF /f\n$FOO\nEOF", "env\n"),
])
def test_copy_heredoc(tmp_path, lines, content):
    (op,) = build(tmp_path, "FROM alpine\n" + lines + "\n").ex.files_ops[-1]
    assert (op["op"], op["dest"], op["content"]) == ("inline", "/f", content)


@pytest.mark.parametrize("lines, content", [
    ("ARG FOO=bar\nCOPY <<'EOF' /f\nhello ${FOO}\nEOF", "hello ${FOO}\n"),
    ('ARG FOO=bar\nCOPY <<"EOF" /f\nhello $FOO\nEOF', "hello $FOO\n"),
])
def test_copy_heredoc_quoted_delimiter_is_not_expanded(tmp_path, lines, content):
    (op,) = build(tmp_path, "FROM alpine\n" + lines + "\n").ex.files_ops[-1]
    assert op["content"] == content


def test_copy_heredoc_with_dash_strips_tabs(tmp_path):
    (op,) = build(tmp_path, "FROM alpine\nCOPY <<-EOT /f\n\thello\n\t\tworld\nEOT\n").ex.files_ops[-1]
    assert op["content"] == "hello\nworld\n"


# ---- multi-stage --------------------------------------------------------------------------------

MULTI = """\
FROM unused-image AS unused
RUN echo unused
FROM alpine AS builder
RUN echo builder
FROM builder AS tester
RUN echo tester
FROM alpine
COPY --from=builder /out /out
RUN echo final
"""


def test_only_needed_stages_are_built(tmp_path):
    b = build(tmp_path, MULTI)
    assert b.ex.scripts() == ["echo builder", "echo final"]
    assert "unused-image" not in b.ex.bases
    assert not [s for s in b.ex.said if "unused" in s or "tester" in s]


@pytest.mark.parametrize("target, scripts", [
    ("builder", ["echo builder"]),
    ("BUILDER", ["echo builder"]),  # stage names are case-insensitive
    ("tester", ["echo builder", "echo tester"]),
    ("unused", ["echo unused"]),
])
def test_target(tmp_path, target, scripts):
    assert build(tmp_path, MULTI, target=target).ex.scripts() == scripts


def test_unknown_target(tmp_path):
    with pytest.raises(DockerfileError):
        build(tmp_path, MULTI, target="nope")


def test_from_another_stage_inherits_its_image(tmp_path):
    b = build(tmp_path, "FROM alpine AS a\nENV X=1\nRUN one\nFROM a\nENV Y=2\nRUN two\n")
    assert b.ex.bases == ["alpine"]
    assert b.env()["X"] == "1" and b.env()["Y"] == "2"
    assert len(b.layers) == 3  # the base's layer and both RUN layers
    assert b.run_env()["X"] == "1"


@pytest.mark.parametrize("ref", ["build", "BUILD", "0"])
def test_copy_from_a_stage_by_name_or_index(tmp_path, ref):
    b = build(tmp_path, f"FROM alpine AS build\nRUN make\nFROM alpine\nCOPY --from={ref} /out /app/\n")
    (op,) = b.ex.files_ops[-1]
    assert op["op"] == "copy_from"
    assert op["paths"] == ["/out"]
    assert op["dest"] == "/app" and op["dest_dir"]
    # the build stage's layers: the base's and the RUN's (the final image has the base's and the COPY's)
    assert op["layers"][0] == _digest("layer of alpine")
    assert len(op["layers"]) == 2 and op["layers"][1] not in [lr["diff_id"] for lr in b.layers]
    assert b.ex.scripts() == ["make"]


def test_copy_from_an_image(tmp_path):
    b = build(tmp_path, "FROM alpine\nCOPY --from=busybox:1 /bin/busybox /bin/\n")
    assert b.ex.bases == ["alpine", "busybox:1"]
    (op,) = b.ex.files_ops[-1]
    assert op["layers"] == [_digest("layer of busybox:1")]


# ---- the cache ------------------------------------------------------------------------------------

CACHED = """\
FROM alpine
ARG V=1
ENV E=1
WORKDIR /app
COPY a.txt .
RUN echo one
RUN echo two $V
CMD ["run"]
"""


def test_a_second_identical_build_is_all_cached(tmp_path):
    first = build(tmp_path, CACHED, files={"a.txt": "a"})
    assert first.ex.calls == 4  # WORKDIR, COPY, two RUNs
    second = build(tmp_path, CACHED, ex=FakeExecutor(clock_start=5000))
    assert second.ex.runs == [] and second.ex.files_ops == []
    assert second.image == first.image  # the same history, "created" included
    assert second.layers == first.layers
    assert second.image["created"] == first.image["history"][-1]["created"]


def test_no_cache_reruns_everything(tmp_path):
    first = build(tmp_path, CACHED, files={"a.txt": "a"})
    again = build(tmp_path, CACHED, no_cache=True)
    assert again.ex.calls == first.ex.calls
    assert again.layers != first.layers


@pytest.mark.parametrize("change, rerun", [
    # a changed instruction: a miss from that step on
    (lambda t: t.replace("RUN echo two", "RUN echo TWO"), ["echo TWO $V"]),
    (lambda t: t.replace("RUN echo one", "RUN echo ONE"), ["echo ONE", "echo two $V"]),
    (lambda t: t.replace("ENV E=1", "ENV E=2"), ["WORKDIR", "COPY", "echo one", "echo two $V"]),
    (lambda t: t.replace("CMD", "ENTRYPOINT"), []),
    (lambda t: t, []),
])
def test_a_change_misses_from_that_step_on(tmp_path, change, rerun):
    build(tmp_path, CACHED, files={"a.txt": "a"})
    b = build(tmp_path, change(CACHED))
    done = [("WORKDIR" if ops[0]["op"] == "mkdir" else "COPY") for ops in b.ex.files_ops] + b.ex.scripts()
    assert done == rerun


def test_changed_context_file_misses_from_the_copy_on(tmp_path):
    build(tmp_path, CACHED, files={"a.txt": "a"})
    b = build(tmp_path, CACHED, files={"a.txt": "changed"})
    assert [o[0]["op"] for o in b.ex.files_ops] == ["copy"]
    assert b.ex.scripts() == ["echo one", "echo two $V"]


def test_changed_arg_value_misses_at_run(tmp_path):
    text = "FROM alpine\nARG V=1\nRUN echo a\nRUN echo b\n"
    build(tmp_path, text)
    assert build(tmp_path, text, build_args={"V": "1"}).ex.runs == []  # same value: cached
    assert build(tmp_path, text, build_args={"V": "2"}).ex.scripts() == ["echo a", "echo b"]


def test_changed_arg_value_misses_at_first_use_not_definition(tmp_path):
    text = "FROM alpine\nARG V\nCOPY a.txt /a\nRUN echo $V\n"
    build(tmp_path, text, files={"a.txt": "a"}, build_args={"V": "1"})
    b = build(tmp_path, text, build_args={"V": "2"})
    assert b.ex.files_ops == []  # COPY does not use V
    assert b.ex.scripts() == ["echo $V"]


def test_proxy_args_are_exempt_from_the_cache(tmp_path):
    text = "FROM alpine\nRUN echo a\n"
    build(tmp_path, text, build_args={"HTTP_PROXY": "http://a"})
    assert build(tmp_path, text, build_args={"HTTP_PROXY": "http://b"}).ex.runs == []
    declared = "FROM alpine\nARG HTTP_PROXY\nRUN echo a\n"
    build(tmp_path, declared, build_args={"HTTP_PROXY": "http://a"})
    assert build(tmp_path, declared, build_args={"HTTP_PROXY": "http://b"}).ex.scripts() == ["echo a"]


def test_a_different_base_misses_everything(tmp_path):
    build(tmp_path, "FROM alpine\nRUN echo a\n")
    assert build(tmp_path, "FROM debian\nRUN echo a\n").ex.scripts() == ["echo a"]


def test_a_stage_cached_in_one_dockerfile_is_reused_in_another(tmp_path):
    build(tmp_path, "FROM alpine\nRUN echo a\n")
    b = build(tmp_path, "FROM alpine AS x\nRUN echo a\nFROM x\nRUN echo b\n")
    assert b.ex.scripts() == ["echo b"]


# ---- history -----------------------------------------------------------------------------------

def test_history(tmp_path):
    text = ("FROM alpine\nARG V=x\nENV E=1\nLABEL l=1\nEXPOSE 80\nUSER u\nCMD [\"c\"]\n"
            "RUN echo a\nCOPY a.txt /a\nWORKDIR /w\n")
    b = build(tmp_path, text, files={"a.txt": "a"})
    hist = b.image["history"]
    assert hist[0] == BASES["alpine"]["history"][0]  # the base's history comes first
    mine = hist[1:]
    assert len(mine) == 9
    empty = [h.get("empty_layer", False) for h in mine]
    assert empty == [True, True, True, True, True, True, False, False, False]
    assert len(b.layers) == 1 + 3
    assert b.image["rootfs"] == {"type": "layers", "diff_ids": [lr["diff_id"] for lr in b.layers]}
    assert all(h["created"] for h in mine)
    assert b.image["created"] == mine[-1]["created"]


@pytest.mark.parametrize("text, build_args, created_by", [
    ("FROM alpine\nRUN echo hi\n", {}, "/bin/sh -c echo hi"),
    ("FROM alpine\nARG V=x\nRUN echo hi\n", {}, "|1 V=x /bin/sh -c echo hi"),
    ("FROM alpine\nARG A=1 B=2\nRUN echo hi\n", {"B": "9"}, "|2 A=1 B=9 /bin/sh -c echo hi"),
    ('FROM alpine\nARG V=x\nRUN ["echo", "hi"]\n', {}, "|1 V=x echo hi"),
    ("ARG M=meta\nFROM alpine\nRUN echo hi\n", {}, "/bin/sh -c echo hi"),  # meta ARGs: not in scope
])
def test_run_history_names_its_args(tmp_path, text, build_args, created_by):
    b = build(tmp_path, text, build_args=build_args)
    got = b.image["history"][-1]["created_by"]
    assert got.removeprefix("RUN ").removesuffix(" # buildkit") == created_by


def test_stage_steps_are_announced(tmp_path):
    b = build(tmp_path, "FROM alpine\nENV A=1\nRUN echo\n")
    steps = [s for s in b.ex.said if s.startswith("STEP ")]
    assert steps == ["STEP 1/3: FROM alpine", "STEP 2/3: ENV A=1", "STEP 3/3: RUN echo"]


def test_image_platform_of_scratch(tmp_path):
    b = build(tmp_path, "FROM scratch\nCOPY a.txt /\nENV A=1\n", files={"a.txt": "a"})
    assert (b.image["os"], b.image["architecture"]) == ("linux", "amd64")
    assert b.ex.bases == []
    assert len(b.layers) == 1


def test_dockerfile_text_is_json_serialisable_config(tmp_path):
    b = build(tmp_path, CACHED, files={"a.txt": "a"})
    assert json.loads(json.dumps(b.image)) == b.image


def test_copy_link_is_accepted_and_platform_reaches_from(tmp_path):
    """`COPY --link` builds as a plain COPY; `--platform` (of the build or of FROM) is what the
    base image is asked for."""
    b = build(tmp_path, "FROM --platform=linux/arm64 alpine\nCOPY --link a.txt /a\n", files={"a.txt": "a"})
    assert [(o["op"], o["dest"]) for o in b.ex.files_ops[-1]] == [("copy", "/a")]
    assert b.ex.bases[-1] == "alpine" and b.ex.platforms[-1] == "linux/arm64"


@pytest.mark.parametrize("dockerfile, ok", [
    ("FROM alpine\nCOPY a.txt b.txt /d\n", False),
    ("FROM alpine\nCOPY a.txt b.txt /d/\n", True),
    ("FROM alpine\nWORKDIR /w\nCOPY a.txt b.txt .\n", True),
    ("FROM alpine\nCOPY *.txt /d\n", False),
    ("FROM alpine\nCOPY --from=alpine /a /b /d\n", False),
])
def test_several_sources_need_a_directory_destination(tmp_path, dockerfile, ok):
    """Docker's rule: several sources, named or matched, go into a directory written with a /."""
    from layers.dockerfile import DockerfileError
    if ok:
        build(tmp_path, dockerfile, files={"a.txt": "a", "b.txt": "b"})
    else:
        with pytest.raises(DockerfileError, match="the destination must be a directory and end with a /"):
            build(tmp_path, dockerfile, files={"a.txt": "a", "b.txt": "b"})
