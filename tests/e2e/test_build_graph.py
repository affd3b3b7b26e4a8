"""``rootless build`` over the stage graph: the cache keyed on content (a stage rebuilt into the
same files keeps what depends on it cached, as BuildKit and buildah do) and independent stages
built at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Rootless, inspect
from tests.e2e.test_build import cached, run_out, steps

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


# ---- independent stages at once ----------------------------------------------------------------------
WAIT_FOR = "i=0; while [ ! -e /sync/{other} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
MEET = f"""\
FROM busybox AS left
RUN --mount=type=cache,id=sync,target=/sync touch /sync/left; {WAIT_FOR.format(other="right")}; \
ls /sync > /seen; echo left-output
FROM busybox AS right
RUN --mount=type=cache,id=sync,target=/sync touch /sync/right; {WAIT_FOR.format(other="left")}; \
ls /sync > /seen; echo right-output
FROM busybox
COPY --from=left /seen /left-saw
COPY --from=right /seen /right-saw
"""


def test_independent_stages_run_at_once_and_their_output_stays_in_order(bb, tmp_path):
    """Two stages that read nothing from each other run at the same time: each one's RUN sees
    the marker the other wrote while it waits (one after the other, the first would wait in
    vain). The output reads as a build stage after stage: every stage's lines together, the
    steps numbered in order."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(MEET)
    r = build(bb, ctx, "-t", "met")
    assert run_out(bb, "met", "cat", "/left-saw", "/right-saw") == "left\nright\nleft\nright\n"
    lines = [line for line in r.err.splitlines() if line.startswith("STEP ") or line.endswith("-output")]
    assert [line.split(": ", 1)[0] if line.startswith("STEP") else line for line in lines] == [
        "STEP 1/7", "STEP 2/7", "left-output", "STEP 3/7", "STEP 4/7", "right-output",
        "STEP 5/7", "STEP 6/7", "STEP 7/7"]
    assert lines[0].endswith("FROM busybox AS left") and lines[3].endswith("FROM busybox AS right")

    r = build(bb, ctx, "--target", "right", "--no-cache", "-t", "alone")  # only what the target needs
    assert [s.split(": ", 1)[1] for s in steps(r.err)][0] == "FROM busybox AS right"
    assert len(steps(r.err)) == 2


FAIL_ONE = """\
FROM busybox AS slow
RUN --mount=type=cache,id=sync,target=/sync touch /sync/started; sleep 29.75; touch /sync/finished
FROM busybox AS failing
RUN --mount=type=cache,id=sync,target=/sync i=0; while [ ! -e /sync/started ] && [ $i -lt 600 ]; \
do sleep 0.1; i=$((i+1)); done; echo failing-output; exit 3
FROM busybox
COPY --from=slow /etc/passwd /a
COPY --from=failing /etc/passwd /b
"""


def test_a_failed_stage_stops_the_build_and_kills_the_other_stages_step(bb, tmp_path):
    """A stage fails while another's RUN step runs: the build fails at once with the failed
    step's error, the other step's container is killed (its command never finishes) and
    removed, no image is made, nothing is left (the fixture checks containers and files)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(FAIL_ONE)
    r = build(bb, ctx, "-t", "never", expect=1)
    errors = [line for line in r.err.splitlines() if line.startswith("rootless: error:")]
    assert len(errors) == 1 and "non-zero code: 3" in errors[0], r.err
    assert "Traceback" not in r.err and "failing-output" in r.err
    assert "No such image" in bb("image", "inspect", "never", expect=None).err
    mounts = bb.root / "build-cache-mounts"
    (sync,) = mounts.iterdir()
    assert (sync / "started").exists() and not (sync / "finished").exists()
    for _ in range(50):  # its command was killed with its container (if it had not, it would still sleep)
        if not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == b"sleep\x0029.75\x00"]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the other stage's RUN step still runs")


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


def test_independent_stages_at_once_through_the_api(api):
    """The Docker API's build (the classic builder's stream): the stages meet as on the CLI, each
    step's output in its place between Docker's numbered steps, a RUN's stderr still red."""
    from tests.e2e.test_api_images import _build, _text
    dockerfile = MEET.replace("; echo left-output", "; echo left-says $(ls /sync); echo left-err >&2")
    dockerfile = dockerfile.replace("; echo right-output", "; echo right-says $(ls /sync); echo right-err >&2")
    status, msgs = _build(api, "nocache=1&networkmode=none", dockerfile)
    assert status == 200, msgs
    out = _text(msgs)
    assert "left-says left right\n" in out and "right-says left right\n" in out, out
    at = [out.index(f"Step {i}/7 : ") for i in range(1, 8)]
    assert at == sorted(at), out
    assert at[1] < out.index("left-says") < at[2] < at[3] < out.index("right-says") < at[4], out
    streams = [m.get("stream") for m in msgs]
    assert "\x1b[91mleft-err\n\x1b[0m" in streams and "\x1b[91mright-err\n\x1b[0m" in streams, msgs
    assert "Successfully built" in out


def _start_parallel_build(rl: Rootless, tmp_path: Path, mark: str):
    """A build of two stages whose RUN steps sleep ``mark`` seconds, both running."""
    import subprocess

    from tests.conftest import rootless_argv, wait_for
    from tests.e2e.test_escape_build import _step_processes
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox AS one\nRUN sleep {mark}\nFROM busybox AS two\nRUN sleep {mark}\n"
                                    "FROM busybox\nCOPY --from=one /etc/passwd /a\nCOPY --from=two /etc/passwd /b\n")
    with open(tmp_path / "build.out", "wb") as out, open(tmp_path / "build.err", "wb") as err:
        proc = subprocess.Popen(rootless_argv() + ["build", "--network", "none", "-t", "never", str(ctx)],
                                env=rl.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    wait_for(lambda: len(_step_processes(mark)) == 2 or proc.poll() is not None, 60, "both RUN steps to start")
    assert proc.poll() is None, (tmp_path / "build.err").read_text()
    return proc


def test_a_signal_cancels_every_running_stage(busybox, tmp_path):
    import signal

    from tests.e2e.test_escape_build import _nothing_left
    mark = "60101"
    proc = _start_parallel_build(busybox, tmp_path, mark)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = (tmp_path / "build.err").read_text()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and err.splitlines()[-1] == "rootless: error: build cancelled by SIGTERM", err
    _nothing_left(busybox, mark)


def test_a_killed_build_takes_every_stage_with_it(busybox, tmp_path):
    """SIGKILL: the stages' processes see their build gone and cancel themselves (their steps
    killed, their containers removed); only the build's directory remains, for the sweep."""
    from tests.e2e.test_escape_build import _nothing_left
    mark = "60102"
    proc = _start_parallel_build(busybox, tmp_path, mark)
    proc.kill()
    proc.wait(timeout=20)
    _nothing_left(busybox, mark, tmp_allowed=True)
