"""Issue 22, builds, without namespaces: the context reads its Dockerfile and .dockerignore only
inside itself, a deeply nested substitution is a WordError (never a RecursionError), and the
default seccomp profile refuses AF_VSOCK as Moby's does."""

from __future__ import annotations

import json
import os

import pytest

from layers import shellwords
from layers.buildctx import BuildContext, ContextError

SECRET = "the-first-line-of-a-private-file"


def test_deep_nesting_is_a_word_error():
    deep = "${A:-" * 3000 + "x" + "}" * 3000
    with pytest.raises(shellwords.WordError) as e:
        shellwords.expand_word(deep, {})
    assert "nested more than" in e.value.message and len(e.value.message) < 300
    with pytest.raises(shellwords.WordError):
        shellwords.referenced(deep)
    with pytest.raises(shellwords.WordError):  # inside double quotes too
        shellwords.expand_word('"${A:-' * 3000 + "x" + '}"' * 3000, {})
    ok = "${A:-" * shellwords.MAX_NESTING + "x" + "}" * shellwords.MAX_NESTING
    assert shellwords.expand_word(ok, {}) == "x"


def test_read_text_follows_links_inside_the_context_only(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "real").write_text("FROM x\n")
    (ctx / "in").symlink_to("d/real")
    (ctx / "abs").symlink_to(secret)
    (ctx / "rel").symlink_to("../secret")
    (ctx / "out").symlink_to(tmp_path)
    os.mkfifo(ctx / "fifo")
    bctx = BuildContext(str(ctx))
    assert bctx.read_text("in", "the Dockerfile") == "FROM x\n"
    assert bctx.read_text("missing", "the Dockerfile") is None
    for rel in ("abs", "rel", "out/secret", "../secret", "d/../../secret"):
        with pytest.raises(ContextError) as e:
            bctx.read_text(rel, "the Dockerfile")
        assert "outside the build context" in e.value.message and SECRET not in e.value.message
    with pytest.raises(ContextError, match="not a regular file"):  # and no wait for a writer
        bctx.read_text("fifo", "the Dockerfile")
    with pytest.raises(ContextError, match="not a regular file"):
        bctx.read_text("d", "the Dockerfile")


def test_a_dockerignore_link_out_is_refused(tmp_path):
    (tmp_path / "secret").write_text("*\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / ".dockerignore").symlink_to("../secret")
    with pytest.raises(ContextError, match="outside the build context"):
        BuildContext.open(str(ctx))
    (ctx / ".dockerignore").unlink()
    (ctx / "ignore").write_text("skip\n")
    (ctx / ".dockerignore").symlink_to("ignore")
    assert BuildContext.open(str(ctx)).matcher.excluded("skip")


def test_the_default_profile_refuses_vsock_only():
    from rootless.runtime.seccompprofile import DEFAULT_PATH
    with open(DEFAULT_PATH) as f:
        profile = json.load(f)
    rules = [s for s in profile["syscalls"] if "socket" in s["names"]]
    assert all(s["names"] == ["socket"] for s in rules)  # never allowed without a condition
    allow = [s for s in rules if s["action"] == "SCMP_ACT_ALLOW"]
    assert allow == [{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}]
