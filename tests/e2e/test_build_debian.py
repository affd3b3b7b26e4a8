"""Real images, not only busybox: a Debian root filesystem made by ``mmdebstrap`` (device nodes,
setuid files, many owners, apt's ``_apt`` user) is imported, and a Dockerfile that runs
``apt-get install`` against the Debian mirror this machine uses is built on it, as the
unprivileged user, with RUN on the default network (slirp4netns). The base and the mirror are
``tests/e2e/conftest.py``'s fixtures (they skip, saying why, where no mirror answers).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.userns

DOCKERFILES = Path(__file__).resolve().parents[1] / "dockerfiles"


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
