"""``runtime.ocispec``: an OCI bundle's config.json as the project's plan (pure), and its refusals."""

from __future__ import annotations

import copy
import json
import os
import subprocess

import pytest

from rootless.base.errors import UsageError
from rootless.base.syscalls import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC
from rootless.runtime import ocispec

UID, GID = 1000, 1000
SUBS = [(200000, 65536)]


@pytest.fixture(scope="module")
def runc_spec(tmp_path_factory) -> dict:
    """``runc spec --rootless``'s config (made by the caller: its own id in the maps)."""
    d = tmp_path_factory.mktemp("spec")
    subprocess.run(["runc", "spec", "--rootless"], cwd=d, check=True)
    config = json.loads((d / "config.json").read_text())
    for key in ("uidMappings", "gidMappings"):
        config["linux"][key][0]["hostID"] = UID
    return config


def plan(config: dict, bundle: str = "/b", cid: str = "c1"):
    return ocispec.translate(config, bundle, cid, UID, GID, SUBS, SUBS)


def test_runc_rootless_spec(runc_spec):
    p = plan(runc_spec)
    s = p.spec
    assert s.argv == ("sh",) and s.env[0].startswith("PATH=") and s.workdir == "/" and s.user == "0:0"
    assert s.hostname == "runc" and s.read_only and s.no_new_privs and s.tty and p.terminal
    assert s.network == "host"  # no network namespace: the host's
    assert (s.asked or {}).get("CgroupnsMode") == "host" and "PidMode" not in (s.asked or {})
    assert s.caps == ("AUDIT_WRITE", "KILL", "NET_BIND_SERVICE")
    assert p.root == "/b/rootfs" and p.mapping.mode == "single" and p.mapping.uids[0] == (0, UID, 1)
    assert p.process.rlimits == ((7, 1024, 1024),)  # RLIMIT_NOFILE
    assert p.seccomp is None and s.seccomp is False
    kinds = [(op.kind, op.target) for op in p.mounts]
    assert kinds[0] == ("mount", "/proc") and ("mount", "/dev") in kinds and ("cgroup", "/sys/fs/cgroup") in kinds
    dev = kinds.index(("mount", "/dev"))
    assert kinds[dev + 1] == ("bind", "/dev/null")  # the default devices right after /dev
    assert ("symlink", "/dev/ptmx") in kinds
    sys_op = next(op for op in p.mounts if op.target == "/sys")
    assert sys_op.kind == "bind" and sys_op.flags & MS_REC and sys_op.flags & MS_RDONLY and sys_op.flags & MS_NOSUID
    assert ("mask", "/proc/kcore") in kinds and ("readonly", "/proc/sys") in kinds
    pts = next(op for op in p.mounts if op.target == "/dev/pts")
    assert pts.fstype == "devpts" and "newinstance" in pts.data and pts.flags & MS_NOEXEC


def test_translation_is_pure(runc_spec):
    before = copy.deepcopy(runc_spec)
    assert plan(runc_spec) == plan(runc_spec)
    assert runc_spec == before


def test_namespaces(runc_spec):
    c = copy.deepcopy(runc_spec)
    c["linux"]["namespaces"] += [{"type": "network"}, {"type": "cgroup"}]
    s = plan(c).spec
    assert s.network == "none" and "CgroupnsMode" not in (s.asked or {})
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] not in ("pid", "uts", "ipc")]
    c.pop("hostname")
    s = plan(c).spec
    assert s.asked["PidMode"] == "host" and s.asked["UTSMode"] == "host" and s.asked["IpcMode"] == "host"
    assert next(op for op in plan(c).mounts if op.target == "/proc").kind == "bind"  # the host's /proc
    c["linux"]["namespaces"].append({"type": "uts"})
    assert plan(c).spec.hostname == os.uname().nodename  # a UTS namespace without a hostname: the host's name


def test_id_maps(runc_spec):
    c = copy.deepcopy(runc_spec)
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1},
                                 {"containerID": 1, "hostID": 200000, "size": 65536}]
    c["linux"]["gidMappings"] = c["linux"]["uidMappings"]
    m = plan(c).mapping
    assert m.mode == "subid" and m.uids[1] == (1, 200000, 65536)
    c["linux"]["uidMappings"][1]["hostID"] = 300000
    with pytest.raises(UsageError, match="linux.uidMappings"):
        plan(c)


def test_user_process_fields(runc_spec):
    c = copy.deepcopy(runc_spec)
    c["process"]["user"] = {"uid": 5, "gid": 6, "additionalGids": [7, 8], "umask": 0o22}
    c["process"]["capabilities"]["ambient"] = []
    c["process"]["oomScoreAdj"] = 100
    c["process"]["cwd"] = "/work/"
    c["annotations"] = {"org.example": "x"}
    p = plan(c)
    assert p.spec.user == "5:6" and p.spec.group_add == ("7", "8") and p.process.umask == 0o22
    assert p.process.oom_score_adj == 100 and p.spec.workdir == "/work" and p.annotations == {"org.example": "x"}
    assert p.spec.labels == {"org.example": "x"}


def test_binds(runc_spec):
    c = copy.deepcopy(runc_spec)
    c["mounts"].append({"destination": "/data", "type": "bind", "source": "data",
                        "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]})
    op = plan(c, bundle="/bundle").mounts[len(runc_spec["mounts"]) + 12]  # after the devices and their links
    assert (op.kind, op.target, op.source) == ("bind", "/data", "/bundle/data")
    assert op.flags & (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV) == MS_BIND | MS_REC | MS_RDONLY | \
        MS_NOSUID | MS_NODEV


def test_seccomp_as_docker_profile(runc_spec):
    c = copy.deepcopy(runc_spec)
    sec = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    c["linux"]["seccomp"] = sec
    assert plan(c).seccomp == sec
    c["linux"]["seccomp"] = {**sec, "listenerPath": "/run/agent.sock"}
    with pytest.raises(UsageError, match="listenerPath"):
        plan(c)


def test_resources_as_limits(runc_spec):
    c = copy.deepcopy(runc_spec)
    c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "cpu": {"quota": 50000, "period": 100000},
                               "pids": {"limit": 100}, "devices": [{"allow": False, "access": "rwm"}]}
    assert plan(c).spec.limits == {"memory": 64 << 20, "nano_cpus": 500000000, "pids_limit": 100}


@pytest.mark.parametrize("path, value, field", [
    (("hooks",), {"prestart": [{"path": "/bin/true"}]}, "hooks"),
    (("linux", "intelRdt"), {"closID": "x"}, "linux.intelRdt"),
    (("linux", "personality"), {"domain": "LINUX32"}, "linux.personality"),
    (("process", "selinuxLabel"), "system_u:system_r:svirt_lxc_net_t:s0", "process.selinuxLabel"),
    (("linux", "resources"), {"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "linux.resources.rdma"),
    (("linux", "sysctl"), {"kernel.pid_max": "100"}, "linux.sysctl"),
    (("linux", "sysctl"), {"net.ipv4.ip_forward": "1"}, "linux.sysctl"),  # no network namespace of its own
    (("linux", "devices"), [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}], "linux.devices"),
    (("linux", "namespaces"), [{"type": "user"}, {"type": "mount"}, {"type": "time"}], "linux.namespaces"),
    (("linux", "namespaces"), [{"type": "user"}, {"type": "mount"}, {"type": "network", "path": "/x"}],
     "linux.namespaces"),
    (("linux", "namespaces"), [{"type": "mount"}], "user namespace"),
    (("ociVersion",), "2.0.0", "ociVersion"),
    (("process", "args"), [], "process.args"),
    (("process", "cwd"), "relative", "process.cwd"),
    (("mounts",), [{"destination": "/x", "type": "overlay", "source": "o"}], "mounts[0]"),
    (("mounts",), [{"destination": "/x", "type": "bind", "source": "/y", "options": ["rbind", "idmap"]}], "idmap"),
    (("process", "user"), {"uid": 1000, "gid": 1000}, "ambient"),
    (("linux", "uidMappings"), [{"containerID": 0, "hostID": 0, "size": 1}], "linux.uidMappings"),
    (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_NOTIFY"}, "seccomp"),
    (("mounts",), [{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                    "options": ["newinstance", "gid=5"]}], "gid=5"),  # a single-uid map has gid 0 only
])
def test_refusals_name_the_field(runc_spec, path, value, field):
    c = copy.deepcopy(runc_spec)
    node = c
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    with pytest.raises(UsageError) as e:
        plan(c)
    assert field in e.value.message and "\n" not in e.value.message


def test_unknown_properties_are_ignored(runc_spec):
    c = copy.deepcopy(runc_spec)
    c["org.example.extension"] = {"x": 1}
    c["process"]["somethingNew"] = True
    assert plan(c).spec.argv == ("sh",)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", "a b"])
def test_bad_ids(cid):
    with pytest.raises(UsageError, match="invalid container ID"):
        ocispec.check_id(cid)


def test_good_ids():
    for cid in ("c1", "node1.1000.12.0.0", "a_b-c"):
        ocispec.check_id(cid)


# The runtime-spec's own example (config.md, "Configuration Schema Example"), as it is there.
EXAMPLE = json.loads((__import__("pathlib").Path(__file__).parents[1] / "data" / "oci-runtime-spec-example.json")
                     .read_text())
# What of it a rootless runtime refuses, in the order it is said, and how the example is adapted for it.
EXAMPLE_REFUSED = [
    ("hooks", lambda c: c.pop("hooks")),
    ("linux.mountLabel", lambda c: c["linux"].pop("mountLabel")),
    ("linux.timeOffsets", lambda c: c["linux"].pop("timeOffsets")),
    ("process.selinuxLabel", lambda c: c["process"].pop("selinuxLabel")),
    ("process.apparmorProfile", lambda c: c["process"].pop("apparmorProfile")),
    ("process.ioPriority", lambda c: c["process"].pop("ioPriority")),
    ("linux.resources.hugepageLimits", lambda c: c["linux"]["resources"].pop("hugepageLimits")),
    ("linux.resources.network", lambda c: c["linux"]["resources"].pop("network")),
    ("linux.namespaces", lambda c: c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"]
                                                                 if n["type"] != "time"])),
    ("linux.uidMappings", lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": UID, "size": 1},
                     {"containerID": 1, "hostID": 200000, "size": 65536}],
        gidMappings=[{"containerID": 0, "hostID": GID, "size": 1},
                     {"containerID": 1, "hostID": 200000, "size": 65536}])),
    ("process.capabilities.ambient", lambda c: c["process"]["capabilities"].update(ambient=[])),
    ("linux.resources.memory.swappiness", lambda c: c["linux"]["resources"]["memory"].pop("swappiness")),
    ("linux.resources.cpu.realtimeRuntime", lambda c: [c["linux"]["resources"]["cpu"].pop(k) for k in
                                                       ("realtimeRuntime", "realtimePeriod", "idle", "mems")]),
    ("linux.resources.blockIO.leafWeight", lambda c: c["linux"]["resources"].update(
        blockIO={"weight": c["linux"]["resources"]["blockIO"]["weight"]})),
    ("linux.devices", lambda c: c["linux"].pop("devices")),
]


def adapted_example() -> dict:
    c = copy.deepcopy(EXAMPLE)
    for _field, fix in EXAMPLE_REFUSED:
        fix(c)
    return c


def test_runtime_spec_example_refusals():
    c = copy.deepcopy(EXAMPLE)
    for field, fix in EXAMPLE_REFUSED:
        with pytest.raises(UsageError) as e:
            plan(c)
        assert field in e.value.message, (field, e.value.message)
        fix(c)
    p = plan(c)
    assert p.spec.hostname == "slartibartfast" and p.spec.network == "none" and p.spec.user == "1:1"
    assert p.spec.group_add == ("5", "6") and p.process.sysctl == (("net.core.somaxconn", "256"),
                                                                   ("net.ipv4.ip_forward", "1"))
    assert p.process.oom_score_adj == 100 and p.mapping.mode == "subid"
    assert p.spec.limits["memory"] == 536870912 and p.spec.limits["pids_limit"] == 32771
    assert p.seccomp["defaultAction"] == "SCMP_ACT_ALLOW" and p.annotations == EXAMPLE["annotations"]
