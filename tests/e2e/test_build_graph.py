"""``rootless build`` over the stage graph: the cache keyed on content (a stage rebuilt into the
same files keeps what depends on it cached, as BuildKit and buildah do) and independent stages
built at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Rootless, inspect
from tests.e2e.test_build import cached, run_out

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    yield rl
    assert rl("ps", "-aq").out.split() == [], "a build step's container was left behind"
    assert not rl.leftovers()
    tmp = rl.root / "tmp"
    assert not [p for p in tmp.iterdir() if p.name.startswith("build-")] if tmp.is_dir() else True


def build(rl: Rootless, ctx: Path, *flags: str, expect: int = 0):
    return rl("build", "--network", "none", *flags, str(ctx), expect=expect, timeout=300)


def names(lines: list[str]) -> list[str]:
    return [s.split(": ", 1)[1] for s in lines]


# ---- the cache keyed on content --------------------------------------------------------------------
COPY_FROM = """\
FROM busybox AS compile
COPY source.txt /source.txt
RUN mkdir -p /out && cut -c1-8 /source.txt > /out/result
FROM busybox
COPY --from=compile /out/result /result
RUN cat /result /result > /twice
"""


def test_copy_from_a_rebuilt_stage_that_made_the_same_file_stays_cached(bb, tmp_path):
    """The bench's case: a stage's input changes (a comment of a source), its steps run again
    and make a byte-identical result (with new times): ``COPY --from`` and every later step
    come from the cache, so the image is the same one, id for id."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(COPY_FROM)
    (ctx / "source.txt").write_text("RESULT-1 a comment\n")
    first = build(bb, ctx, "-t", "first")
    assert cached(first.err) == []

    (ctx / "source.txt").write_text("RESULT-1 another comment\n")  # what the stage makes stays the same
    r = build(bb, ctx, "-t", "second")
    assert names(cached(r.err)) == ["COPY --from=compile /out/result /result", "RUN cat /result /result > /twice"]
    assert r.out == first.out  # the same image, id for id
    assert run_out(bb, "second", "cat", "/twice") == "RESULT-1\nRESULT-1\n"

    (ctx / "source.txt").write_text("RESULT-2 a comment\n")  # now the result changes: everything after reruns
    r = build(bb, ctx, "-t", "third")
    assert cached(r.err) == []
    assert run_out(bb, "third", "cat", "/twice") == "RESULT-2\nRESULT-2\n"
    assert inspect(bb, "third")["Id"] != inspect(bb, "first")["Id"]


FROM_STAGE = """\
FROM busybox AS base
ARG STAMP=1
RUN echo constant > /made && mkdir -p /dir && echo data > /dir/file
FROM base AS next
RUN cat /made /dir/file > /seen
COPY extra.txt /extra.txt
"""


def test_a_stage_from_a_rebuilt_stage_with_the_same_content_stays_cached(bb, tmp_path):
    """``FROM stage``: a changed ARG makes the stage's RUN run again; it makes the same files
    (new times), so the stage that starts from it keeps its steps cached; a real change to the
    stage's files is a miss."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(FROM_STAGE)
    (ctx / "extra.txt").write_text("extra\n")
    build(bb, ctx, "-t", "first")
    r = build(bb, ctx, "--build-arg", "STAMP=2", "-t", "second")
    assert names(cached(r.err)) == ["RUN cat /made /dir/file > /seen", "COPY extra.txt /extra.txt"]
    assert run_out(bb, "second", "cat", "/seen", "/extra.txt") == "constant\ndata\nextra\n"

    (ctx / "Dockerfile").write_text(FROM_STAGE.replace("echo data", "echo other"))
    r = build(bb, ctx, "-t", "third")
    assert cached(r.err) == []
    assert run_out(bb, "third", "cat", "/seen") == "constant\nother\n"
