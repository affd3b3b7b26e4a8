"""Ubuntu's AppArmor restriction on unprivileged user namespaces: detection from a sysctl file
(``$ROOTLESS_APPARMOR_SYSCTL``), the ``info`` check, the one-line error at ``run``, and the
profile installer's ``--print`` (this machine has no AppArmor, so nothing here needs one)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rootless.base import apparmor, idmap, syscalls, userns
from rootless.base.channel import Channel
from rootless.base.errors import EXIT_TOOL, HostError, RootlessError
from rootless.cli import infoview
from rootless.engine import preflight

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-apparmor-profile.sh"
TEMPLATE = REPO / "scripts" / "apparmor" / "rootless.profile"
SINGLE = idmap.IdMapping("single", (idmap.Range(0, os.getuid(), 1),), (idmap.Range(0, os.getgid(), 1),))


@pytest.fixture
def sysctl(tmp_path, monkeypatch):
    """Point the detection at a file of ours; ``sysctl("1\\n")`` writes it, ``sysctl(None)`` removes it."""
    path = tmp_path / "apparmor_restrict_unprivileged_userns"
    monkeypatch.setenv(apparmor.SYSCTL_ENV, str(path))

    def set_text(text):
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    return set_text


# ---- detection ----------------------------------------------------------------------
@pytest.mark.parametrize("text, on", [("1\n", True), ("0\n", False), (None, False), ("", False),
                                      ("junk\n", False)])
def test_restricted_reads_the_sysctl_file(sysctl, text, on):
    sysctl(text)
    assert apparmor.restricted() is on
    assert apparmor.sysctl_text() == text


@pytest.mark.parametrize("label, profile, unprivileged", [
    (None, None, False),
    ("unconfined", None, False),
    ("unprivileged_userns (enforce)", "unprivileged_userns", True),
    ("unconfined//&unprivileged_userns (enforce)", "unconfined//&unprivileged_userns", True),
    ("rootless.usr.local.bin.rootless (unconfined)", "rootless.usr.local.bin.rootless", False),
    ("docker-default (enforce)", "docker-default", False),
])
def test_labels(label, profile, unprivileged):
    assert apparmor.profile_of(label) == profile
    assert apparmor.in_unprivileged_profile(label) is unprivileged


# ---- rootless info -------------------------------------------------------------------
@pytest.mark.parametrize("text, label, status, in_detail", [
    (None, None, "info", "not present"),
    ("0\n", None, "ok", "restriction off"),
    ("1\n", None, "fail", "restriction on"),
    ("1\n", "unconfined", "fail", "no AppArmor profile attached"),
    ("1\n", "rootless.usr.local.bin.rootless (unconfined)", "ok", "rootless.usr.local.bin.rootless"),
    ("1\n", "snap.other.app (enforce)", "warn", "snap.other.app"),
])
def test_info_check(text, label, status, in_detail):
    c = preflight.check_apparmor(text, label)
    assert c.name == "apparmor userns" and c.status == status
    assert in_detail in c.detail
    if status in ("fail", "warn"):
        assert "sudo scripts/install-apparmor-profile.sh" in c.fix
        assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in c.fix
        assert "\n" not in c.fix
    else:
        assert c.fix is None


def test_info_check_follows_the_env_var(sysctl):
    sysctl("1\n")
    c = preflight.host_apparmor()  # no AppArmor here: no label, so nothing lifts the restriction
    assert c.status == "fail" and "apparmor_restrict_unprivileged_userns=1" in c.detail
    text = infoview.render_text([c])
    assert text.startswith("fail  apparmor userns")
    assert "fix: sudo scripts/install-apparmor-profile.sh" in " ".join(text.split())
    sysctl("0\n")
    assert preflight.host_apparmor().status == "ok"
    sysctl(None)
    assert preflight.host_apparmor().status == "info"


# ---- the error at run -----------------------------------------------------------------
def test_the_error_is_one_line_with_the_fix():
    e = apparmor.restriction_error("create the user namespace")
    assert isinstance(e, HostError) and e.exit_code == EXIT_TOOL == 125
    assert "\n" not in e.message and "\n" not in e.hint
    assert e.message.startswith("create the user namespace: refused by AppArmor")
    assert "kernel.apparmor_restrict_unprivileged_userns=1" in e.message
    assert "sudo scripts/install-apparmor-profile.sh" in e.hint
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in e.hint


def test_the_error_crosses_the_channel_unchanged():
    a, b = Channel.pair()
    try:
        b.send_error(apparmor.restriction_error("create the user namespace"))
        with pytest.raises(RootlessError) as info:
            a.expect("userns")
    finally:
        a.close()
        b.close()
    assert info.value.message == apparmor.restriction_error("create the user namespace").message
    assert info.value.hint.startswith("to fix, sudo scripts/install-apparmor-profile.sh")
    assert info.value.exit_code == 125


@pytest.mark.parametrize("text, label, refused, blamed", [
    ("1\n", "unprivileged_userns (enforce)", False, True),  # moved into Ubuntu's profile
    ("1\n", None, True, True),  # unshare refused, no profile of ours
    ("1\n", "unconfined", True, True),
    ("1\n", "unconfined", False, False),  # nothing failed and nothing moved us
    ("1\n", "rootless.usr.bin.rootless (unconfined)", True, False),  # our profile: something else
    ("0\n", "unprivileged_userns (enforce)", True, False),  # sysctl off: never blamed
    (None, None, True, False),  # no such sysctl
])
def test_when_apparmor_is_blamed(sysctl, monkeypatch, text, label, refused, blamed):
    sysctl(text)
    monkeypatch.setattr(apparmor, "label", lambda pid="self": label)
    if blamed:
        with pytest.raises(HostError, match="refused by AppArmor"):
            userns._apparmor_check("create the user namespace", refused)
    else:
        userns._apparmor_check("create the user namespace", refused)


def _fork_into_userns_error(monkeypatch, unshare) -> RootlessError:
    """fork_into_userns with a stand-in for unshare (the forked child inherits it): the error
    the parent raises. No real namespace is made."""
    monkeypatch.setattr(syscalls, "unshare", unshare)
    with pytest.raises(RootlessError) as info:
        userns.fork_into_userns(SINGLE, lambda ch: 0)
    return info.value


def test_run_names_apparmor_when_the_namespace_lands_in_unprivileged_userns(sysctl, monkeypatch):
    sysctl("1\n")
    monkeypatch.setattr(apparmor, "label", lambda pid="self": "unprivileged_userns (enforce)")
    e = _fork_into_userns_error(monkeypatch, lambda flags: None)
    assert e.message == apparmor.restriction_error("create the user namespace").message
    assert e.hint == apparmor.restriction_error("create the user namespace").hint


def refuse(flags):
    raise OSError(1, "unshare: Operation not permitted")


def test_run_names_apparmor_when_unshare_is_refused(sysctl, monkeypatch):
    sysctl("1\n")
    monkeypatch.setattr(apparmor, "label", lambda pid="self": None)
    assert "refused by AppArmor" in _fork_into_userns_error(monkeypatch, refuse).message


@pytest.mark.parametrize("text", ["0\n", None])
def test_run_is_unchanged_without_the_restriction(sysctl, monkeypatch, text):
    sysctl(text)
    monkeypatch.setattr(apparmor, "label", lambda pid="self": "unprivileged_userns (enforce)")
    e = _fork_into_userns_error(monkeypatch, refuse)
    assert "AppArmor" not in e.message and "Operation not permitted" in e.message


# ---- the profile installer --------------------------------------------------------------
def _print(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--print", *args], capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def entry_point(tmp_path):
    """A console script as pip writes one (a "#!" line naming the interpreter), behind a symlink."""
    real = tmp_path / "venv" / "bin" / "rootless"
    real.parent.mkdir(parents=True)
    real.write_text(f"#!{sys.executable}\nimport sys\nfrom rootless.cli.main import main\nsys.exit(main())\n")
    real.chmod(0o755)
    link = tmp_path / "rootless"
    link.symlink_to(real)
    return link, os.path.realpath(real)


def test_print_names_the_resolved_path(entry_point):
    link, real = entry_point
    res = _print(str(link))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    name = "rootless." + real.lstrip("/").replace("/", ".")
    assert f"profile {name} {real} flags=(unconfined) {{" in out  # the real path, never the link
    assert "\n  userns,\n" in out
    assert out.startswith("# Written by") and "abi <abi/4.0>," in out and "include <tunables/global>" in out
    assert f"include if exists <local/{name}>" in out
    assert "It is a script" in out and "@NAME@" not in out and "@PATH@" not in out
    assert out.count("\nprofile ") == 1  # no interpreter unless asked


def test_print_with_the_interpreter(entry_point):
    link, real = entry_point
    res = _print("--interpreter", str(link))
    assert res.returncode == 0, res.stderr
    py = os.path.realpath(sys.executable)
    assert f" {real} flags=(unconfined)" in res.stdout
    assert f" {py} flags=(unconfined) {{\n  userns," in res.stdout
    assert res.stdout.count("abi <abi/4.0>,") == 1


def test_print_refuses_what_it_cannot_write(tmp_path):
    odd = tmp_path / "a b"
    odd.write_text("#!/bin/sh\n")
    for args in ([str(odd)], [str(tmp_path / "missing")]):
        res = _print(*args)
        assert res.returncode != 0 and res.stdout == ""
        assert res.stderr.startswith("install-apparmor-profile: error:") and res.stderr.count("\n") == 1


def test_the_template_has_the_rule_and_the_placeholders():
    text = TEMPLATE.read_text()
    assert "profile @NAME@ @PATH@ flags=(unconfined) {" in text and "  userns," in text


# ---- the profile the package carries: rootless system apparmor-profile ------------------------
def _body(text: str) -> list[str]:
    """A profile's lines without the "# " notes of its head."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_the_package_carries_the_template_the_hint_needs():
    """A pip install has no scripts/: the template is package data, the script reads the same file,
    and the hint names the command that ships with the package."""
    assert Path(apparmor.PROFILE_TEMPLATE) == REPO / "rootless" / "data" / "apparmor.profile"
    assert TEMPLATE.resolve() == Path(apparmor.PROFILE_TEMPLATE).resolve()
    import tomllib
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["rootless.data"] == ["*"]
    assert 'sudo "$(command -v rootless)" system apparmor-profile --install' in apparmor.FIX
    assert "\n" not in apparmor.FIX


def test_system_apparmor_profile_prints_what_the_script_prints(entry_point):
    link, real = entry_point
    from tests.conftest import rootless_argv
    res = subprocess.run([*rootless_argv(), "system", "apparmor-profile", str(link)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    name = "rootless." + real.lstrip("/").replace("/", ".")
    out = res.stdout
    assert out.startswith(f"# Written by rootless system apparmor-profile for {real}\n# It is a script")
    assert f"profile {name} {real} flags=(unconfined) {{\n  userns,\n" in out  # the real path, never the link
    assert "@NAME@" not in out and "@PATH@" not in out and "Template of" not in out
    assert _body(out) == _body(_print(str(link)).stdout)  # one template, the same profile
    assert _body(out)[:2] == ["abi <abi/4.0>,", "include <tunables/global>"]


@pytest.fixture
def apparmor_d(tmp_path):
    """A stand-in /etc/apparmor.d (with the abi the userns rule needs) and apparmor_parser, which
    records its arguments and fails when told to."""
    d = tmp_path / "apparmor.d"
    (d / "abi").mkdir(parents=True)
    (d / "abi" / "4.0").write_text("")
    log = tmp_path / "parser.log"
    parser = tmp_path / "apparmor_parser"
    parser.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                      f'[ ! -e {tmp_path}/refuse ] || {{ echo "syntax error" >&2; exit 1; }}\n')
    parser.chmod(0o755)
    return d, str(parser), log


def test_install_writes_loads_and_uninstall_removes(entry_point, apparmor_d):
    link, real = entry_point
    d, parser, log = apparmor_d
    name, text = apparmor.profile(str(link))
    path = apparmor.install_profile(str(link), str(d), parser)
    assert path == str(d / name) and Path(path).read_text() == text
    assert Path(path).stat().st_mode & 0o777 == 0o644
    assert log.read_text() == f"-r {path}\n"
    assert [p.name for p in d.iterdir() if p.name.startswith(".tmp")] == []
    assert apparmor.uninstall_profile(str(link), str(d), parser) == path
    assert not Path(path).exists() and log.read_text().endswith(f"-R {path}\n")
    assert apparmor.uninstall_profile(str(link), str(d), parser) is None


def test_install_refuses_and_leaves_nothing(entry_point, apparmor_d, tmp_path):
    link, _real = entry_point
    d, parser, _log = apparmor_d
    (tmp_path / "refuse").write_text("")
    with pytest.raises(HostError, match="refused, nothing installed"):
        apparmor.install_profile(str(link), str(d), parser)
    assert sorted(p.name for p in d.iterdir()) == ["abi"]
    (d / "abi" / "4.0").unlink()
    with pytest.raises(HostError, match="no abi/4.0"):
        apparmor.install_profile(str(link), str(d), parser)
    d.chmod(0o555)
    try:
        with pytest.raises(RootlessError, match="needs root") as info:
            apparmor.install_profile(str(link), str(d), parser)
        assert "sudo" in info.value.hint and "system apparmor-profile --install" in info.value.hint
    finally:
        d.chmod(0o755)
    odd = tmp_path / "a b"
    odd.write_text("#!/bin/sh\n")
    with pytest.raises(RootlessError, match="only letters, digits"):
        apparmor.profile(str(odd))
