"""Tests for rootless/engine/preflight.py: the pure checks from sample host texts, and one real run."""

import json
import os

import pytest

from layers.overlay import Probe
from rootless.base import idmap
from rootless.base.config import Config
from rootless.base.errors import HostError, RootlessError
from rootless.base.paths import Paths
from rootless.cli import infoview
from rootless.engine import preflight
from rootless.runtime import cgroups

NAMES = ["user namespaces", "apparmor userns", "subuid", "subgid", "newuidmap", "newgidmap",
         "id mapping", "overlay", "fuse-overlayfs", "slirp4netns", "cgroups", "storage", "config",
         "logs", "containers", "volumes", "kernel"]
STATUSES = {"ok", "warn", "fail", "info"}

KERNEL_PROBE = Probe("kernel", True, "overlay mounts in a user namespace (userxattr)",
                     True, "/usr/bin/fuse-overlayfs works with /dev/fuse")
FUSE_PROBE = Probe("fuse", False, "overlay mount refused: Operation not permitted",
                   True, "/usr/bin/fuse-overlayfs works with /dev/fuse")
COPY_PROBE = Probe("copy", False, "overlay mount refused: Operation not permitted",
                   False, "fuse-overlayfs is not installed")


@pytest.mark.parametrize("max_text, clone_text, status, fix_part", [
    ("0\n", None, "fail", "user.max_user_namespaces=15000"),
    ("1000\n", None, "ok", None),
    ("1000\n", "0\n", "fail", "kernel.unprivileged_userns_clone=1"),
    ("1000\n", "1\n", "ok", None),
    (None, None, "fail", "CONFIG_USER_NS"),
])
def test_userns(max_text, clone_text, status, fix_part):
    c = preflight.check_userns(max_text, clone_text)
    assert c.name == "user namespaces" and c.status == status
    if fix_part:
        assert fix_part in c.fix
    else:
        assert c.fix is None
    if max_text:
        assert f"max_user_namespaces={max_text.strip()}" in c.detail


@pytest.mark.parametrize("text, status, has_fix", [
    (None, "info", False),
    ("0\n", "ok", False),
    ("1\n", "fail", True),
])
def test_apparmor(text, status, has_fix):
    c = preflight.check_apparmor(text)
    assert c.status == status
    assert (c.fix is not None) == has_fix
    if has_fix:
        assert "kernel.apparmor_restrict_unprivileged_userns=0" in c.fix
    if text is None:
        assert "not present" in c.detail


@pytest.mark.parametrize("text, status, in_detail", [
    ("alice:100000:65536\n", "ok", "100000-165535 (65536 ids)"),
    ("1000:100000:65536\n", "ok", "65536 ids"),
    ("alice:100000:1000\nalice:300000:1000\n", "warn", "100000-100999, 300000-300999 (2000 ids)"),
    ("bob:100000:65536\n", "warn", "no range for alice"),
    ("", "warn", "no range for alice"),
    (None, "warn", "missing"),
])
def test_subids(text, status, in_detail):
    c = preflight.check_subids("subuid", text, "alice", 1000)
    assert c.name == "subuid" and c.status == status
    assert in_detail in c.detail
    if status == "warn":
        assert c.fix == "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice"
    else:
        assert c.fix is None


def test_subids_absent_falls_back_to_single_map():
    c = preflight.check_subids("subgid", "", "alice", 1000)
    assert c.action == "single-uid map: files of other uids in images become yours"


@pytest.mark.parametrize("path, usable, status, fix_part", [
    ("/usr/bin/newuidmap", True, "ok", None),
    ("/usr/bin/newuidmap", False, "warn", "chmod u+s /usr/bin/newuidmap"),
    (None, False, "warn", "sudo apt-get install uidmap"),
])
def test_helper(path, usable, status, fix_part):
    c = preflight.check_helper("newuidmap", path, usable)
    assert c.status == status
    assert (fix_part in c.fix) if fix_part else c.fix is None


ALICE = ("alice", 1000, 1000)


@pytest.mark.parametrize("mode, subids, helpers_ok, status, fix_part", [
    ("auto", "alice:100000:65536\n", True, "ok", None),
    ("auto", "", True, "warn", "usermod"),
    ("auto", "alice:100000:65536\n", False, "warn", "apt-get install uidmap"),
    ("single", "alice:100000:65536\n", True, "warn", 'userns.idmap = "auto"'),
])
def test_idmap(mode, subids, helpers_ok, status, fix_part):
    mapping = idmap.plan(mode, subids, subids, helpers_ok, ALICE)
    c = preflight.check_idmap(mapping, mode, helpers_ok, "alice", "/cfg.toml")
    assert c.status == status
    assert (fix_part in c.fix) if fix_part else c.fix is None


@pytest.mark.parametrize("probe, configured, status, action_part", [
    (KERNEL_PROBE, "auto", "ok", "kernel overlayfs"),
    (FUSE_PROBE, "auto", "warn", "slower"),
    (COPY_PROBE, "auto", "warn", "every container copies its image"),
    (KERNEL_PROBE, "copy", "warn", "every container copies its image"),
    (FUSE_PROBE, "kernel", "fail", "containers cannot start"),
])
def test_overlay(probe, configured, status, action_part):
    c = preflight.check_overlay(lambda: probe, configured, "/cfg.toml")
    assert c.status == status and action_part in c.action
    assert probe.kernel_detail in c.detail and probe.fuse_detail in c.detail
    assert ("config forces" in c.detail) == (configured != "auto")


@pytest.mark.parametrize("exc", [
    RootlessError("storage is read-only"),
    HostError("storage is read-only", "use another --root"),
])
def test_overlay_probe_error_is_a_fail(exc):
    def probe():
        raise exc
    c = preflight.check_overlay(probe, "auto", "/cfg.toml")
    assert c.status == "fail" and "storage is read-only" in c.detail
    assert c.fix


@pytest.mark.parametrize("path, dev, status, fix_part", [
    ("/usr/bin/fuse-overlayfs", (True, True), "ok", None),
    (None, (True, True), "warn", "sudo apt-get install fuse-overlayfs fuse3"),
    ("/usr/bin/fuse-overlayfs", (True, False), "warn", "sudo chmod 0666 /dev/fuse"),
    ("/usr/bin/fuse-overlayfs", (False, False), "warn", "modprobe fuse"),
])
def test_fuse(path, dev, status, fix_part):
    c = preflight.check_fuse(path, "fuse-overlayfs: version 1.10", *dev)
    assert c.status == status
    assert (fix_part in c.fix) if fix_part else c.fix is None


@pytest.mark.parametrize("path, tun, status, fix_part", [
    ("/usr/bin/slirp4netns", (True, True), "ok", None),
    (None, (True, True), "warn", "sudo apt-get install slirp4netns"),
    ("/usr/bin/slirp4netns", (True, False), "warn", "sudo chmod 0666 /dev/net/tun"),
])
def test_slirp(path, tun, status, fix_part):
    c = preflight.check_slirp(path, "slirp4netns version 1.2.0", *tun)
    assert c.status == status
    if fix_part:
        assert fix_part in c.fix
        assert c.action == "only --network none and host are available"


def test_version_line_prefers_the_tools_own_line():
    out = "fusermount3 version: 3.14.0\nfuse-overlayfs: version 1.10\nFUSE library version 3.14.0\n"
    assert preflight.version_line(out, "fuse-overlayfs") == "fuse-overlayfs: version 1.10"
    assert preflight.version_line("v9\n", "tool") == "v9"
    assert preflight.version_line("", "tool") is None


MOUNTS_V2 = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
"""
MOUNTS_HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
"""
MOUNTS_V1 = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
"""


@pytest.mark.parametrize("text, version", [
    (MOUNTS_V2, "v2"), (MOUNTS_HYBRID, "hybrid"), (MOUNTS_V1, "v1"), ("", "none"),
])
def test_cgroup_version(text, version):
    assert cgroups.cgroup_version(text) == version


@pytest.mark.parametrize("version", ["hybrid", "v1"])
def test_cgroups_v1_or_hybrid_warn(version):
    c = preflight.check_cgroups(version, None, None, [])
    assert c.status == "warn"
    assert c.action == "resource limits (--memory, --cpus, --pids-limit, ...) are refused, in one line naming the fix"
    assert "systemd.unified_cgroup_hierarchy=1" in c.fix and "Delegate=yes" in c.fix


@pytest.mark.parametrize("at, controllers, status", [
    ("/sys/fs/cgroup/user.slice", ["cpuset", "cpu", "io", "memory", "pids"], "ok"),
    ("/sys/fs/cgroup/user.slice", ["memory", "pids"], "warn"),
    (None, [], "warn"),
])
def test_cgroups_v2(at, controllers, status):
    c = preflight.check_cgroups("v2", "/user.slice/app.scope", at, controllers)
    assert c.status == status
    if at and status == "warn":
        assert "missing cpu io" in c.detail
        assert c.action.startswith("enforces --memory --memory-reservation --memory-swap --pids-limit;")
    if status == "ok":
        assert "--cpus" in c.action and "--device-read-bps" in c.action


def test_info_says_pause_freezes_every_container_where_a_cgroup_is_delegated():
    c = preflight.check_pause("v2", "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service")
    assert c.status == "ok" and "cgroup v2 freezer" in c.detail and "every container" in c.detail
    assert "resource limits" not in c.detail
    c = preflight.check_pause("hybrid", None)  # this host: signals, as before
    assert c.status == "info" and c.detail.startswith("SIGSTOP to every process")


def test_own_cgroup():
    assert cgroups.own_cgroup("12:pids:/x\n0::/user.slice/app.scope\n") == "/user.slice/app.scope"
    assert cgroups.own_cgroup("0::/\n") == "/"
    assert cgroups.own_cgroup("4:memory:/x\n") is None


def test_delegation_dir(tmp_path):
    top = tmp_path / "cg"
    leaf = top / "user.slice" / "user@1000.service" / "app.scope"
    leaf.mkdir(parents=True)
    assert cgroups.delegation_dir(str(leaf), str(top)) is None
    owned = top / "user.slice" / "user@1000.service"
    (owned / "cgroup.subtree_control").write_text("")
    (owned / "cgroup.controllers").write_text("cpu memory pids\n")
    assert cgroups.delegation_dir(str(leaf), str(top)) == str(owned)


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:21 / /home rw,relatime shared:5 - xfs /dev/sdb1 rw
31 25 0:40 / /home/shared rw,relatime shared:9 - nfs4 server:/export rw,vers=4.2
32 22 0:41 / /mnt/my\\040disk rw,relatime shared:10 - btrfs /dev/sdc1 rw
33 22 0:42 / /scratch rw,relatime shared:11 - lustre 10.0.0.1@tcp:/fs rw
"""


@pytest.mark.parametrize("path, point, fstype", [
    ("/home/shared/alice/.local/share/rootless", "/home/shared", "nfs4"),
    ("/home/alice", "/home", "xfs"),
    ("/home", "/home", "xfs"),
    ("/homer", "/", "ext4"),
    ("/mnt/my disk/x", "/mnt/my disk", "btrfs"),
    ("/scratch/a", "/scratch", "lustre"),
])
def test_mount_of(path, point, fstype):
    assert preflight.mount_of(MOUNTINFO, path) == (point, fstype)


@pytest.mark.parametrize("fstype, free, writable, status", [
    ("ext4", 50 << 30, True, "ok"),
    ("nfs4", 50 << 30, True, "warn"),
    ("fuse.sshfs", 50 << 30, True, "warn"),
    ("ext4", 10 << 20, True, "warn"),
    ("ext4", 50 << 30, False, "fail"),
])
def test_storage(fstype, free, writable, status):
    c = preflight.check_storage("/h/a/rootless", "/h/a", fstype, "/h", free, writable,
                                "/run/user/1000/rootless/k", "/cfg.toml")
    assert c.status == status
    assert "not created yet" in c.detail and "/run/user/1000/rootless/k" in c.detail
    if status != "ok":
        assert "/cfg.toml" in c.fix
    if fstype in ("nfs4", "fuse.sshfs"):
        assert "network filesystems" in c.action


def test_nearest_existing(tmp_path):
    assert preflight.nearest_existing(str(tmp_path / "a" / "b")) == str(tmp_path)


def test_config_and_kernel():
    c = preflight.check_config("/cfg.toml", False, Config(overlay="fuse"))
    assert c.status == "info" and "storage.overlay=fuse" in c.detail
    assert preflight.check_kernel("6.8.0").status == "info"


def _sample():
    return [preflight.check_userns("96365\n", None),
            preflight.check_subids("subuid", "", "alice", 1000),
            preflight.check_kernel("6.8.0")]


def test_to_json_shape():
    data = infoview.to_json(_sample())
    json.dumps(data)
    assert [set(d) for d in data] == [{"name", "status", "detail", "action", "fix"}] * 3
    assert data[0]["status"] == "ok" and data[0]["fix"] is None


def test_render_text():
    text = infoview.render_text(_sample())
    lines = text.splitlines()
    assert lines[0].startswith("ok    user namespaces  max_user_namespaces=96365")
    assert "-> runs each container" in lines[0]
    assert any(ln.strip().startswith("fix: sudo usermod") for ln in lines)
    assert all(len(ln) <= 100 for ln in lines)
    assert lines[-1] == "info  kernel           Linux 6.8.0"


def test_run_checks_on_this_host(tmp_path, monkeypatch):
    monkeypatch.setenv("ROOTLESS_CONFIG", str(tmp_path / "config.toml"))
    paths = Paths(str(tmp_path / "store" / "rootless"), str(tmp_path / "run"))
    checks = preflight.run_checks(paths, Config(), lambda: KERNEL_PROBE)
    assert [c.name for c in checks] == NAMES
    assert all(c.status in STATUSES for c in checks)
    assert all(c.fix is None for c in checks if c.status == "ok")
    by_name = {c.name: c for c in checks}
    assert by_name["overlay"].status == "ok"
    assert by_name["storage"].status in ("ok", "warn")
    assert not os.path.exists(paths.root)
    infoview.render_text(checks)
    json.dumps(infoview.to_json(checks))


def test_run_checks_probe_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ROOTLESS_CONFIG", str(tmp_path / "config.toml"))

    def probe():
        raise RootlessError("cannot create a user namespace")
    checks = preflight.run_checks(Paths(str(tmp_path), str(tmp_path / "run")), Config(), probe)
    overlay = next(c for c in checks if c.name == "overlay")
    assert overlay.status == "fail" and "cannot create a user namespace" in overlay.detail
