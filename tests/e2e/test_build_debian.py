"""Real images, not only busybox: a Debian root filesystem made by ``mmdebstrap`` (device nodes,
setuid files, many owners, apt's ``_apt`` user) is imported, and a Dockerfile that runs
``apt-get install`` against the Debian mirror this machine uses is built on it, as the
unprivileged user, with RUN on the default network (slirp4netns).

The base tarball is made once and kept in ``~/.cache/rootless-tests`` (outside the checkout)
for a week. Without a mirror that answers the apt test skips, saying so; without mmdebstrap
it skips too, except in CI, where setting the host up is part of the job and a skip would
hide a broken set-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Rootless

pytestmark = pytest.mark.userns

DOCKERFILES = Path(__file__).resolve().parents[1] / "dockerfiles"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rootless-tests"
MAX_AGE = 7 * 86400


def _mirror() -> str | None:
    """The first Debian mirror of this machine's apt sources."""
    texts = []
    for path in ["/etc/apt/sources.list", *sorted(str(p) for p in Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(Path(path).read_text())
        except OSError:
            continue
    for text in texts:
        m = re.search(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(https?://\S+)", text, re.M)
        if m:
            return m.group(1).rstrip("/")
    return None


def _mirror_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/dists/bookworm/Release", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def _need(what: str, reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}: {reason} (CI installs it: .ci/run)")
    pytest.skip(f"{what}: {reason}")


@pytest.fixture(scope="module")
def mirror() -> str:
    url = _mirror()
    if not url or not _mirror_answers(url):
        pytest.skip(f"no Debian package mirror answers ({url or 'none configured in /etc/apt'}): "
                    "the apt tests need the mirror this machine uses")
    return url


@pytest.fixture(scope="module")
def debian_tar(mirror) -> Path:
    """A minbase bookworm root filesystem as a tarball (mmdebstrap, unprivileged), cached."""
    if not shutil.which("mmdebstrap"):
        _need("mmdebstrap", "not installed (apt-get install mmdebstrap)")
    out = CACHE / "debian-bookworm-minbase.tar"
    if out.exists() and time.time() - out.stat().st_mtime < MAX_AGE:
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}-{os.getpid()}.tar")
    try:
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=unshare", "--format=tar", "bookworm", str(tmp),
                        mirror], check=True, timeout=900, stdin=subprocess.DEVNULL, capture_output=True)
        os.replace(tmp, out)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"mmdebstrap failed ({e.returncode}): {e.stderr.decode(errors='replace')[-2000:]}")
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


@pytest.fixture
def deb(rl: Rootless, debian_tar) -> Rootless:
    rl("import", str(debian_tar), "debian:bookworm", timeout=300)
    return rl


def test_import_of_a_real_rootfs_skips_its_device_nodes(deb, debian_tar):
    import tarfile
    with tarfile.open(debian_tar) as tf:
        devices = [m.name for m in tf if m.ischr() or m.isblk()]
    assert any(d.endswith("dev/console") for d in devices) and any(d.endswith("dev/null") for d in devices)
    out = deb("run", "--rm", "--network", "none", "debian:bookworm", "sh", "-c",
              "ls -ln /usr/bin/passwd /etc/shadow; getent passwd _apt; test -c /dev/null && echo null-ok").out
    assert re.search(r"-rwsr-xr-x .* /usr/bin/passwd", out), out  # setuid kept
    assert re.search(r"-rw-r----- +1 +0 +42 .* /etc/shadow", out), out  # group shadow
    assert "_apt:x:42:65534" in out and "null-ok" in out  # the runtime's own /dev


def test_apt_get_install_in_a_build(deb, tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(DOCKERFILES / "debian-apt", ctx)
    r = deb("build", "-t", "apt-demo", str(ctx), timeout=900)
    assert "Setting up sudo" in r.err and "Processing triggers for libc-bin" in r.err
    out = deb("run", "--rm", "--network", "none", "apt-demo").out
    lines = out.splitlines()
    assert lines[0] == "dev"
    assert re.search(r"-rwsr-xr-x +1 +0 +0 .* /usr/bin/sudo", out), out
    assert re.search(r"drwxr-xr-x \d+ 42 +65534 .* apt-owned", out), out  # _apt:nogroup
    assert re.search(r"drwxr-xr-x \d+ 33 +33 .* www", out), out  # www-data
    home = deb("run", "--rm", "--network", "none", "apt-demo", "ls", "-ln", "/home/dev").out
    assert re.search(r"1000 +1000 .* made-by-dev", home) and re.search(r"1000 +1000 .* whoami", home), home
    # setuid programs work in RUN steps, as in Docker's (sudo, as USER dev, became root)
    assert deb("run", "--rm", "--network", "none", "apt-demo", "cat", "sudo-uid").out == "0\n"
    # a rebuild takes everything from the cache, the mirror is not asked again
    again = deb("build", "-t", "apt-demo", str(ctx), timeout=300)
    assert again.out == r.out and "Using cache" in again.err and "Setting up" not in again.err
