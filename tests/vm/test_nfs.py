"""A home on NFS, for real: the guest's kernel NFS server exports a directory over loopback and
the guest mounts it (scripts/vm-test.sh, as root there); this host's kernel has neither an NFS
server nor client. The tool, as the guest's unprivileged user with its data directory on that
mount, keeps its store on a local filesystem, says so once, shows it in ``info``, and lets a
configured ``storage.root`` decide otherwise."""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import pytest

from tests.conftest import rootless_argv

pytestmark = [pytest.mark.userns, pytest.mark.skipif(
    not os.environ.get("ROOTLESS_TEST_NFS"),
    reason="needs an NFS mount: run by `just vm-test` in the guest of ../shared/vm, which exports one")]


def tool(env: dict, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    cp = subprocess.run(rootless_argv() + list(args), env=env, capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == expect, (args, cp.stdout, cp.stderr)
    return cp


@pytest.fixture
def nfs_home(tmp_path):
    home = os.path.join(os.environ["ROOTLESS_TEST_NFS"], tmp_path.name)
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if k not in ("ROOTLESS_ROOT", "ROOTLESS_CONFIG")}
    env.update(XDG_DATA_HOME=f"{home}/data", XDG_CONFIG_HOME=f"{home}/config",
               ROOTLESS_SYSTEM_CONFIG=str(tmp_path / "no-system-config.toml"))
    local = f"/var/tmp/{pwd.getpwuid(os.getuid()).pw_name}/rootless"
    yield home, env, local
    if os.path.exists(local):
        tool(env, "system", "reset", "--force")


def test_a_home_on_nfs_keeps_the_store_on_a_local_filesystem(nfs_home, images):
    home, env, local = nfs_home
    with open("/proc/self/mountinfo") as f:
        assert any(" /mnt/nfs " in line and " - nfs" in line for line in f), "the guest's NFS mount is missing"
    first = tool(env, "load", "-i", str(images / "busybox.tar"))
    note = [line for line in first.stderr.splitlines() if "is on nfs" in line]
    assert len(note) == 1 and local in note[0] and "storage.root" in note[0], first.stderr
    run = tool(env, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo made > /f && cat /f")
    assert run.stdout == "made\n" and "is on nfs" not in run.stderr  # said once
    assert not os.path.exists(f"{home}/data/rootless") and os.path.isdir(f"{local}/layers")
    info = json.dumps(json.loads(tool(env, "info", "--format", "json").stdout))
    assert f"instead of {home}/data/rootless (nfs4)" in info


def test_a_configured_root_on_nfs_is_used_as_asked(nfs_home, images):
    home, env, _ = nfs_home
    os.makedirs(f"{home}/config/rootless")
    with open(f"{home}/config/rootless/config.toml", "w") as f:
        f.write(f'[storage]\nroot = "{home}/store"\n')
    tool(env, "load", "-i", str(images / "busybox.tar"))
    assert os.path.isdir(f"{home}/store/blobs")
    info = tool(env, "info").stdout
    assert "nfs4" in info and "network filesystems" in info  # and info warns about it
