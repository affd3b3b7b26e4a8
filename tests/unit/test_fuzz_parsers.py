"""Property tests: no input to a flag parser, nor any command line, ends in anything but a
clear error (RootlessError, or typer's usage errors at the CLI's boundary): never an internal
error with a traceback. Hostile inputs found once are kept in HOSTILE and always run."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from layers import dockerfile, dockerignore, manifest, reference, shellwords
from netstack import spec as netspec
from rootless.base import config
from rootless.base.errors import RootlessError
from rootless.cli import commands, fast, main  # noqa: F401 - commands registers the verbs
from rootless.cli.params import COMMANDS
from rootless.engine import attach
from rootless.engine import build as build_ops
from rootless.runtime import cgroups, logs, procsettings, security, users, volumes
from rootless.runtime import spec as runspec

HOSTILE = ["", " ", "-", "--", ":", "::", ":::", "-1", "80:-1", "4294967295", "99999999999", "0x10", "1e9",
           "٣", "²", "\x00", "a\nb", "[", "[::1", "[]:80", "[::1]:", "/udp", "80/", "65536", "0-0", "5-3",
           "${HOME}", "$(id)", "'", '"', "\\", "%s%n", "../../..", "/" * 300, "ä" * 5, "\udcff",
           "1:2:3:4", "host-gateway", "container:", "slirp4netns:,,,", "none:x", "a" * 5000]

TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                 st.from_regex(r"[0-9a-z:\-/\[\].,=]{0,20}", fullmatch=True))


def clear_error_only(fn, *args) -> None:
    try:
        fn(*args)
    except RootlessError:
        pass


PARSERS = {
    "network": netspec.parse_network,
    "publish": netspec.parse_publish,
    "expose": netspec.parse_expose,
    "link": netspec.parse_link,
    "add_host": netspec.parse_add_host,
    "dns": lambda t: netspec.check_dns((t,)),
    "mac": netspec.check_mac,
    "env": lambda t: runspec.merge_env_arg(t, {"HOME": "/root"}),
    "env_file": lambda t: runspec.parse_env_file(t, "env.list", {"A": "1"}),
    "user": lambda t: users.resolve(t, "root:x:0:0::/root:/bin/sh\nbig:x:4294967295:0::/:/bin/sh\n",
                                    "root:x:0:\nwheel:x:10:root\n"),
    "user_check": lambda t: users.check(t, 65536, 65536),
    "log_opt": lambda t: logs.log_config(None, [t], config.LOG_DEFAULTS),
    "log_driver": lambda t: logs.log_config(t, [], config.LOG_DEFAULTS),
    "signal": procsettings.signal_number,
    "detach_keys": attach.parse_detach_keys,
    "reference": reference.parse,
    "platform": manifest.parse_platform,
    "volume": volumes.parse,
    "mount": volumes.parse_mount,
    "tmpfs": volumes.parse_tmpfs,
    "volume_name": volumes.check_name,
    "memory": lambda t: cgroups.parse(cgroups.LimitOptions(memory=t)),
    "memory_swap": lambda t: cgroups.parse(cgroups.LimitOptions(memory="64m", memory_swap=t)),
    "cpus": lambda t: cgroups.parse(cgroups.LimitOptions(cpus=t)),
    "cpu_shares": lambda t: cgroups.parse(cgroups.LimitOptions(cpu_shares=t)),
    "cpuset": lambda t: cgroups.parse(cgroups.LimitOptions(cpuset_cpus=t)),
    "pids_limit": lambda t: cgroups.parse(cgroups.LimitOptions(pids_limit=t)),
    "blkio_weight": lambda t: cgroups.parse(cgroups.LimitOptions(blkio_weight=t)),
    "device_bps": lambda t: cgroups.parse(cgroups.LimitOptions(device_read_bps=(t,))),
    "cap_add": lambda t: security.capabilities((t,), ()),
    "cap_drop": lambda t: security.capabilities((), (t,)),
    "security_opt": lambda t: security.security_opts((t,)),
    "device": lambda t: security.devices((t,)),
    "build_arg": lambda t: build_ops.parse_build_args([t], {}),
    "label": lambda t: runspec.parse_labels([t]),
    "word": lambda t: shellwords.expand_word(t, {"A": "1", "EMPTY": ""}),
    "words": lambda t: shellwords.expand_words(t, {"A": "a b"}),
    "dockerignore": lambda t: dockerignore.Matcher(dockerignore.read_patterns(t)).excluded("a/b/c"),
    "dockerfile": lambda t: dockerfile.parse(t),
    "dockerfile_from": lambda t: dockerfile.parse(f"FROM {t}\nRUN x\n"),
    "dockerfile_copy": lambda t: dockerfile.parse(f"FROM a\nCOPY {t}\n"),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT)
def test_flag_parsers_give_a_clear_error_or_a_value(name, text):
    clear_error_only(PARSERS[name], text)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_flag_parsers_on_the_hostile_corpus(name):
    for text in HOSTILE:
        clear_error_only(PARSERS[name], text)


@given(text=TEXT)
@settings(max_examples=300, deadline=None)
def test_time_parsers_raise_value_errors_only(text):
    for fn in (logs.parse_since, logs.parse_duration, logs.parse_time, config.parse_size):
        try:
            fn(text)
        except ValueError:
            pass


def test_uids_out_of_range_are_refused_before_anything_starts():
    for spec in ("4294967295", "0:4294967295", "99999999999", "4294967296:0"):
        with pytest.raises(RootlessError, match="out of range"):
            users.check(spec)
    with pytest.raises(RootlessError, match="uid 70000 is not mapped"):
        users.check("70000", 65536, 65536)
    with pytest.raises(RootlessError, match="gid 65536 is not mapped"):
        users.check("0:65536", 65536, 65536)
    users.check("65535:65535", 65536, 65536)
    users.check("nobody")  # names are resolved in the image
    with pytest.raises(RootlessError, match="out of range"):
        users.resolve("big", "big:x:4294967295:0::/:/bin/sh\n", "")
    with pytest.raises(RootlessError, match="unable to find user"):
        users.resolve("٣", "", "")  # not an ASCII number: a name, which this image lacks


def test_signal_numbers_the_kernel_does_not_have():
    for bad in ("99", "0", "65", "-9", "SIGFOO", "", "٩"):
        with pytest.raises(RootlessError, match="invalid signal"):
            procsettings.signal_number(bad)
    assert procsettings.signal_number("9") == 9 and procsettings.signal_number("sigterm") == 15


def test_publish_errors_quote_what_was_typed():
    with pytest.raises(RootlessError, match=r"invalid container port '-1' in '80:-1'"):
        netspec.parse_publish("80:-1")
    with pytest.raises(RootlessError, match=r"invalid host port 'x' in 'x:80'"):
        netspec.parse_publish("x:80")


# ---- whole command lines ---------------------------------------------------------------------
WORDS = sorted({w for path in COMMANDS for w in path} | {d for c in COMMANDS.values() for p in c.params
                                                         if hasattr(p.decl, "decls") for d in p.decl.decls})
ARGV = st.lists(st.one_of(st.sampled_from(WORDS), TEXT, st.sampled_from(["--root", "--debug", "-it", "-e",
                                                                          "--help", "-p", "--format"])),
                max_size=8)


def _typer_parse(argv: list[str]) -> None:
    """typer's parse of the line, the command replaced by a no-op (nothing runs); whatever it
    raises must be something the CLI's error boundary reports as a usage error, not internal."""
    import contextlib
    import io

    import typer

    from rootless.cli import typer_app
    app = typer_app.build(lambda cmd, kwargs: 0, lambda root, debug: None)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            typer.main.get_command(app).main(args=argv, prog_name="rootless", standalone_mode=False)
    except (SystemExit, RootlessError):
        pass
    except Exception as e:  # noqa: BLE001 - the boundary's verdict is the test
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            main._other_error(e, 125)
        assert "rootless: internal error" not in err.getvalue(), f"{argv!r}: {e!r}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=ARGV)
@example(argv=["run", "-p", "80:-1", "img"])
@example(argv=["kill", "-s", "99", "c"])
@example(argv=["--root"])
@example(argv=["logs", "--tail", "-5", "c"])
def test_any_command_line_parses_or_is_a_usage_error(argv):
    try:
        fast.parse(argv)
    except RootlessError:
        pass
    _typer_parse(argv)


# ---- what images and --format bring: manifests, tar members, Go templates ---------------------------
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4),
                                               st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                       max_leaves=12)
MANIFEST_KEYS = st.fixed_dictionaries({}, optional={
    "schemaVersion": st.one_of(st.just(2), JSONISH), "mediaType": st.one_of(st.sampled_from(sorted(manifest.MANIFESTS)),
                                                                          JSONISH),
    "config": JSONISH, "layers": JSONISH, "manifests": JSONISH})


@given(doc=st.one_of(MANIFEST_KEYS, JSONISH), raw=st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_manifests_from_a_registry_give_a_clear_error_or_parts(doc, raw):
    import json
    for data in (json.dumps(doc).encode(), raw):
        try:
            kind, parsed = manifest.parse(data, "", "manifest")
            if kind in manifest.MANIFESTS:
                manifest.image_parts(parsed, "manifest")
            else:
                manifest.index_entries(parsed, "index")
        except RootlessError:
            pass


@given(name=TEXT, link=TEXT, kind=st.sampled_from([b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"g", b"x"]),
       major=st.integers(0, 300), minor=st.integers(0, 300))
@settings(max_examples=500, deadline=None)
def test_tar_members_are_checked_or_refused_clearly(name, link, kind, major, minor):
    import tarfile

    from layers import tarsafe
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.devmajor, m.devminor = kind, link, major, minor
    try:
        rel = tarsafe.check_member(m, "layer")
    except RootlessError:
        return
    assert not rel.startswith("/") and ".." not in rel.split("/")


@given(template=st.one_of(TEXT, st.from_regex(r"(table )?\{\{[ .a-zA-Z|()\"0-9$:=-]{0,30}\}\}[a-z\\t]{0,5}",
                                                fullmatch=True)))
@settings(max_examples=500, deadline=None)
def test_go_templates_give_a_clear_error_or_text(template):
    from rootless.cli import gotemplate
    rows = [{"ID": "abc", "Names": "x", "Labels": {"a": "b"}, "Ports": [1, 2], "Size": 3.5}]
    try:
        gotemplate.render_rows(template, rows, {"ID": "CONTAINER ID"})
    except RootlessError:
        pass


# ---- seccomp profiles (--security-opt seccomp=FILE) ------------------------------------------------
SECCOMP_ARG = st.fixed_dictionaries({}, optional={
    "index": st.one_of(st.integers(-1, 7), JSONISH), "value": st.one_of(st.integers(-1, 1 << 65), JSONISH),
    "valueTwo": st.one_of(st.integers(0, 1 << 64), JSONISH),
    "op": st.one_of(st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE", "EQ"]), JSONISH)})
SECCOMP_ACTION = st.one_of(st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG",
                                            "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRAP"]), JSONISH)
SECCOMP_COND = st.fixed_dictionaries({}, optional={
    "caps": st.one_of(st.lists(st.sampled_from(["CAP_SYS_ADMIN", "CAP_CHOWN", "bogus"]), max_size=2), JSONISH),
    "arches": st.one_of(st.lists(st.sampled_from(["amd64", "arm64", "x86"]), max_size=2), JSONISH),
    "minKernel": st.one_of(st.sampled_from(["4.8", "99.1", "5", "x", ""]), JSONISH)})
SECCOMP_ENTRY = st.fixed_dictionaries({}, optional={
    "names": st.one_of(st.lists(st.sampled_from(["getpid", "mkdir", "clone", "no_such_call", ""]), max_size=3),
                       JSONISH),
    "name": st.one_of(st.sampled_from(["getpid", "socket"]), JSONISH), "action": SECCOMP_ACTION,
    "errnoRet": st.one_of(st.integers(-1, 70000), JSONISH),
    "args": st.one_of(st.lists(SECCOMP_ARG, max_size=3), JSONISH),
    "includes": st.one_of(SECCOMP_COND, JSONISH), "excludes": st.one_of(SECCOMP_COND, JSONISH)})
SECCOMP_PROFILE = st.fixed_dictionaries({}, optional={
    "defaultAction": SECCOMP_ACTION, "defaultErrnoRet": st.one_of(st.integers(-1, 70000), JSONISH),
    "architectures": st.one_of(st.lists(st.sampled_from(["SCMP_ARCH_X86", "SCMP_ARCH_MIPS", "x"]), max_size=2),
                               JSONISH),
    "archMap": JSONISH, "flags": JSONISH, "syscalls": st.one_of(st.lists(SECCOMP_ENTRY, max_size=4), JSONISH)})


@given(profile=st.one_of(SECCOMP_PROFILE, JSONISH))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_seccomp_profiles_give_a_clear_error_or_a_program(profile):
    """A profile is refused in one line, or checked and compiled: libseccomp never sees what the
    checker let through as something it cannot take without a named error."""
    from rootless.runtime import seccompprofile
    try:
        seccompprofile.check(profile, "p.json")
        prog = seccompprofile.compile_profile(profile, ("CHOWN", "SYS_ADMIN"))
    except RootlessError as e:
        assert "\n" not in str(e)
        return
    assert prog and len(prog) % 8 == 0


# ---- hostile archives (issue 22): cp into a container, the API's PUT archive, layers -------------------
HOSTILE_ARCHIVE_PARTS = st.lists(st.tuples(
    st.sampled_from(["a", "a/b", "l", "l/x", "l/secret.txt", ".wh.a", "./", "a/../l", "/abs", "../up"]),
    st.sampled_from([b"0", b"1", b"2", b"3", b"5", b"6", b"S"]),
    st.sampled_from(["a", "a/b", "l", "l/secret.txt", "HOME", "HOME/secret.txt", "../secret.txt", ""])),
    min_size=1, max_size=6)


def _corpus_home(tmp_path_factory):
    from tests import hostile_tars
    home = tmp_path_factory.mktemp("home")
    return home, hostile_tars.home_with_victims(home)


def test_hostile_archive_corpus_is_refused_clearly_or_contained(tmp_path_factory):
    """Every archive of the hostile corpus (symlink then file, a directory or a hard link through a
    symlink, hard links out, ``..``, absolute names, and a GNU-sparse member) unpacked as a layer and
    as a plain archive: a one-line error or an unpack inside the destination; the home is unchanged."""
    import io

    from layers.unpack import unpack_layer
    from tests import hostile_tars
    home, before = _corpus_home(tmp_path_factory)
    corpus = [data for data, _outcome, _member in hostile_tars.hostile(home).values()]
    corpus.append(hostile_tars.sparse_tar(tmp_path_factory.mktemp("sparse")))
    for data in corpus:
        for archive in (False, True):
            dest = tmp_path_factory.mktemp("dest")
            try:
                unpack_layer(io.BytesIO(data), str(dest), what="archive", **({"archive": True} if archive else {}))
            except RootlessError as e:
                assert "\n" not in str(e)
            assert hostile_tars.snapshot(home) == before


@given(parts=HOSTILE_ARCHIVE_PARTS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_hostile_archives_never_reach_the_home(tmp_path_factory, parts):
    """Archives mixed from the corpus' pieces: the whole-archive check and the archive unpack both
    refuse in one line or keep everything inside the destination; what the check lets through unpacks."""
    import io
    import tarfile

    from layers import tarsafe
    from layers.unpack import unpack_layer
    from tests import hostile_tars
    home, before = _corpus_home(tmp_path_factory)
    members = []
    for name, kind, link in parts:
        link = link.replace("HOME", str(home))
        kind = tarfile.REGTYPE if kind == b"S" else kind
        members.append(hostile_tars._entry(name, kind, b"pwned\n" if kind == tarfile.REGTYPE else b"",
                                           linkname=link if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "",
                                           mode=0o755))  # a directory the unprivileged test can enter
    data = hostile_tars.tar_of(*members)
    checked = True
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
            tarsafe.check_archive(tf, "the archive")
    except RootlessError as e:
        assert "\n" not in str(e)
        checked = False
    dest = tmp_path_factory.mktemp("dest")
    try:
        unpack_layer(io.BytesIO(data), str(dest), what="archive", archive=True)
    except RootlessError as e:
        assert "\n" not in str(e)
        assert not checked or "replaces a directory" in str(e) or "symlink or a file" in str(e), str(e)
    assert hostile_tars.snapshot(home) == before


def test_a_device_with_a_nul_byte_is_a_clear_error():
    """Found by the fuzzing above: ``os.stat`` raised ValueError (an internal error) for a NUL."""
    from rootless.base.errors import UsageError
    from rootless.runtime import security
    with pytest.raises(UsageError, match="invalid --device"):
        security.devices(("/dev/null\0x",))
