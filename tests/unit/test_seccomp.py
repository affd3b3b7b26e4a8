"""Seccomp profiles in Docker's format: checking, resolving for capabilities and the host, the
compiled program's behaviour (loaded in a forked child with no_new_privs, as a plain process may),
and the cache."""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from rootless.base import seccomp
from rootless.runtime import seccompprofile as sp
from rootless.runtime.security import ALL_CAPS, DEFAULT_CAPS, capabilities

X86_64 = os.uname().machine == "x86_64"
# x86_64 numbers of the calls tried below
NR = {"personality": 135, "keyctl": 250, "clone": 56, "clone3": 435, "unshare": 272, "mount": 165,
      "getpid": 39, "vserver": 236, "io_uring_setup": 425, "mkdir": 83, "chroot": 161, "sethostname": 170}
CLONE_NEWUSER, CLONE_FS = 0x10000000, 0x200  # together: EINVAL from the kernel, after the filter


def default_profile() -> dict:
    with open(sp.DEFAULT_PATH) as f:
        return json.load(f)


def outcomes(prog: bytes, calls) -> dict:
    """{label: errno name or "ok"} of ``calls`` ((label, number, args)) made under ``prog`` (None:
    no filter, the kernel's own answers)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if prog:
                libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: lets a plain process load a filter
                seccomp.load_bpf(prog)
            out = {}
            for label, nr, args in calls:
                ctypes.set_errno(0)
                ret = libc.syscall(nr, *[ctypes.c_ulong(a) for a in args])
                out[label] = errno.errorcode[ctypes.get_errno()] if ret == -1 else "ok"
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return json.loads(f.read())


needs_x86_64 = pytest.mark.skipif(not X86_64, reason="the system call numbers tried are x86_64's")


@needs_x86_64
@pytest.mark.parametrize("caps, expect", [
    (DEFAULT_CAPS, {"keyctl": "EPERM", "clone newuser": "EPERM", "clone3": "ENOSYS", "unshare": "EPERM",
                    "mount": "EPERM", "getpid": "ok", "vserver": "ENOSYS", "io_uring_setup": "EPERM",
                    "personality query": "ok", "personality ADDR_NO_RANDOMIZE": "ENOSYS",
                    "sethostname": "EPERM"}),
    # CAP_SYS_ADMIN lets the namespace and mount calls through to the kernel (which decides), not the keyring
    (capabilities(("SYS_ADMIN",), ()), {"keyctl": "EPERM", "getpid": "ok", "clone3": None, "mount": None,
                                        "unshare": None, "sethostname": None, "clone newuser": None}),
])
def test_the_default_profile_denies_as_dockers_does(caps, expect):
    """Docker's default denials: host-wide and namespace-escaping calls fail with EPERM unless a
    capability lets them through (None: the kernel's own answer); clone3 says ENOSYS so libc falls
    back to clone, whose namespace flags are checked; a call the profile does not name says ENOSYS,
    as an older kernel would."""
    prog = sp.compile_profile(default_profile(), caps)
    calls = [("keyctl", NR["keyctl"], (0,)), ("clone newuser", NR["clone"], (CLONE_NEWUSER | CLONE_FS, 0, 0, 0, 0)),
             ("clone3", NR["clone3"], (0, 0)), ("unshare", NR["unshare"], (0xFFFFFFFF,)),
             ("mount", NR["mount"], (0, 0, 0, 0, 0)), ("getpid", NR["getpid"], ()), ("vserver", NR["vserver"], ()),
             ("io_uring_setup", NR["io_uring_setup"], (0, 0)), ("personality query", NR["personality"], (0xFFFFFFFF,)),
             ("personality ADDR_NO_RANDOMIZE", NR["personality"], (0x0040000,)),
             ("sethostname", NR["sethostname"], (0, 1))]
    got, kernel = outcomes(prog, calls), outcomes(None, calls)
    assert {k: got[k] for k in expect} == {k: kernel[k] if v is None else v for k, v in expect.items()}
    assert kernel["clone3"] not in ("ENOSYS", "EPERM") and kernel["mount"] != "ENOSYS"


def test_the_default_profile_is_checked_and_names_only_real_calls():
    profile = default_profile()
    sp.check(profile)
    lib = seccomp.library()
    named = {n for entry in profile["syscalls"] for n in entry["names"]}
    assert not [n for n in named if lib.seccomp_syscall_resolve_name(n.encode()) == -1]
    # every capability an entry tests is one the tool knows, and each gated call is denied otherwise
    gates = [(e["names"], (e.get("includes") or {}).get("caps")) for e in profile["syscalls"]]
    assert all(c.removeprefix("CAP_") in ALL_CAPS for _, caps in gates for c in caps or [])


@pytest.mark.parametrize("caps, kernel, arch_ok, expect", [
    (DEFAULT_CAPS, "6.1.0-13-amd64", True, {"mkdir", "chroot-deny"}),
    (ALL_CAPS, "6.1.0", True, {"mkdir", "chroot-allow"}),
    (DEFAULT_CAPS, "4.4.0", True, {"chroot-deny"}),  # mkdir's rule wants 5.0 at least
    (DEFAULT_CAPS, "6.1.0", False, {"chroot-deny"}),  # and this architecture
])
def test_includes_and_excludes(caps, kernel, arch_ok, expect):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "includes": {"minKernel": "5.0", "arches": ["amd64", "arm64"] if arch_ok else ["s390x"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_LOG", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]}},
        {"name": "getpid", "action": "SCMP_ACT_ALLOW"},  # the default action: no rule
    ]}
    sp.check(profile)
    _, _, rules = sp.resolve(profile, caps, "x86_64", kernel)
    got = set()
    for act, name, args in rules:
        if name == "mkdir":
            assert act == seccomp.action("SCMP_ACT_ERRNO", errno.EACCES) and args == ()
            got.add("mkdir")
        elif name == "chroot":
            got.add("chroot-deny" if act == seccomp.action("SCMP_ACT_ERRNO") else "chroot-allow")
        else:
            pytest.fail(f"unexpected rule {name}")
    assert got == expect


def test_comparisons_hold_together_unless_they_test_one_argument():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 0x10000000, "valueTwo": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"},
            {"index": 0, "value": 0x20000000, "valueTwo": 0x20000000, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    _, _, rules = sp.resolve(profile, DEFAULT_CAPS, "x86_64", "6.1")
    assert [(n, a) for _, n, a in rules] == [
        ("socket", ((0, 4, 16, 0), (2, 4, 9, 0))),  # one rule: both hold
        ("clone", ((0, 7, 0x10000000, 0x10000000),)), ("clone", ((0, 7, 0x20000000, 0x20000000),))]  # either
    seccomp.compile_bpf(seccomp.ALLOW, (), rules)  # and libseccomp takes them


def test_architectures():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}]}
    assert sp.resolve(profile, (), "x86_64", "6.1")[1] == ("x86", "x32")
    assert sp.resolve(profile, (), "aarch64", "6.1")[1] == ("arm",)
    assert sp.resolve({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                                            "SCMP_ARCH_MIPS"]},
                      (), "x86_64", "6.1")[1] == ("x86",)  # a foreign architecture cannot run here


@needs_x86_64
def test_a_profile_of_ones_own(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}))
    setting = sp.setting_for(str(path))
    prog = sp.program(setting, None, str(tmp_path))
    got = outcomes(prog, [("mkdir", NR["mkdir"], (0, 0o755)), ("getpid", NR["getpid"], ())])
    assert got == {"mkdir": "EACCES", "getpid": "ok"}


@pytest.mark.skipif(not os.path.exists("/usr/share/containers/seccomp.json"),
                    reason="no containers-common profile here (podman's package brings it)")
def test_podmans_profile_compiles():
    profile = sp.load_file("/usr/share/containers/seccomp.json")
    assert len(sp.compile_profile(profile, DEFAULT_CAPS)) > 800 * 8


@pytest.mark.parametrize("profile, message", [
    ([], "must be a JSON object"),
    ({}, "defaultAction: the action must be a string"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "needs a listener"),
    ({"defaultAction": "ALLOW"}, "unknown action 'ALLOW'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "errno number"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}, "flags are not supported"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "syscalls: must be a list"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "mkdir", "action": "SCMP_ACT_ERRNO"}]},
     "syscalls[0].names: must be a list"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]},
     "args[0].index: must be 0 to 5"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "args[0].value"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "op": "EQ"}]}]},
     "unknown comparison 'EQ'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "includes": {"minKernel": "new"}}]}, "minKernel"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"subArchitectures": []}]}, "archMap"),
])
def test_a_bad_profile_is_refused_with_what_is_wrong(tmp_path, profile, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(sp.ProfileError) as e:
        sp.load_file(str(path))
    assert message in str(e.value) and str(path) in str(e.value)


def test_a_missing_or_broken_file(tmp_path):
    with pytest.raises(sp.UsageError, match="no such file"):
        sp.setting_for(str(tmp_path / "none.json"))
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(sp.ProfileError, match="not JSON"):
        sp.setting_for(str(tmp_path / "x.json"))
    assert sp.setting_for("unconfined") is False


def test_a_rule_libseccomp_refuses_is_named(tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2,
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
    with pytest.raises(sp.ProfileError, match="the rule for getpid was refused"):
        sp.compile_profile(profile, DEFAULT_CAPS)


def test_the_program_is_compiled_once_per_profile_and_capabilities(tmp_path, monkeypatch):
    prog = sp.program(True, None, str(tmp_path))
    assert prog and len(prog) % 8 == 0
    assert [p.name for p in tmp_path.iterdir()][0].startswith("seccomp-")
    compiled = []
    real = sp.compile_profile
    monkeypatch.setattr(sp, "compile_profile", lambda p, caps, emulate: compiled.append(caps) or real(p, caps, emulate))
    assert sp.program(True, list(reversed(DEFAULT_CAPS)), str(tmp_path)) == prog  # same set: cached
    assert compiled == []
    other = sp.program(True, capabilities(("SYS_ADMIN",), ()), str(tmp_path))
    assert other != prog and len(compiled) == 1
    assert sp.program(False, None, str(tmp_path)) is None


def test_compiling_needs_no_pipe_big_enough_for_the_program(monkeypatch):
    """libseccomp writes the whole program before anyone reads it: into a pipe of a user with many
    pipes open (8 KiB each), the default profile's program (about 9 KiB) would block for ever."""
    def no_pipe():
        raise AssertionError("a pipe: its buffer may be smaller than the program")
    monkeypatch.setattr(os, "pipe", no_pipe)
    prog = sp.compile_profile(sp.load_file(sp.DEFAULT_PATH), DEFAULT_CAPS)
    assert len(prog) > 8192 and len(prog) % 8 == 0


@needs_x86_64
@pytest.mark.parametrize("setting", [True, False])
def test_root_emulation(tmp_path, setting):
    """Changing owners or identity and making device nodes succeed without effect; other kinds of
    mknod reach the kernel; the rest of the profile still holds."""
    prog = sp.program(setting, None, str(tmp_path), emulate_root=True)
    gone = str(tmp_path / "nowhere" / "x").encode()
    buf = ctypes.create_string_buffer(gone)
    addr = ctypes.addressof(buf)
    calls = [("chown", 92, (addr, 100, 100)), ("setresuid", 117, (100, 100, 100)), ("setgroups", 116, (0, 0)),
             ("mknod chr", 133, (addr, 0o020644, 0x103)), ("mknod fifo", 133, (addr, 0o010644, 0)),
             ("keyctl", NR["keyctl"], (0,))]
    got = outcomes(prog, calls)
    assert got["chown"] == got["setresuid"] == got["setgroups"] == got["mknod chr"] == "ok"
    assert got["mknod fifo"] == "ENOENT"  # the kernel's answer: the directory does not exist
    assert (got["keyctl"] == "EPERM") == setting  # unconfined: the kernel's own answer
    assert sp.program(setting, None, str(tmp_path), emulate_root=False) != prog


def test_root_emulation_replaces_the_profiles_rules_for_its_calls():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["chown", "getpid", "mknod"], "action": "SCMP_ACT_ALLOW"}]}
    _, _, rules = sp.resolve(profile, DEFAULT_CAPS, "x86_64", "6.1", emulate_root=True)
    by_name = {}
    for act, name, args in rules:
        by_name.setdefault(name, []).append((act, args))
    assert by_name["getpid"] == [(seccomp.ALLOW, ())]
    assert by_name["chown"] == [(seccomp.action("SCMP_ACT_ERRNO", 0), ())]
    assert [a for a, _ in by_name["mknod"]] == [seccomp.action("SCMP_ACT_ERRNO", 0)] * 2 + [seccomp.ALLOW] * 4
    seccomp.compile_bpf(seccomp.action("SCMP_ACT_ERRNO"), (), rules)


@pytest.mark.parametrize("opts, expect", [
    ((), {"no_new_privs": False, "seccomp": True, "root_emulation": "auto"}),
    (("seccomp=unconfined",), {"seccomp": False}),
    (("seccomp:unconfined",), {"seccomp": False}),  # Docker's older separator
    (("seccomp=/p.json",), {"seccomp": "/p.json"}),
    (("root-emulation",), {"root_emulation": "on"}),
    (("root-emulation=false",), {"root_emulation": "off"}),
    (("root-emulation=auto", "no-new-privileges"), {"root_emulation": "auto", "no_new_privs": True}),
    (("label=disable", "apparmor=unconfined"), {"seccomp": True}),
])
def test_security_opts(opts, expect):
    from rootless.runtime.security import security_opts
    got = security_opts(opts)
    assert {k: got[k] for k in expect} == expect


@pytest.mark.parametrize("text", ["root-emulation=maybe", "root-emulation=", "seccomp=", "apparmor=myprofile",
                                  "label", "nosuch"])
def test_bad_security_opts(text):
    from rootless.runtime.security import security_opts
    with pytest.raises(sp.UsageError):
        security_opts((text,))
