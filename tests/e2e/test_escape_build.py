"""Issue 22, builds: a hostile context or Dockerfile gets nothing of the host, and a build dies
whole. A Dockerfile (or ``.dockerignore``) that is a symlink out of the context is refused
without a byte of its target read (the CLI and the API's tar contexts); ``socket(AF_VSOCK)`` is
refused by the default seccomp profile, as by Moby's; a 3000-deep ``${A:-${A:-...}}`` is one
error line; SIGINT and SIGTERM cancel a running ``RUN`` at once, and a SIGKILL of the build
takes its step's container with it."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import Rootless, rootless_argv, wait_for

pytestmark = pytest.mark.userns

SECRET = "root:the-first-line-of-a-private-file"


def _refused(r, *needles: str) -> str:
    assert r.code != 0, r
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    errors = [line for line in r.err.splitlines() if line.startswith("rootless: error:")]
    assert len(errors) == 1, r.err
    for needle in needles:
        assert needle in errors[0], r.err
    assert "the-first-line" not in r.err + r.out, "a file outside the context was read"
    return errors[0]


@pytest.fixture
def outside(tmp_path) -> Path:
    secret = tmp_path / "private" / "notes"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\nFROM busybox\n")
    return secret


# ---- item 6: the Dockerfile is read inside the context -----------------------------------------
@pytest.mark.parametrize("how", ["absolute", "relative", "via-directory"])
def test_a_dockerfile_symlinked_out_of_the_context_is_refused(rl, tmp_path, outside, how):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    if how == "absolute":
        (ctx / "Dockerfile").symlink_to(outside)
    elif how == "relative":
        (ctx / "Dockerfile").symlink_to("../private/notes")
    else:  # a directory on the way leaves the context
        (ctx / "docker").symlink_to(outside.parent)
        (ctx / "Dockerfile").symlink_to("docker/notes")
    _refused(rl("build", str(ctx), expect=None), "outside the build context")


def test_dash_f_inside_the_context_is_resolved_there_too(rl, tmp_path, outside):
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "Df").symlink_to(outside)
    (ctx / "dir").symlink_to(outside.parent)
    for given in (str(ctx / "sub" / "Df"), "sub/Df", str(ctx / "dir" / "notes")):
        _refused(rl("build", "-f", given, str(ctx), expect=None), "outside the build context")


def test_a_dockerignore_symlinked_out_of_the_context_is_refused(rl, tmp_path, outside):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    outside.write_text("[" + SECRET + "\n")  # would be a bad pattern, named in the error
    (ctx / ".dockerignore").symlink_to(outside)
    _refused(rl("build", str(ctx), expect=None), ".dockerignore", "outside the build context")


def test_links_inside_the_context_and_dash_f_outside_it_still_work(busybox, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "docker").mkdir(parents=True)
    (ctx / "docker" / "Dockerfile.real").write_text("FROM busybox\nLABEL via=link\n")
    (ctx / "Dockerfile").symlink_to("docker/Dockerfile.real")
    (ctx / ".dockerignore").symlink_to("docker/ignore")
    (ctx / "docker" / "ignore").write_text("secret\n")
    busybox("build", "-q", "-t", "linked", str(ctx))
    assert busybox("inspect", "-f", "{{.Config.Labels.via}}", "linked").out == "link\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "Dockerfile").write_text("FROM busybox\nLABEL via=outside\n")
    busybox("build", "-q", "-t", "outside", "-f", str(other / "Dockerfile"), str(ctx))
    assert busybox("inspect", "-f", "{{.Config.Labels.via}}", "outside").out == "outside\n"


def _tar(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"FROM busybox\n") if info.isfile() else None)
    return buf.getvalue()


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_a_tar_on_stdin_with_a_dockerfile_linked_out_is_refused(rl, outside):
    for body in (_tar([_link("Dockerfile", str(outside))]),
                 _tar([_link("d", str(outside.parent)), _link("Dockerfile", "d/notes")])):
        _refused(rl("build", "-", input=body, expect=None), "outside the build context")


def test_the_api_refuses_a_dockerfile_member_linked_out_of_the_context(busybox, outside):
    from tests.apiservice import ApiService, UnixHTTPConnection
    service = ApiService(busybox)
    try:
        for body, query in ((_tar([_link("Dockerfile", str(outside))]), ""),
                            (_tar([_link("Dockerfile", "../../../../../../../" + str(outside))]), ""),
                            (_tar([_link("d", str(outside.parent)), _link("Dockerfile", "d/notes")]), ""),
                            (_tar([_link("sub", str(outside.parent))]), "?dockerfile=sub/notes")):
            conn = UnixHTTPConnection(str(service.socket), timeout=120)
            try:
                conn.request("POST", "/build" + query, body=body, headers={"Content-Type": "application/x-tar"})
                resp = conn.getresponse()
                raw = resp.read().decode()
            finally:
                conn.close()
            assert "the-first-line" not in raw, raw
            if resp.status == 200:
                last = json.loads(raw.splitlines()[-1])
                assert "outside the build context" in last.get("error", ""), raw
            else:
                assert resp.status == 400 and "outside the build context" in json.loads(raw)["message"], raw
    finally:
        service.stop()


# ---- item 7: vsock ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vsock_probe(tmp_path_factory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc is missing: it builds the static probe")
    d = tmp_path_factory.mktemp("vsock")
    (d / "probe.c").write_text(
        "#include <errno.h>\n#include <stdio.h>\n#include <string.h>\n#include <sys/socket.h>\n"
        "int main(void) {\n  int families[] = {1, 2, 10, 40};\n"
        "  for (int i = 0; i < 4; i++) {\n    int fd = socket(families[i], SOCK_STREAM, 0);\n"
        "    printf(\"%d %s\\n\", families[i], fd >= 0 ? \"ok\" : strerror(errno));\n  }\n  return 0;\n}\n")
    cp = subprocess.run(["gcc", "-static", "-O", "-o", str(d / "probe"), str(d / "probe.c")],
                        capture_output=True, text=True)
    if cp.returncode != 0:
        pytest.skip(f"gcc -static failed (no static libc?): {cp.stderr.strip()[-200:]}")
    return d / "probe"


def test_the_default_seccomp_profile_refuses_vsock(busybox, vsock_probe):
    """Moby's profile allows socket() for every family but AF_VSOCK (40): vsock reaches the host
    (and its VMs) through any network namespace. Unix, IPv4 and IPv6 sockets still work."""
    r = busybox("run", "--rm", "--network", "none", "-v", f"{vsock_probe}:/probe:ro", "busybox", "/probe")
    lines = dict(line.split(" ", 1) for line in r.out.splitlines())
    assert lines["1"] == "ok" and lines["2"] == "ok", r.out
    assert lines["40"] == "Operation not permitted", r.out  # EPERM, as Moby says it
    unconfined = busybox("run", "--rm", "--network", "none", "--security-opt", "seccomp=unconfined",
                         "-v", f"{vsock_probe}:/probe:ro", "busybox", "/probe").out
    assert "1 ok" in unconfined  # the probe itself works: only the filter refuses vsock


# ---- nesting -----------------------------------------------------------------------------------------
def test_a_3000_deep_substitution_is_one_error_line(rl, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    deep = "${A:-" * 3000 + "x" + "}" * 3000
    (ctx / "Dockerfile").write_text(f"FROM scratch\nARG X={deep}\n")
    r = rl("build", str(ctx), expect=None)
    assert r.code == 125, r.err[-500:]
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err[-2000:]
    errors = [line for line in r.err.splitlines() if line.startswith("rootless: error:")]
    assert len(errors) == 1 and errors[0].startswith("rootless: error: Dockerfile:2: ") and "nested" in errors[0], \
        r.err[-2000:]
    assert len(errors[0]) < 300
# ---- item 10: a build's step dies with it ----------------------------------------------------------
def _step_processes(mark: str) -> list[int]:
    """Processes of this user (and its subordinate ids) running ``sleep MARK``."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[:2] in ([b"sleep", mark.encode()], [b"/bin/sleep", mark.encode()]):
            found.append(int(d))
    return found


def _start_build(rl: Rootless, tmp_path: Path, mark: str) -> subprocess.Popen:
    """The build, its output in files: a step's keeper that outlives the build (the bug) would
    hold pipes open for ever."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo step-started; sleep {mark}\n")
    with open(tmp_path / "build.out", "wb") as out, open(tmp_path / "build.err", "wb") as err:
        proc = subprocess.Popen(rootless_argv() + ["build", "--network", "none", "-t", "never", str(ctx)],
                                env=rl.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    wait_for(lambda: _step_processes(mark) or proc.poll() is not None, 60, "the RUN step to start")
    assert proc.poll() is None, (tmp_path / "build.err").read_text()
    return proc


def _store_processes(rl: Rootless) -> list[int]:
    """Processes started for this store (keepers inherit ROOTLESS_ROOT), pytest's own excepted."""
    found = []
    needle = f"ROOTLESS_ROOT={rl.root}\0".encode()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if needle in f.read():
                        found.append(int(d))
            except OSError:
                continue
    return found


def _nothing_left(rl: Rootless, mark: str, tmp_allowed: bool = False) -> None:
    wait_for(lambda: not _step_processes(mark), 10, "the step's processes to end")
    wait_for(lambda: not _store_processes(rl), 10, "the step's keeper to end")
    assert rl("ps", "-aq").out.split() == [], "the step's container record remains"
    containers = rl.root / "containers"
    assert not (containers.is_dir() and [p for p in containers.iterdir() if not p.name.startswith(".")])
    tmp = rl.root / "tmp"
    builds = [p.name for p in tmp.iterdir() if p.name.startswith("build-")] if tmp.is_dir() else []
    if not tmp_allowed:
        assert builds == []
    assert "never" not in rl("images").out


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_a_running_step_at_once(busybox, tmp_path, sig, code):
    mark = str(60000 + sig)
    proc = _start_build(busybox, tmp_path, mark)
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"the build went on after {sig.name}")
    assert time.monotonic() - t0 < 10
    err = (tmp_path / "build.err").read_text()
    assert proc.returncode == code, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.splitlines()[-1] == f"rootless: error: build cancelled by {sig.name}", err
    _nothing_left(busybox, mark)


def test_a_killed_build_takes_its_step_with_it(busybox, tmp_path):
    """SIGKILL leaves no time to tidy: the step's keeper notices its build is gone, kills the
    step and removes its container; only the build's directory (tmp/build-PID-*) remains, named
    for the sweep of ``system prune``."""
    mark = "60009"
    proc = _start_build(busybox, tmp_path, mark)
    proc.kill()
    proc.wait(timeout=20)
    _nothing_left(busybox, mark, tmp_allowed=True)
    tmp = busybox.root / "tmp"
    left = [p.name for p in tmp.iterdir() if p.name.startswith("build-")] if tmp.is_dir() else []
    assert all(name.startswith(f"build-{proc.pid}-") for name in left), left


# ---- ADD of a local archive and the context's tar are archives, not layers ----------------------
def test_add_of_a_tar_with_whiteout_names_builds(busybox, tmp_path):
    """ADD unpacks a local tar as an archive, as Docker does: a member named ``.wh.NAME`` is a file
    there, not a whiteout the build's helper must make (it failed: "Operation not permitted").
    Committed into a layer, such a name means a whiteout, as in Docker's layers; so does one in a
    context tar."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("sub/.wh.nothing", "sub/.wh..wh..opq", "keep.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"wh\n"))
    (ctx / "files.tar").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text("FROM busybox\nADD files.tar /x/\nRUN cat /x/keep.txt > /x/seen\n")
    busybox("build", "-q", "-t", "added", str(ctx))
    assert busybox("run", "--rm", "added", "cat", "/x/seen").out == "wh\n"

    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY keep.txt /ctx/\n"), (".wh.other", b"wh\n"),
                           ("keep.txt", b"kept\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    busybox("build", "-q", "-t", "ctxwh", "-", input=body.getvalue())
    assert busybox("run", "--rm", "ctxwh", "cat", "/ctx/keep.txt").out == "kept\n"
