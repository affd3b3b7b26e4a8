"""``rootless build``: the Dockerfiles of tests/dockerfiles built as the unprivileged user and
checked by running the images; the cache, multi-stage builds, .dockerignore, failures, context
escapes, owners from the subordinate range, stdin contexts and concurrent builds."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import io
import json
import lzma
import os
import re
import shutil
import tarfile
import threading
from pathlib import Path

import pytest

from tests.conftest import Rootless, inspect

pytestmark = pytest.mark.userns

DOCKERFILES = Path(__file__).resolve().parents[1] / "dockerfiles"
SHA256_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    yield rl
    assert rl("ps", "-aq").out.split() == [], "a build step's container was left behind"
    assert not rl.leftovers()
    tmp = rl.root / "tmp"
    assert not [p for p in tmp.iterdir() if p.name.startswith("build-")] if tmp.is_dir() else True


def context(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / f"ctx-{name}"
    shutil.copytree(DOCKERFILES / name, dest, symlinks=True)
    return dest


def build(rl: Rootless, ctx: Path, *flags: str, expect: int = 0):
    return rl("build", *flags, str(ctx), expect=expect, timeout=300)


def steps(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("STEP ")]


def cached(err: str) -> list[str]:
    """The STEP lines whose step came from the cache."""
    out, last = [], None
    for line in err.splitlines():
        if line.startswith("STEP "):
            last = line
        elif line.startswith("--> Using cache") and last:
            out.append(last)
    return out


def one_error(r, needle: str) -> str:
    """The build's one error line (after the steps it ran); no traceback."""
    errors = [line for line in r.err.splitlines() if line.startswith("rootless: error:")]
    assert len(errors) == 1 and needle in errors[0], r.err
    assert "Traceback" not in r.err
    return errors[0]


def run_out(rl: Rootless, *args: str) -> str:
    return rl("run", "--rm", "--network", "none", *args).out


# ---- every instruction ------------------------------------------------------------------------
class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A web server on 127.0.0.1 serving a directory (ADD's URL sources)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **kw: _Files(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _archive_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("top.txt", b"from the archive\n"), ("sub/deep.txt", b"deep\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o640
            info.uid = info.gid = 3000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def every_context(tmp_path: Path) -> Path:
    ctx = context(tmp_path, "every-instruction")
    raw = _archive_bytes()
    (ctx / "archive.tar.gz").write_bytes(gzip.compress(raw))
    (ctx / "archive.tar.bz2").write_bytes(bz2.compress(raw))
    (ctx / "archive.tar.xz").write_bytes(lzma.compress(raw))
    import zstandard
    (ctx / "archive.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (ctx / "notes.txt.gz").write_bytes(gzip.compress(b"a compressed file that is not a tar\n"))
    return ctx


def test_every_instruction(bb, tmp_path, http_dir):
    www, url = http_dir
    payload = b"downloaded over http\n"
    (www / "payload.txt").write_bytes(payload)
    ctx = every_context(tmp_path)
    r = build(bb, ctx, "-t", "every", "--build-arg", "SUFFIX=x", "--build-arg", f"URL={url}/payload.txt",
              "--build-arg", "URL_SUM=sha256:" + hashlib.sha256(payload).hexdigest())
    assert SHA256_ID.match(r.out.strip()), r.out  # stdout: the id alone
    assert len(steps(r.err)) == 36 and steps(r.err)[0] == "STEP 1/36: FROM ${BASE}:${TAG:-latest} AS final"
    assert "Successfully tagged every:latest" in r.err

    cfg = inspect(bb, "every")["Config"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["APP_HOME"] == "/srv/app" and env["MODE"] == "hello-set" and env["LEGACY"] == "legacy form value"
    assert "SUFFIX" not in env and "URL" not in env  # build args are not the image's environment
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "1000:1000"
    assert cfg["Volumes"] == {"/srv/app/cache": {}}
    assert cfg["Labels"] == {"org.example.title": "every instruction", "org.example.multi word": "yes"}
    assert cfg["StopSignal"] == "SIGQUIT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "test -f /srv/app/built.txt"], "Interval": 5_000_000_000,
                                  "Timeout": 2_000_000_000, "Retries": 3}
    assert cfg["OnBuild"] == ["RUN echo triggered > /tmp/onbuild.txt"]
    assert cfg["Entrypoint"] == ["/srv/app/bin/run.sh"] and cfg["Cmd"] == ["default-arg"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert inspect(bb, "every")["Author"] == "Jane Doe <jane@example.org>"

    # the image runs as `docker run` runs it: entrypoint + cmd, as the USER
    out = run_out(bb, "every")
    assert "entrypoint args: default-arg" in out and "user: 1000:1000" in out

    def cat(path: str) -> str:
        return run_out(bb, "--user", "0", "--entrypoint", "cat", "every", path)
    assert cat("/srv/app/built.txt") == "built as 0 in /srv/app mode=hello-set suffix=x\n"
    assert cat("/srv/app/exec.txt") == "exec form\n"
    assert cat("/srv/app/heredoc.txt") == "heredoc line 1\nheredoc line 2\n"
    assert cat("/srv/app/heredoc-stdin.txt") == "the shell reads this heredoc\n"
    assert cat("/srv/app/inline.txt") == "inline hello\n"
    assert cat("/srv/app/cache-runs.txt") == "cached\n"
    assert cat("/srv/app/bound.txt") == "file a\n"
    assert "e" in cat("/srv/app/shell.txt").split()[-1]  # $- of `sh -ec`: the SHELL's options are in effect
    assert cat("/srv/downloaded/payload.txt") == payload.decode()
    for kind in ("gz", "bz2", "xz", "zst"):
        assert cat(f"/srv/app/unpacked/{kind}/top.txt") == "from the archive\n"
        assert cat(f"/srv/app/unpacked/{kind}/sub/deep.txt") == "deep\n"
    ls = run_out(bb, "--entrypoint", "ls", "every", "-lnR", "/srv")
    assert re.search(r"-rwxr-xr-x\s+1 0\s+0 .* run\.sh", ls), ls  # --chmod (the file is 0644)
    assert re.search(r"-rw-r-----\s+1 3000\s+3000 .* top\.txt", ls), ls  # ADD keeps the archive's owners
    assert re.search(r"-rw-r--r--\s+1 1000\s+1000 .* c\.dat", ls), ls  # --chown of a directory's files
    assert re.search(r"-rw-------\s+1 0\s+0 .* payload\.txt", ls), ls  # a URL's file is 0600
    assert re.search(r"\s2000\s+2000 .* notes\.txt\.gz", ls), ls  # a compressed non-tar is copied as is
    data = run_out(bb, "--entrypoint", "ls", "every", "/srv/app/data")
    assert data.split() == ["a.txt", "b.txt"]  # the glob left c.dat out

    # the history says what made each layer
    hist = bb("history", "--no-trunc", "every").out
    assert "COPY --chmod=0755 run.sh ./bin/" in hist or "COPY run.sh" in hist
    assert "|4 GREETING=hello SUFFIX=x URL=" in hist  # RUN lines name the build args they saw, as Docker's do


def test_onbuild_triggers_run_in_the_child_and_are_not_inherited(bb, tmp_path, http_dir):
    www, url = http_dir
    (www / "p").write_bytes(b"x")
    build(bb, every_context(tmp_path), "-q", "-t", "every", "--build-arg", f"URL={url}/p",
          "--build-arg", "URL_SUM=sha256:" + hashlib.sha256(b"x").hexdigest())
    r = build(bb, context(tmp_path, "onbuild-child"), "-t", "child")
    assert "running ONBUILD trigger: RUN echo triggered > /tmp/onbuild.txt" in r.err
    assert run_out(bb, "--entrypoint", "cat", "child", "/tmp/onbuild.txt", "/tmp/child.txt") == "triggered\nchild\n"
    assert inspect(bb, "child")["Config"].get("OnBuild") in (None, [])


# ---- multi-stage ------------------------------------------------------------------------------
def test_multistage_copies_from_stages_and_images_and_skips_unneeded_stages(bb, tmp_path):
    ctx = context(tmp_path, "multistage")
    r = build(bb, ctx, "-t", "multi")
    assert "must not be built" not in r.err + r.out
    assert not any("AS broken" in s or "AS tester" in s for s in steps(r.err))
    assert run_out(bb, "multi") == "compiled\n"
    ls = run_out(bb, "multi", "ls", "-ln", "/from-dir/sub/artifact", "/chowned", "/copied-busybox")
    assert re.search(r"1234\s+1234 .* /from-dir/sub/artifact", ls), ls  # COPY --from keeps owners
    assert re.search(r"\s42\s+42 .* /chowned", ls), ls
    assert re.search(r"-rwxr-xr-x .* /copied-busybox", ls), ls
    # only the final stage's layers: busybox's one plus the four COPYs
    assert len(inspect(bb, "multi")["RootFS"]["Layers"]) == 1 + 4

    r = build(bb, ctx, "--target", "tester", "-t", "tester")
    assert [s.split(": ", 1)[1] for s in steps(r.err)] == [
        "FROM busybox AS builder", "WORKDIR /work",
        "RUN echo compiled > artifact && mkdir -p out/sub && cp artifact out/sub/ && chown 1234:1234 out/sub/artifact",
        "FROM builder AS tester", "RUN test -f /work/artifact && echo tested > /work/tested"]
    assert run_out(bb, "tester", "cat", "/work/tested") == "tested\n"

    r = build(bb, ctx, "--target", "broken", expect=1)
    assert "this stage must not be built" in r.err
    assert "Dockerfile:7" in r.err and "non-zero code: 7" in r.err
    r = build(bb, ctx, "--target", "nosuch", expect=125)
    assert "target stage 'nosuch' could not be found" in one_error(r, "could not be found")


def test_run_heredoc_with_its_own_interpreter(bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN <<EOT\n#!/bin/busybox sh\necho \"ran as $0\" > /shebang\nEOT\n")
    build(bb, ctx, "-t", "shebang")
    assert run_out(bb, "shebang", "cat", "/shebang") == "ran as /dev/pipes/EOT\n"
    assert "pipes" not in run_out(bb, "shebang", "ls", "/dev")  # the script was mounted, never in a layer


# ---- .dockerignore ------------------------------------------------------------------------------
def test_dockerignore(bb, tmp_path):
    ctx = context(tmp_path, "dockerignore")
    build(bb, ctx, "-t", "ign")
    listed = set(run_out(bb, "ign", "cat", "/list").split())
    assert {"/ctx/README.md", "/ctx/app.py", "/ctx/a/b/keep.txt", "/ctx/build/keep/x", "/ctx/Dockerfile"} <= listed
    for gone in ("/ctx/NOTES.md", "/ctx/secret", "/ctx/secret/key", "/ctx/a/b/c.tmp", "/ctx/build/junk"):
        assert gone not in listed
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret/key /key\n")
    r = build(bb, ctx, expect=125)
    assert "excluded by .dockerignore" in one_error(r, "excluded")


# ---- failures ----------------------------------------------------------------------------------
def test_failed_run_says_dockers_sentence(bb, tmp_path):
    """The line names the step, then says Docker's sentence, which clients match on: the command
    as it ran (the shell form through /bin/sh -c, the exec form as given)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 1\n")
    err = one_error(build(bb, ctx, expect=1), "The command")
    assert err.startswith("rootless: error: Dockerfile:2: ") and \
        err.endswith("The command '/bin/sh -c exit 1' returned a non-zero code: 1"), err
    (ctx / "Dockerfile").write_text('FROM busybox\nRUN ["sh", "-c", "exit 4"]\n')
    one_error(build(bb, ctx, expect=1), "The command 'sh -c exit 4' returned a non-zero code: 4")


def test_failing_run_names_the_step_and_code_and_leaves_nothing(bb, tmp_path):
    ctx = context(tmp_path, "failing")
    r = build(bb, ctx, "-t", "failing", expect=1)
    assert "output of the failing step" in r.err and "to stderr" in r.err
    err = one_error(r, "non-zero code")
    assert "Dockerfile:3" in err and "non-zero code: 3" in err
    assert "never" not in r.err
    assert "failing" not in bb("images", "--format", "{{.Repository}}").out
    with open("/proc/self/mountinfo") as f:
        assert str(bb.root) not in f.read()
    # -q: nothing but the failure (the step's output is shown then)
    r = build(bb, ctx, "-q", "-t", "failing", expect=1)
    assert r.out == "" and "output of the failing step" in r.err


@pytest.mark.parametrize("text, where, message", [
    ("FROM busybox\nRUN true\nFOO bar\n", "Dockerfile:3", "unknown instruction: FOO"),
    ("FROM busybox\nRUN <<EOF\necho never ends\n", "Dockerfile:", "unterminated heredoc"),
    ("RUN true\nFROM busybox\n", "Dockerfile:1", "before the first FROM"),
    ("FROM busybox\nCOPY --form=x a b\n", "Dockerfile:2", "unknown flag: --form"),
    ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2", "COPY requires at least two arguments"),
    ("FROM busybox\nENV X=${Y:?must_be_set}\n", "Dockerfile:2", "must_be_set"),
    ("FROM busybox AS 1bad\n", "Dockerfile:1", "invalid name for build stage"),
    ("FROM busybox\nHEALTHCHECK --interval=soon CMD true\n", "Dockerfile:2", "invalid duration"),
    ("FROM busybox\nEXPOSE 99999\n", "Dockerfile:2", "invalid port range"),
    ("FROM busybox\nSTOPSIGNAL SIGNOPE\n", "Dockerfile:2", "invalid signal"),
])
def test_broken_dockerfiles_are_named_by_file_and_line(bb, tmp_path, text, where, message):
    ctx = tmp_path / "broken"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(text)
    r = build(bb, ctx, "-t", "broken", expect=125)
    err = one_error(r, message)
    assert where in err, err
    assert "Traceback" not in r.err
    assert "broken" not in bb("images").out


def test_context_escapes_are_refused(bb, tmp_path):
    ctx = context(tmp_path, "escape")
    (tmp_path / "outside").write_text("secret\n")
    (ctx / "passwd-link").symlink_to("/etc/passwd")
    (ctx / "up-link").symlink_to("../outside")
    (ctx / "inner").mkdir()
    (ctx / "inner" / "rel-out").symlink_to("../../outside")
    for src, needle in (("../outside", "outside the build context"), ("/../outside", "outside the build context"),
                        ("passwd-link", "points outside the build context"),
                        ("up-link", "points outside the build context"),
                        ("inner/rel-out", "points outside the build context")):
        r = build(bb, ctx, "--build-arg", f"SRC={src}", expect=125)
        assert needle in one_error(r, needle), src
    # a symlink inside a copied directory is copied as a link, never followed
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY inner /inner\n")
    build(bb, ctx, "-t", "links")
    assert run_out(bb, "links", "readlink", "/inner/rel-out") == "../../outside\n"


def test_files_of_other_users_and_setuid_binaries(bb, tmp_path):
    build(bb, context(tmp_path, "owners"), "-t", "owners")
    ls = run_out(bb, "--user", "0", "owners", "ls", "-ln", "/home/app", "/nobodys", "/usr/local/bin/suid")
    assert re.search(r"1000\s+1000 .* owned\n", ls), ls
    assert re.search(r"1000\s+1000 .* owned\.txt", ls), ls  # COPY --chown by name
    assert re.search(r"1000\s+1000 .* made-by-app", ls), ls  # RUN as USER app
    assert re.search(r"65534\s+65534 .* /nobodys", ls), ls
    assert re.search(r"-rwsr-xr-x .* /usr/local/bin/suid", ls), ls
    assert run_out(bb, "owners", "cat", "whoami") == "1000\n"
    assert run_out(bb, "owners", "id", "-u") == "1000\n"


# ---- the cache ------------------------------------------------------------------------------------
def test_cache_hits_and_exactly_the_steps_after_a_change_rerun(bb, tmp_path):
    ctx = context(tmp_path, "cache")
    first = build(bb, ctx, "-t", "c")
    assert cached(first.err) == []
    again = build(bb, ctx, "-t", "c")
    assert again.out == first.out  # everything cached: the same image, id for id
    assert len(cached(again.err)) == 5  # the RUN and COPY steps
    os.utime(ctx / "two.txt", (1, 1))  # metadata alone (mtime) does not change what COPY copies
    assert len(cached(build(bb, ctx).err)) == 5

    (ctx / "two.txt").write_text("two, changed\n")
    r = build(bb, ctx, "-t", "c")
    assert [s.split(": ", 1)[1] for s in cached(r.err)] == [
        'RUN echo "first step" > /first', "COPY one.txt /one.txt", 'RUN echo "flavour $FLAVOUR" > /flavour']
    assert "ARG FLAVOUR=plain" in r.err
    assert run_out(bb, "c", "cat", "/both") == "one\ntwo, changed\n"

    os.chmod(ctx / "one.txt", 0o600)  # a mode is part of what is copied
    r = build(bb, ctx, "-t", "c")
    assert [s.split(": ", 1)[1] for s in cached(r.err)] == ['RUN echo "first step" > /first']

    r = build(bb, ctx, "--build-arg", "FLAVOUR=spicy", "-t", "c")
    assert [s.split(": ", 1)[1] for s in cached(r.err)] == ['RUN echo "first step" > /first', "COPY one.txt /one.txt"]
    assert run_out(bb, "c", "cat", "/flavour") == "flavour spicy\n"

    r = build(bb, ctx, "--no-cache", "-t", "c")
    assert cached(r.err) == []


def test_concurrent_builds_share_the_cache(bb, tmp_path):
    import subprocess
    ctx = context(tmp_path, "cache")
    from tests.conftest import rootless_argv
    procs = [subprocess.Popen(rootless_argv() + ["build", "-q", "-t", f"par{i}", str(ctx)], env=bb.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for i in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    for i in range(3):
        assert run_out(bb, f"par{i}", "cat", "/both") == "one\ntwo\n"
    r = build(bb, ctx, "-t", "after")
    assert len(cached(r.err)) == 5


def test_builder_prune(bb, tmp_path):
    ctx = context(tmp_path, "cache")
    build(bb, ctx, "-q", "-t", "c")
    assert re.search(r"^Build Cache\s+6\s+5\s", bb("system", "df").out, re.M)  # 5 steps made layers "c" uses
    r = bb("builder", "prune", "-f")
    assert "Deleted build cache objects: 6" in r.out  # ARG, RUN, COPY, RUN, COPY, RUN
    r = build(bb, ctx, "-t", "c")
    assert cached(r.err) == []
    assert run_out(bb, "c", "cat", "/both") == "one\ntwo\n"


def test_cache_from_and_add_host(bb, tmp_path):
    """``--cache-from``: only those images' steps serve (a missing one: none, though the local
    cache has them all); ``--add-host``: the RUN steps' /etc/hosts."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV FOO=bar\nRUN touch /baz\nRUN grep -c build.test /etc/hosts\n")
    build(bb, ctx, "--add-host", "build.test:127.0.0.1", "-t", "first")
    r = build(bb, ctx, "--add-host", "build.test:127.0.0.1", "--cache-from", "first", "-t", "second")
    assert len(cached(r.err)) == 2 and r.out == bb("inspect", "-f", "{{.Id}}", "first").out  # the RUN steps
    r = build(bb, ctx, "--add-host", "build.test:127.0.0.1", "--cache-from", "nosuchimage", "-t", "third")
    assert cached(r.err) == [] and "1\n" in r.err
    r = build(bb, ctx, "--add-host", "nonsense", expect=125)
    one_error(r, "invalid --add-host")


# ---- other ways in and out ----------------------------------------------------------------------
def test_dockerfile_on_stdin_and_tar_context_on_stdin(bb, tmp_path):
    r = bb("build", "-t", "stdin", "-", input="FROM busybox\nRUN echo from stdin > /x\nCMD [\"cat\", \"/x\"]\n")
    assert run_out(bb, "stdin") == "from stdin\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY hello /hello\n"), ("hello", b"hi from a tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    r = bb("build", "-q", "-t", "tarctx", "-", input=buf.getvalue())
    assert SHA256_ID.match(r.out.strip())
    assert run_out(bb, "tarctx", "cat", "/hello") == "hi from a tar\n"
    ctx = context(tmp_path, "cache")
    other = tmp_path / "Other.dockerfile"
    other.write_text("FROM busybox\nCOPY one.txt /renamed\n")
    bb("build", "-f", str(other), "-t", "otherfile", str(ctx))
    assert run_out(bb, "otherfile", "cat", "/renamed") == "one\n"
    bb("build", "-f", "-", "-t", "dashf", str(ctx), input="FROM busybox\nCOPY two.txt /t\n")
    assert run_out(bb, "dashf", "cat", "/t") == "two\n"


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_tar_context_on_stdin_compressed_as_the_api_takes_it(bb, compress):
    """``rootless build -`` takes every compression the API's /build takes (the CLI read a .tar.xz
    or .tar.bz2 as a Dockerfile's text)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY hello /hello\n"), ("hello", b"hi, compressed\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    r = bb("build", "-q", "-t", "packed", "-", input=compress(buf.getvalue()))
    assert SHA256_ID.match(r.out.strip())
    assert run_out(bb, "packed", "cat", "/hello") == "hi, compressed\n"


def test_labels_quiet_and_save_keep_the_config(bb, tmp_path):
    ctx = context(tmp_path, "cache")
    r = build(bb, ctx, "-q", "-t", "lab:1", "-t", "lab:2", "--label", "team=core", "--label", "empty=")
    assert SHA256_ID.match(r.out.strip()) and r.err == ""
    img = inspect(bb, "lab:1")
    assert img["Id"] == r.out.strip() and set(img["RepoTags"]) == {"lab:1", "lab:2"}
    assert img["Config"]["Labels"] == {"team": "core", "empty": ""}
    archive = tmp_path / "lab.tar"
    bb("save", "-o", str(archive), "lab:1")
    other = Rootless(tmp_path / "elsewhere")
    other("load", "-i", str(archive))
    assert inspect(other, "lab:1")["Id"] == img["Id"]  # the same config, byte for byte
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        config = json.load(tf.extractfile(manifest[0]["Config"]))
    assert config["config"]["Labels"]["team"] == "core" and len(config["history"]) == 1 + 6


# ---- base images from a registry (tests/e2e/conftest.py); pushing what was built -----------------
def test_from_pulls_what_is_missing_pull_always_pulls_and_the_result_pushes(rl, images, registry, tmp_path):
    publisher = Rootless(tmp_path / "publisher")
    publisher.configure(insecure=(registry.host,))
    publisher.load(images, "busybox")
    base = f"{registry.host}/lib/base:1"
    publisher("push", "busybox", base)

    rl.configure(insecure=(registry.host,))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN cat /marker 2>/dev/null || echo no-marker > /marker\n")
    r = build(rl, ctx, "-t", "child")  # not here: pulled, as `docker build` does
    assert "Unable to find image" in r.err
    assert run_out(rl, "child", "cat", "/marker") == "no-marker\n"

    # the registry's tag moves on; the local base stays what it was until --pull
    (tmp_path / "newbase").mkdir()
    (tmp_path / "newbase" / "Dockerfile").write_text("FROM busybox\nRUN echo new-base > /marker\n")
    publisher("build", "-q", "-t", base, str(tmp_path / "newbase"))
    publisher("push", base)
    r = build(rl, ctx, "-t", "child")
    assert "Unable to find image" not in r.err and "Using cache" in r.err
    assert run_out(rl, "child", "cat", "/marker") == "no-marker\n"
    r = build(rl, ctx, "--pull", "-t", "child")
    assert "Using cache" not in r.err  # a new base: nothing of the old chain applies
    assert run_out(rl, "child", "cat", "/marker") == "new-base\n"

    # what was built pushes as it is: pulled elsewhere it is the same image
    built = f"{registry.host}/lib/child:1"
    rl("tag", "child", built)
    rl("push", built)
    publisher("pull", built)
    assert inspect(publisher, built)["Id"] == inspect(rl, "child")["Id"]
    assert run_out(publisher, built, "cat", "/marker") == "new-base\n"


def test_the_embedded_demo_image_is_what_examples_demo_builds(rl, tmp_path):
    """`just embed-demo`'s build, offline: FROM scratch, the host's busybox, the greeting."""
    repo = DOCKERFILES.parents[1]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(repo / "examples" / "demo", arcname=".")
        tf.add(os.path.realpath("/bin/busybox"), arcname="busybox")
    r = rl("build", "--network", "none", "-q", "-t", "demo-built", "-", input=buf.getvalue(), timeout=300)
    assert SHA256_ID.match(r.out.strip())
    out = run_out(rl, "demo-built")
    assert "Hello from a rootless container!" in out and "uid=0(root)" in out
    rl("load", "-i", repo / "rootless" / "data" / "demo-image.tar.gz")
    built, embedded = inspect(rl, "demo-built"), inspect(rl, "rootless-demo")
    for key in ("Cmd", "Entrypoint", "Env", "Labels", "WorkingDir", "User"):
        assert built["Config"].get(key) == embedded["Config"].get(key), key
    assert len(built["RootFS"]["Layers"]) == len(embedded["RootFS"]["Layers"])


@pytest.mark.parametrize("method", ["fuse", "copy"])
def test_other_root_filesystem_methods(tmp_path, images, method):
    """fuse-overlayfs builds as the kernel's overlay does; the copy fallback says it cannot build."""
    rl = Rootless(tmp_path / "store", overlay=method)
    rl.load(images, "busybox")
    ctx = context(tmp_path, "multistage")
    if method == "copy":
        r = rl("build", str(ctx), expect=125)
        assert "building needs an overlay filesystem" in one_error(r, "overlay")
        return
    build(rl, ctx, "-t", "multi")
    assert run_out(rl, "multi") == "compiled\n"
    ls = run_out(rl, "multi", "ls", "-ln", "/from-dir/sub/artifact", "/chowned")
    assert re.search(r"1234\s+1234 .* /from-dir/sub/artifact", ls) and re.search(r"\s42\s+42 .* /chowned", ls), ls
    assert rl("ps", "-aq").out == "" and not rl.leftovers()
