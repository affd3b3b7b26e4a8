"""Parsing a Dockerfile (layers.dockerfile) against Docker's documented rules: stages, meta
ARGs, the checks the builder adds to the Go parser, parser directives, JSON and shell forms,
heredocs and ONBUILD triggers. Every error names ``FILE:LINE``."""

from __future__ import annotations

import pytest

from layers.dockerfile import DockerfileError, _failing_line, escape_of, parse
from rootless.base.errors import UsageError


def error_of(text: str, path: str = "Dockerfile") -> str:
    with pytest.raises(DockerfileError) as e:
        parse(text, path)
    assert isinstance(e.value, UsageError)
    return e.value.message


def all_instructions(df):
    return [ins for st in df.stages for ins in st.instructions]


# ---- stages ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("FROM alpine\n", [(0, None, "alpine", 1)]),
    ("FROM alpine AS build\n", [(0, "build", "alpine", 1)]),
    ("FROM alpine as build\n", [(0, "build", "alpine", 1)]),
    ("FROM alpine aS Build\n", [(0, "build", "alpine", 1)]),  # names are case-insensitive
    ("FROM a AS one\nRUN x\n\nFROM one AS two\nFROM b\n",
     [(0, "one", "a", 1), (1, "two", "one", 4), (2, None, "b", 5)]),
    ("FROM a:1.0@sha256:" + "0" * 64 + " AS x.y_z-1\n", [(0, "x.y_z-1", "a:1.0@sha256:" + "0" * 64, 1)]),
    ("ARG IMG=alpine\nFROM $IMG AS base\n", [(0, "base", "$IMG", 2)]),  # substituted later
    ("# comment\n\nFROM scratch\n", [(0, None, "scratch", 3)]),
])
def test_stages(text, expected):
    df = parse(text)
    assert [(s.index, s.name, s.base, s.line) for s in df.stages] == expected


def test_stage_instructions_are_grouped():
    df = parse("FROM a AS one\nENV X=1\nRUN x\nFROM b\nCMD y\n")
    assert [i.cmd for i in df.stages[0].instructions] == ["ENV", "RUN"]
    assert [i.cmd for i in df.stages[1].instructions] == ["CMD"]


def test_from_platform_flag():
    df = parse("FROM --platform=linux/arm64 alpine AS x\nFROM --platform=$BUILDPLATFORM b\n")
    assert [s.platform for s in df.stages] == ["linux/arm64", "$BUILDPLATFORM"]
    assert df.stages[0].base == "alpine"


@pytest.mark.parametrize("text, line, words", [
    ("FROM a AS x\nFROM b AS x\n", 2, ["duplicate", "'x'"]),
    ("FROM a AS x\nRUN y\nFROM b as X\n", 3, ["duplicate"]),  # case-insensitive
    ("FROM a AS 1x\n", 1, ["invalid name", "1x"]),
    ("FROM a AS x/y\n", 1, ["invalid name"]),
    ("FROM a b\n", 1, ["FROM"]),
    ("FROM a AS\n", 1, ["FROM"]),
    ("FROM a FOR b\n", 1, ["FROM"]),
    ("FROM a AS b c\n", 1, ["FROM"]),
    ("FROM\n", 1, ["FROM"]),
])
def test_bad_from(text, line, words):
    msg = error_of(text)
    assert msg.startswith(f"Dockerfile:{line}:")
    for w in words:
        assert w in msg


# ---- meta ARGs and what may precede FROM ------------------------------------------------------

def test_args_before_from_are_meta_args():
    df = parse("# syntax=docker/dockerfile:1\nARG A=1 B\nARG C\nFROM alpine\nARG D\n")
    assert [(m.cmd, m.args, m.line) for m in df.meta_args] == [("ARG", ("A=1", "B"), 2), ("ARG", ("C",), 3)]
    assert [i.args for i in df.stages[0].instructions] == [("D",)]


def test_args_between_stages_belong_to_the_stage():
    df = parse("ARG A\nFROM x\nARG B\nFROM y\n")
    assert len(df.meta_args) == 1
    assert [i.args for i in df.stages[0].instructions] == [("B",)]


@pytest.mark.parametrize("text, line, cmd", [
    ("RUN echo\nFROM a\n", 1, "RUN"),
    ("ARG A\nENV B=1\nFROM a\n", 2, "ENV"),
    ("# c\n\nLABEL a=b\nFROM a\n", 3, "LABEL"),
    ("ARG A\nONBUILD RUN x\nFROM a\n", 2, "ONBUILD"),
])
def test_instructions_before_from_are_refused(text, line, cmd):
    msg = error_of(text)
    assert msg.startswith(f"Dockerfile:{line}:")
    assert cmd in msg


@pytest.mark.parametrize("text", ["", "# just a comment\n", "ARG A=1\n", "\n\n"])
def test_no_from_is_an_error(text):
    error_of(text)


# ---- instructions: case, unknown, flags, arguments ----------------------------------------------

@pytest.mark.parametrize("text", ["from alpine\nrun echo hi\n", "From alpine AS b\nCmd [\"x\"]\n"])
def test_instructions_are_case_insensitive(text):
    df = parse(text)
    assert [i.cmd for i in all_instructions(df)] in (["RUN"], ["CMD"])


@pytest.mark.parametrize("text, line, words", [
    ("FROM a\nFOO bar\n", 2, ["unknown instruction", "FOO"]),
    ("FROM a\nRUN a \\\n  b \\\n  c\nUNKNOWN x\n", 5, ["unknown instruction"]),
    ("FROM a\n\n# comment\n\nCOPYY a b\n", 5, ["unknown instruction", "COPYY"]),
    ("FROM a\nRUN <<EOF\nx\nEOF\nNOPE\n", 5, ["unknown instruction"]),
    # flags
    ("FROM a\nCOPY --frm=x a b\n", 2, ["unknown flag", "--frm"]),
    ("FROM a\nRUN --foo=1 echo\n", 2, ["unknown flag", "--foo"]),
    ("FROM a\nCMD --foo echo\n", 2, ["unknown flag", "--foo"]),
    ("FROM a\nENV --x=1 A=b\n", 2, ["unknown flag"]),
    ("FROM a\nADD --from=b x y\n", 2, ["unknown flag", "--from"]),
    ("FROM --plat=x a\n", 1, ["unknown flag"]),
    ("FROM a\nHEALTHCHECK --intervall=1s CMD x\n", 2, ["unknown flag"]),
    ("FROM a\nCOPY --from x y\n", 2, ["--from"]),  # a value-taking flag without a value
    ("FROM a\nCOPY --chown a b\n", 2, ["--chown"]),
    # missing or wrong arguments
    ("FROM a\nRUN\n", 2, ["RUN requires"]),
    ("FROM a\nCOPY a\n", 2, ["COPY requires", "two"]),
    ("FROM a\nADD a\n", 2, ["ADD requires", "two"]),
    ("FROM a\nENV\n", 2, ["ENV requires"]),
    ("FROM a\nLABEL\n", 2, ["LABEL requires"]),
    ("FROM a\nEXPOSE\n", 2, ["EXPOSE requires"]),
    ("FROM a\nUSER\n", 2, ["USER requires"]),
    ("FROM a\nWORKDIR\n", 2, ["WORKDIR requires"]),
    ("FROM a\nVOLUME\n", 2, ["VOLUME requires"]),
    ("FROM a\nSTOPSIGNAL\n", 2, ["STOPSIGNAL requires"]),
    ("FROM a\nMAINTAINER\n", 2, ["MAINTAINER requires"]),
    ("FROM a\nARG\n", 2, ["ARG requires"]),
    ("FROM a\nHEALTHCHECK\n", 2, ["HEALTHCHECK requires"]),
    ("FROM a\nSHELL /bin/bash -c\n", 2, ["SHELL", "JSON"]),
    ("FROM a\nHEALTHCHECK FOO x\n", 2, ["healthcheck", "FOO"]),
    ("FROM a\nENV A=1\nRUN a \\\n  b\nCOPY x\n", 5, ["COPY requires"]),
])
def test_errors_name_the_line(text, line, words):
    msg = error_of(text)
    assert msg.startswith(f"Dockerfile:{line}: "), msg
    for w in words:
        assert w in msg


def test_errors_name_the_file():
    assert error_of("FROM a\nBOGUS\n", "sub/Containerfile").startswith("sub/Containerfile:2: ")


@pytest.mark.parametrize("text, flags", [
    ("COPY --from=build --chown=1:2 --chmod=755 a b", {"from": "build", "chown": "1:2", "chmod": "755"}),
    ("COPY --link a b", {"link": True}),
    ("COPY --link=false a b", {"link": False}),
    ("COPY --link=true a b", {"link": True}),
    ("ADD --checksum=sha256:abc https://x/y /z", {"checksum": "sha256:abc"}),
    ("RUN --network=none echo", {"network": "none"}),
    ("RUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b x",
     {"mount": ("type=cache,target=/a", "type=tmpfs,target=/b")}),
    ("RUN --mount=type=cache,target=/a x", {"mount": "type=cache,target=/a"}),
    ("HEALTHCHECK --interval=5s --timeout=1s --start-period=2s --start-interval=1s --retries=3 CMD x",
     {"interval": "5s", "timeout": "1s", "start-period": "2s", "start-interval": "1s", "retries": "3"}),
    ("RUN echo --not-a-flag", {}),
])
def test_flags(text, flags):
    (ins,) = parse("FROM a\n" + text + "\n").stages[0].instructions
    assert ins.flags == flags


# ---- line numbers ---------------------------------------------------------------------------------

def test_line_numbers_across_continuations_comments_and_heredocs():
    text = (
        "# escape=\\\n"          # 1
        "\n"                      # 2
        "FROM a\n"                # 3
        "RUN one \\\n"            # 4
        "  two \\\n"              # 5
        "# a comment inside\n"    # 6
        "  three\n"               # 7
        "\n"                      # 8
        "RUN <<EOF\n"             # 9
        "echo a\n"                # 10
        "echo b\n"                # 11
        "EOF\n"                   # 12
        "COPY <<A <<B /dst/\n"    # 13
        "a\n"                     # 14
        "A\n"                     # 15
        "b\n"                     # 16
        "B\n"                     # 17
        "ENV X=1 \\\n"            # 18
        "\n"                      # 19
        "    Y=2\n"               # 20
        "CMD [\"x\"]\n"           # 21
    )
    df = parse(text)
    assert df.stages[0].line == 3
    assert [(i.cmd, i.line) for i in df.stages[0].instructions] == [
        ("RUN", 4), ("RUN", 9), ("COPY", 13), ("ENV", 18), ("CMD", 21)]
    assert df.stages[0].instructions[0].args == ("one   two   three",)
    assert df.stages[0].instructions[3].args == ("X", "1", "Y", "2")


def test_where():
    (ins,) = parse("FROM a\n\nRUN x\n").stages[0].instructions
    assert ins.where("ctx/Dockerfile") == "ctx/Dockerfile:3"


# ---- the escape directive ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, escape", [
    ("FROM a\n", "\\"),
    ("# escape=`\nFROM a\n", "`"),
    ("# escape=\\\nFROM a\n", "\\"),
    ("#escape=`\nFROM a\n", "`"),
    ("# ESCAPE = `\nFROM a\n", "`"),  # directives are case-insensitive, spaces allowed
    ("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n", "`"),
    ("# comment\n# escape=`\nFROM a\n", "\\"),  # after a comment: just a comment
    ("\n# escape=`\nFROM a\n", "\\"),  # after an empty line: just a comment
    ("FROM a\n# escape=`\n", "\\"),  # after an instruction: just a comment
])
def test_escape_of(text, escape):
    assert escape_of(text) == escape
    assert parse(text).escape == escape


@pytest.mark.parametrize("text", [
    "# unknowndirective=value\n# escape=`\nFROM a\n",
    "# foo=bar\n# escape=`\nFROM a\n",
])
def test_escape_after_unknown_directive_is_a_comment(text):
    assert escape_of(text) == "\\"


@pytest.mark.parametrize("text", ["# escape=x\nFROM a\n", "# escape=``\nFROM a\n"])
def test_invalid_escape_is_refused(text):
    with pytest.raises(DockerfileError):
        parse(text)


def test_a_directive_may_only_be_used_once():
    with pytest.raises(DockerfileError):
        parse("# escape=`\n# escape=\\\nFROM a\n")


def test_backtick_escape_continues_lines():
    text = "# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo hi\nCOPY . c:\\app\\\n"
    df = parse(text)
    run, copy = df.stages[0].instructions
    assert run.line == 3 and copy.line == 5
    assert "dir c:\\" in run.args[0] and "echo hi" in run.args[0]
    assert copy.args == (".", "c:\\app\\")


# ---- JSON and shell forms ------------------------------------------------------------------------

@pytest.mark.parametrize("line, json, args", [
    ('CMD ["echo", "hi"]', True, ("echo", "hi")),
    ('CMD echo hi', False, ("echo hi",)),
    ('ENTRYPOINT ["/bin/sh", "-c", "echo $HOME"]', True, ("/bin/sh", "-c", "echo $HOME")),
    ('RUN ["a"]', True, ("a",)),
    ('RUN [ "a" , "b" ]', True, ("a", "b")),
    ("RUN ['a']", False, ("['a']",)),  # single quotes are not JSON: shell form
    ('CMD ["a", b]', False, ('["a", b]',)),  # invalid JSON: shell form
    ('SHELL ["/bin/bash", "-c"]', True, ("/bin/bash", "-c")),
    ('VOLUME ["/a", "/b"]', True, ("/a", "/b")),
    ('VOLUME /a /b', False, ("/a", "/b")),
    ('COPY ["a b", "/dst/"]', True, ("a b", "/dst/")),
    ('HEALTHCHECK CMD ["curl", "x"]', True, ("CMD", "curl", "x")),
    ('HEALTHCHECK CMD curl x', False, ("CMD", "curl x")),
    ('CMD []', True, ()),
])
def test_json_and_shell_forms(line, json, args):
    (ins,) = parse("FROM a\n" + line + "\n").stages[0].instructions
    assert (ins.json, ins.args) == (json, args)


@pytest.mark.parametrize("line, args", [
    ("ENV A=1 B=2", ("A", "1", "B", "2")),
    ("ENV A 1 2", ("A", "1 2")),  # the legacy form: the rest of the line is the value
    ('ENV A="x y" B=z', ("A", '"x y"', "B", "z")),  # quotes stay for substitution
    ('LABEL "a b"=c d=e', ('"a b"', "c", "d", "e")),
    ("ARG A=1 B", ("A=1", "B")),
    ("EXPOSE 80/tcp 90-92/udp", ("80/tcp", "90-92/udp")),
    ("MAINTAINER John Doe <j@x>", ("John Doe <j@x>",)),
])
def test_argument_words(line, args):
    (ins,) = parse("FROM a\n" + line + "\n").stages[0].instructions
    assert ins.args == args


# ---- heredocs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, args, heredocs", [
    ("RUN <<EOF\necho hi\necho there\nEOF\n", ("<<EOF",), (("EOF", "echo hi\necho there\n"),)),
    ("RUN cat <<EOF > /x\nhello $A\nEOF\n", ("cat <<EOF > /x",), (("EOF", "hello $A\n"),)),
    ("RUN <<A cat - <<B\na\nA\nb\nB\n", ("<<A cat - <<B",), (("A", "a\n"), ("B", "b\n"))),
    ("COPY <<EOF /f\nx\nEOF\n", ("<<EOF", "/f"), (("EOF", "x\n"),)),
    ("COPY <<'EOF' /f\n$X\nEOF\n", ("<<'EOF'", "/f"), (("EOF", "$X\n"),)),
    ("COPY <<A <<B /d/\n1\nA\n2\nB\n", ("<<A", "<<B", "/d/"), (("A", "1\n"), ("B", "2\n"))),
])
def test_heredoc_content(text, args, heredocs):
    (ins,) = parse("FROM a\n" + text).stages[0].instructions
    assert (ins.args, ins.heredocs) == (args, heredocs)


def test_heredoc_original_keeps_the_body():
    (ins,) = parse("FROM a\nRUN <<EOF\nline1\nline2\nEOF\n").stages[0].instructions
    assert ins.original.startswith("RUN <<EOF\nline1\nline2\nEOF")


# ---- ONBUILD -------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, cmd, args, json", [
    ("ONBUILD RUN echo hi", "RUN", ("echo hi",), False),
    ("ONBUILD ADD . /app/src", "ADD", (".", "/app/src"), False),
    ('ONBUILD CMD ["a", "b"]', "CMD", ("a", "b"), True),
    ("ONBUILD ENV A=1 B=2", "ENV", ("A", "1", "B", "2"), False),
    ("ONBUILD COPY --from=x a b", "COPY", ("a", "b"), False),
])
def test_onbuild_trigger_is_parsed(line, cmd, args, json):
    (ins,) = parse("FROM a\n" + line + "\n").stages[0].instructions
    assert ins.cmd == "ONBUILD"
    assert ins.sub is not None
    assert (ins.sub.cmd, ins.sub.args, ins.sub.json, ins.sub.line) == (cmd, args, json, 2)


@pytest.mark.parametrize("line, words", [
    ("ONBUILD ONBUILD RUN x", ["ONBUILD", "isn't allowed"]),
    ("ONBUILD FROM b", ["FROM", "isn't allowed"]),
    ("ONBUILD MAINTAINER me", ["MAINTAINER", "isn't allowed"]),
    ("ONBUILD", ["ONBUILD requires"]),
])
def test_onbuild_forbidden_triggers(line, words):
    msg = error_of("FROM a\nRUN x\n" + line + "\n")
    assert msg.startswith("Dockerfile:3: "), msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("line, words", [
    ("ONBUILD FOO x", ["unknown instruction"]),
    ("ONBUILD COPY --bogus=1 a b", ["unknown flag"]),
    ("ONBUILD COPY a", ["COPY requires"]),
])
def test_bad_onbuild_triggers_are_refused(line, words):
    msg = error_of("FROM a\nRUN x\n" + line + "\n")
    for w in words:
        assert w in msg


@pytest.mark.parametrize("line", ["ONBUILD FOO x", "ONBUILD COPY --bogus=1 a b", "ONBUILD COPY a"])
def test_bad_onbuild_trigger_names_the_onbuild_line(line):
    msg = error_of("FROM a\nRUN x\n" + line + "\n")
    assert msg.startswith("Dockerfile:3: "), msg


# ---- errors of the Go parser itself ----------------------------------------------------------------

@pytest.mark.parametrize("text, line", [
    ("FROM a\nRUN echo\nRUN <<EOF\necho\n", 3),
    ("FROM a\nRUN <<EOF\necho\n", 2),
    ("FROM a\nENV A=1\n\nCOPY <<EOF /x\nnever closed\n", 4),
])
def test_failing_line_of_a_go_parser_error(text, line):
    assert _failing_line(text) == line
    msg = error_of(text)
    assert msg.startswith(f"Dockerfile:{line}: ")
    assert "heredoc" in msg
