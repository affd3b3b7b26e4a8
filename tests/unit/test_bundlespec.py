"""Tests for rootless/runtime/bundlespec.py: an OCI bundle's config.json from an image's config."""

import pytest

from rootless.base.errors import RootlessError, UsageError
from rootless.base.idmap import IdMapping, Range
from rootless.runtime import bundlespec, mountplan
from rootless.runtime.spec import DEFAULT_PATH

PASSWD = ("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
          "svc:x:42:65534::/nonexistent:/usr/sbin/nologin\n")
GROUP = "root:x:0:\nusers:x:100:app\napp:x:1000:\nvideo:x:44:app,svc\nnogroup:x:65534:\n"
SUBID = IdMapping("subid", (Range(0, 1001, 1), Range(1, 200000, 65536)), (Range(0, 1001, 1), Range(1, 200000, 65536)))
SINGLE = IdMapping("single", (Range(0, 1001, 1),), (Range(0, 1001, 1),))
IMAGE_ID = "sha256:" + "ab" * 32


def make(cfg: dict, mapping=SUBID, **kw) -> dict:
    user = bundlespec.process_user(cfg, PASSWD, GROUP)
    return bundlespec.config({"config": cfg}, mapping, user, ref_name="docker.io/library/x:1", image_id=IMAGE_ID,
                             **kw)


@pytest.mark.parametrize("cfg, args", [
    ({"Cmd": ["sh"]}, ["sh"]),
    ({"Entrypoint": ["/init"], "Cmd": ["a", "b"]}, ["/init", "a", "b"]),
    ({"Entrypoint": ["/init"]}, ["/init"]),
    ({"Entrypoint": ["/bin/echo", "entry:"], "Cmd": ["default-cmd"]}, ["/bin/echo", "entry:", "default-cmd"]),
    ({"Entrypoint": None, "Cmd": ["/bin/sh", "-c", "x"]}, ["/bin/sh", "-c", "x"]),
])
def test_args_are_entrypoint_then_cmd(cfg, args):
    assert make(cfg)["process"]["args"] == args


@pytest.mark.parametrize("cfg, command, args", [
    ({"Cmd": ["sh"]}, ["bash", "-l"], ["bash", "-l"]),
    ({"Entrypoint": ["/init"], "Cmd": ["a"]}, ["b"], ["/init", "b"]),
    ({}, ["true"], ["true"]),
])
def test_a_command_replaces_cmd(cfg, command, args):
    user = bundlespec.process_user(cfg, PASSWD, GROUP)
    out = bundlespec.config({"config": cfg}, SUBID, user, ref_name="x", image_id=IMAGE_ID, command=command)
    assert out["process"]["args"] == args


@pytest.mark.parametrize("cfg", [{}, {"Cmd": []}, {"Entrypoint": [], "Cmd": None}])
def test_no_command_is_one_line(cfg):
    with pytest.raises(UsageError) as e:
        make(cfg)
    assert "no command" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("user, uid, gid, extra, home", [
    ("", 0, 0, None, "/root"),
    ("root", 0, 0, None, "/root"),
    ("app", 1000, 1000, [100, 44], "/home/app"),
    ("1000", 1000, 1000, [100, 44], "/home/app"),
    ("app:users", 1000, 100, None, "/home/app"),
    ("svc", 42, 65534, [44], "/nonexistent"),
    ("4242", 4242, 0, None, "/"),  # a number needs no entry (Docker's rule)
    ("4242:4343", 4242, 4343, None, "/"),
    ("app:44", 1000, 44, None, "/home/app"),
])
def test_user_is_resolved_to_numbers(user, uid, gid, extra, home):
    cfg = make({"Cmd": ["sh"], "User": user})
    want = {"uid": uid, "gid": gid}
    if extra:
        want["additionalGids"] = extra
    assert cfg["process"]["user"] == want
    assert f"HOME={home}" in cfg["process"]["env"]


@pytest.mark.parametrize("user, needle", [
    ("nosuch", "unable to find user nosuch"),
    ("app:nogroup-here", "unable to find group nogroup-here"),
    ("99999999999", "out of range"),
])
def test_a_bad_user_is_one_line(user, needle):
    with pytest.raises(RootlessError) as e:
        make({"Cmd": ["sh"], "User": user})
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("env, want", [
    (None, [f"PATH={DEFAULT_PATH}", "HOME=/root"]),
    (["A=1"], [f"PATH={DEFAULT_PATH}", "A=1", "HOME=/root"]),
    (["PATH=/opt/bin", "HOME=/srv"], ["PATH=/opt/bin", "HOME=/srv"]),
    (["X=a=b", "PATH=/x"], ["X=a=b", "PATH=/x", "HOME=/root"]),
])
def test_env_gets_docker_defaults(env, want):
    assert make({"Cmd": ["sh"], "Env": env})["process"]["env"] == want


@pytest.mark.parametrize("workdir, cwd", [(None, "/"), ("", "/"), ("/data", "/data"), ("/a/b/", "/a/b/")])
def test_cwd(workdir, cwd):
    assert make({"Cmd": ["sh"], "WorkingDir": workdir})["process"]["cwd"] == cwd


def test_a_relative_workdir_is_one_line():
    with pytest.raises(UsageError) as e:
        make({"Cmd": ["sh"], "WorkingDir": "data"})
    assert "absolute path" in str(e.value) and "\n" not in str(e.value)


def test_shape_is_runtime_spec_and_rootless():
    cfg = make({"Cmd": ["sh"], "Labels": {"org.example": "yes"}}, hostname="node1")
    assert cfg["ociVersion"] == "1.0.2"
    assert cfg["root"] == {"path": "rootfs", "readonly": False}
    assert cfg["hostname"] == "node1"
    assert cfg["process"]["terminal"] is False
    caps = cfg["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    assert sorted(caps["bounding"]) == sorted(f"CAP_{c}" for c in (
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
        "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"))  # Docker's default set
    assert cfg["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]
    linux = cfg["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]  # the host's network
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1},
                                    {"containerID": 1, "hostID": 200000, "size": 65536}]
    assert linux["gidMappings"] == linux["uidMappings"]
    assert linux["maskedPaths"] == list(mountplan.MASKED) and "/proc/kcore" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == list(mountplan.READONLY)
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert mounts["/sys"]["options"][0] == "rbind" and "ro" in mounts["/sys"]["options"]
    assert "gid=5" in mounts["/dev/pts"]["options"]
    assert cfg["annotations"] == {"org.example": "yes", "org.opencontainers.image.ref.name": "docker.io/library/x:1",
                                  "io.rootless.image.id": IMAGE_ID}


def test_single_uid_store():
    cfg = make({"Cmd": ["sh"]}, SINGLE)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    pts = next(m for m in cfg["mounts"] if m["destination"] == "/dev/pts")
    assert not any(o.startswith("gid=") for o in pts["options"])  # gid 5 is not mapped


def test_network_none_adds_a_namespace_and_others_are_refused():
    cfg = make({"Cmd": ["sh"]}, network="none")
    assert {"type": "network"} in cfg["linux"]["namespaces"]
    with pytest.raises(UsageError) as e:
        make({"Cmd": ["sh"]}, network="bridge")
    assert "\n" not in str(e.value)


def test_digest_and_no_hostname_by_default():
    cfg = make({"Cmd": ["sh"]}, digest="sha256:" + "c" * 64)
    assert cfg["annotations"]["io.rootless.image.digest"] == "sha256:" + "c" * 64
    assert "hostname" not in cfg  # the UTS namespace keeps the node's name (a job's ranks see their node)


