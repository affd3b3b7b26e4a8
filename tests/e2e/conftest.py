"""Fixtures of the end-to-end tests that use a real Debian root filesystem: the mirror this
machine's apt uses, a minbase bookworm made by ``mmdebstrap`` (cached in
``~/.cache/rootless-tests`` for a week) and a store with it imported as ``debian:bookworm``.
Without a mirror that answers they skip, saying so; without mmdebstrap too, except in CI, where
setting the host up is part of the job and a skip would hide a broken set-up."""

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
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=unshare", "--format=tar", "bookworm",
                        str(tmp), mirror], check=True, timeout=900, stdin=subprocess.DEVNULL, capture_output=True)
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


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1 (a module's tests share it)."""
    from tests.registryd import Registry
    r = Registry(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()


@pytest.fixture
def api(busybox: Rootless):
    """The API service of a store with busybox loaded, and Debian's docker CLI to drive it."""
    from tests.apiservice import DOCKER, ApiService
    if not os.access(DOCKER, os.X_OK):
        _need("docker", f"{DOCKER} is missing (apt-get install docker.io: its client talks to the service)")
    service = ApiService(busybox)
    yield service
    ids = busybox("ps", "-aq", expect=None).out.split()
    if ids:
        busybox("rm", "-f", *ids, expect=None)
    service.stop()
