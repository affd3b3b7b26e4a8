"""``rootless bundle IMAGE DIR``: an OCI bundle (config.json and rootfs) from an image, which an
OCI runtime (runc here) runs as rootless would; refusals and failures leave nothing; ``rootless
unshare rm -rf DIR`` removes a bundle whose files belong to subordinate ids."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Rootless, one_error

pytestmark = pytest.mark.userns

RUNC = shutil.which("runc") or "/usr/sbin/runc"


def host_id(rl: Rootless, inside: int, kind: str = "uid") -> int:
    """The host id a container id has through the store's id map (``rootless unshare``'s)."""
    for line in rl("unshare", "cat", f"/proc/self/{kind}_map").out.splitlines():
        start, host, count = map(int, line.split())
        if start <= inside < start + count:
            return host + inside - start
    raise AssertionError(f"{kind} {inside} is not mapped")


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".bundle-" in p.name or ".old-" in p.name]


def runc(rl: Rootless, bundle: Path, args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    """Run the bundle with runc as this user (rootless), with other process args."""
    if not os.access(RUNC, os.X_OK):
        pytest.skip("runc is not installed")
    cfg_path = bundle / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["process"]["args"] = args
    # runc refuses supplementary groups when it runs as a user ("cannot set any additional groups in a
    # rootless container"): the bundle keeps the image's (rootless oci and crun set them)
    cfg["process"]["user"].pop("additionalGids", None)
    cfg_path.write_text(json.dumps(cfg))
    state = tmp / "runc-state"
    state.mkdir(exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(rl.runtime))
    return subprocess.run([RUNC, "--root", str(state), "run", "--bundle", str(bundle), f"t{os.getpid()}"],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def test_bundle_of_a_layered_image(rl, images, tmp_path):
    rl.load(images, "layered")
    dest = tmp_path / "b"
    r = rl("bundle", "layered", dest)
    assert r.out.strip() == str(dest)
    cfg = json.loads((dest / "config.json").read_text())
    proc = cfg["process"]
    assert proc["args"] == ["/bin/echo", "entry:", "default-cmd"]
    assert proc["cwd"] == "/data" and proc["terminal"] is False
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [100]}
    assert "LAYERED=yes" in proc["env"] and "GREETING=hello world" in proc["env"]
    assert cfg["annotations"]["org.example.test"] == "layered"
    assert cfg["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/layered:latest"
    assert cfg["annotations"]["io.rootless.image.id"] == rl("inspect", "-f", "{{.Id}}", "layered").out.strip()
    assert cfg["linux"]["uidMappings"][0] == {"containerID": 0, "hostID": os.getuid(), "size": 1}
    assert "network" not in [n["type"] for n in cfg["linux"]["namespaces"]]
    root = dest / "rootfs"
    # the layers merged in order, whiteouts applied
    assert (root / "data" / "keep.txt").read_text() == "keep\n"
    assert not (root / "data" / "delete-me.txt").exists()
    assert not (root / "data" / "opaque" / "old.txt").exists() and (root / "data" / "opaque" / "new.txt").exists()
    assert (root / "data" / "added-in-layer3.txt").exists()
    assert not any(n.startswith(".wh.") for n in os.listdir(root / "data"))
    assert os.stat(root / "data" / "hardlink-src.txt").st_ino == os.stat(root / "data" / "hardlink-dst.txt").st_ino
    assert os.readlink(root / "data" / "abs-link") == "/data/keep.txt"
    suid = os.lstat(root / "usr" / "local" / "bin" / "suid-tool")
    assert stat.S_IMODE(suid.st_mode) == 0o4755
    # owners as in the image, through the store's id map
    assert os.lstat(root / "bin" / "busybox").st_uid == os.getuid()
    owned = os.lstat(root / "home" / "app" / "owned-by-app.txt")
    assert (owned.st_uid, owned.st_gid) == (host_id(rl, 1000), host_id(rl, 1000, "gid"))
    assert os.lstat(root / "data" / "nobody.txt").st_uid == host_id(rl, 65534)
    assert leftovers(tmp_path) == []
    # an OCI runtime with the same map shows them as in the image
    cp = runc(rl, dest, ["sh", "-c", "id -u; id -G; stat -c '%u %g %a' /home/app/owned-by-app.txt "
                                     "/data/nobody.txt /usr/local/bin/suid-tool; pwd"], tmp_path)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.split("\n")
    assert lines[1].split()[0] == "1000"  # the primary group (runc leaves the supplementary ones it had)
    assert lines[:1] + lines[2:] == ["1000", "1000 1000 644", "65534 65534 640", "0 0 4755", "/data", ""]
    rl("unshare", "rm", "-rf", dest)


def test_bundle_of_busybox_runs_its_command_with_runc(rl, images, tmp_path):
    rl.load(images, "busybox")
    dest = tmp_path / "bb"
    dest.mkdir()  # an empty directory is taken
    rl("bundle", "busybox", dest)
    cfg = json.loads((dest / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["process"]["user"] == {"uid": 0, "gid": 0}
    cp = runc(rl, dest, ["sh", "-c", "echo hi from $(hostname); id -u; cat /proc/self/uid_map | wc -l"], tmp_path)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.split("\n")
    assert lines[0] == f"hi from {os.uname().nodename}" and lines[1] == "0"  # the node's name, inherited
    rl("bundle", "--force", "--hostname", "rank0", "busybox", dest)
    cp = runc(rl, dest, ["hostname"], tmp_path)
    assert cp.returncode == 0 and cp.stdout == "rank0\n", cp.stderr
    rl("unshare", "rm", "-rf", dest)


def test_an_existing_directory_is_refused_without_force(rl, images, tmp_path):
    rl.load(images, "busybox")
    rl.load(images, "demo")
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me\n")
    r = rl("bundle", "busybox", dest, expect=125)
    one_error(r, str(dest), "not empty")
    assert "--force" in r.err
    assert os.listdir(dest) == ["mine.txt"] and leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    one_error(rl("bundle", "busybox", tmp_path / "file", expect=125), "not a directory")
    one_error(rl("bundle", "busybox", tmp_path / "no" / "such", expect=125), "does not exist")
    (tmp_path / "link").symlink_to(dest)
    one_error(rl("bundle", "--force", "busybox", tmp_path / "link", expect=125), "symbolic link")
    (tmp_path / "ro").mkdir(mode=0o555)
    one_error(rl("bundle", "busybox", tmp_path / "ro" / "b", expect=125), "not writable")
    assert os.listdir(dest) == ["mine.txt"]
    rl("bundle", "--force", "busybox", dest)
    assert sorted(os.listdir(dest)) == ["config.json", "rootfs"]
    rl("bundle", "--force", "rootless-demo", dest)  # a bundle replaced by another
    assert (dest / "rootfs" / "usr" / "local" / "bin" / "demo").exists()
    assert json.loads((dest / "config.json").read_text())["process"]["args"] == ["/usr/local/bin/demo"]
    assert leftovers(tmp_path) == []
    rl("unshare", "rm", "-rf", dest)


def test_a_failure_leaves_nothing(rl, images, tmp_path):
    rl("import", images / "busybox-rootfs.tar", "baduser:1", "-c", "USER nosuch", "-c", 'CMD ["sh"]')
    rl.load(images, "busybox")
    dest = tmp_path / "b"
    r = rl("bundle", "baduser:1", dest, expect=None)
    assert r.code == 125
    one_error(r, "unable to find user nosuch")
    assert not dest.exists() and leftovers(tmp_path) == []
    rl("bundle", "busybox", dest)  # an existing bundle: a failed --force leaves it as it was
    before = sorted(os.listdir(dest / "rootfs"))
    cfg = (dest / "config.json").read_text()
    one_error(rl("bundle", "--force", "baduser:1", dest, expect=125), "unable to find user nosuch")
    assert sorted(os.listdir(dest / "rootfs")) == before and (dest / "config.json").read_text() == cfg
    assert leftovers(tmp_path) == []
    r = rl("bundle", "no-such-image:1", tmp_path / "c", expect=None)
    assert r.code == 125 and not (tmp_path / "c").exists() and "Traceback" not in r.err
    rl("unshare", "rm", "-rf", dest)


def test_removal_needs_the_user_namespace(rl, images, tmp_path):
    rl.load(images, "layered")
    dest = tmp_path / "b"
    rl("bundle", "layered", dest)
    cp = subprocess.run(["rm", "-rf", str(dest)], capture_output=True, text=True)
    assert cp.returncode != 0 and dest.exists()  # files of subordinate ids in directories of theirs
    rl("unshare", "rm", "-rf", dest)
    assert not dest.exists()


def test_bundle_pulls_a_missing_image(rl, images, tmp_path):
    from tests.registryd import Registry
    registry = Registry(tmp_path / "registry")
    try:
        rl.configure(insecure=(registry.host,))
        rl.load(images, "busybox")
        ref = f"{registry.host}/b/busybox:1"
        rl("tag", "busybox", ref)
        rl("push", "-q", ref)
        rl("rmi", ref, "busybox")
        dest = tmp_path / "b"
        r = rl("bundle", ref, dest)
        assert "Unable to find image" in r.err
        assert (dest / "rootfs" / "bin" / "busybox").exists()
        cfg = json.loads((dest / "config.json").read_text())
        assert cfg["annotations"]["org.opencontainers.image.ref.name"] == ref
        assert cfg["annotations"]["io.rootless.image.digest"].startswith("sha256:")
        rl("unshare", "rm", "-rf", dest)
    finally:
        registry.stop()


def test_bundle_of_debian(deb, tmp_path):
    dest = tmp_path / "deb"
    one_error(deb("bundle", "debian:bookworm", dest, expect=125), "no command")  # imported without CMD
    assert not dest.exists()
    deb("bundle", "--network", "none", "debian:bookworm", dest, "bash", "-l", timeout=300)
    root = dest / "rootfs"
    cfg = json.loads((dest / "config.json").read_text())
    assert {"type": "network"} in cfg["linux"]["namespaces"]
    assert cfg["process"]["args"] == ["bash", "-l"]
    passwd = os.lstat(root / "usr" / "bin" / "passwd")
    assert stat.S_IMODE(passwd.st_mode) & 0o4000 and passwd.st_uid == os.getuid()  # setuid root kept
    partial = os.lstat(root / "var" / "cache" / "apt" / "archives" / "partial")  # _apt's (42:0)
    assert (partial.st_uid, partial.st_gid) == (host_id(deb, 42), os.getgid())
    devices = [n for n in os.listdir(root / "dev") if stat.S_ISCHR(os.lstat(root / "dev" / n).st_mode)
               or stat.S_ISBLK(os.lstat(root / "dev" / n).st_mode)]
    assert devices == []  # left out, as the unpacker leaves them (the runtime mounts a /dev)
    shadow = os.lstat(root / "etc" / "shadow")
    assert shadow.st_gid == host_id(deb, 42, "gid") and stat.S_IMODE(shadow.st_mode) == 0o640  # root:shadow
    cp = runc(deb, dest, ["sh", "-c", "stat -c '%U:%G %A' /var/cache/apt/archives/partial /usr/bin/passwd"],
              tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split("\n")[:2] == ["_apt:root drwx------", "root:root -rwsr-xr-x"]
    deb("unshare", "rm", "-rf", dest)


def test_file_capabilities_and_user_attributes_are_kept(rl, tmp_path):
    """A layer's ``security.capability`` (a setcap'd ping) and ``user.*`` attributes reach the
    bundle's rootfs, as the unpacker keeps them in the store."""
    import io
    import struct
    import tarfile
    caps = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # v2, effective, cap_net_raw permitted
    tar = tmp_path / "caps.tar"
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as tf:
        body = b"#!/bin/sh\n"
        info = tarfile.TarInfo("ping")
        info.size, info.mode = len(body), 0o755
        info.pax_headers = {"SCHILY.xattr.security.capability": caps.decode("utf-8", "surrogateescape"),
                            "SCHILY.xattr.user.note": "kept"}
        tf.addfile(info, io.BytesIO(body))
    rl("import", tar, "caps:1", "-c", 'CMD ["/ping"]')
    dest = tmp_path / "b"
    rl("bundle", "caps:1", dest)
    ping = dest / "rootfs" / "ping"
    assert os.getxattr(ping, "user.note") == b"kept"
    assert os.getxattr(ping, "security.capability")[4:8] == struct.pack("<I", 1 << 13)
    rl("unshare", "rm", "-rf", dest)


def test_single_uid_store_runs_the_image_user_as_root_with_a_warning(tmp_path, images):
    """Without subordinate ids only root exists in the user namespace: as ``run``, the image's
    user becomes root (one warning), the map is the user alone, and runc runs it."""
    rl = Rootless(tmp_path, idmap="single")
    rl.load(images, "layered")
    dest = tmp_path / "b"
    r = rl("bundle", "layered", dest)
    warnings = [ln for ln in r.err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "'app'" in warnings[0] and "single-uid" in warnings[0], r.err
    cfg = json.loads((dest / "config.json").read_text())
    assert cfg["process"]["user"] == {"uid": 0, "gid": 0}
    assert "HOME=/home/app" in cfg["process"]["env"]
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
    assert os.lstat(dest / "rootfs" / "home" / "app" / "owned-by-app.txt").st_uid == os.getuid()
    cp = runc(rl, dest, ["sh", "-c", "id -u; cat /data/keep.txt"], tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "0\nkeep\n"
    shutil.rmtree(dest)  # every file is the user's: no user namespace needed
