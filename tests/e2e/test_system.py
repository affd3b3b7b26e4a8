"""``info``, ``unshare``, ``system reset``, ``version`` and the embedded demo image."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.userns

DEMO = REPO / "rootless" / "data" / "demo-image.tar.gz"


def test_embedded_demo_image_runs(rl):
    assert "Loaded image: rootless-demo:latest" in rl("load", "-i", DEMO).out
    out = rl("run", "--rm", "rootless-demo").out
    assert "Hello from a rootless container!" in out
    assert "uid=0(root)" in out


def test_info_text_and_json(rl):
    text = rl("info").out
    for name in ("user namespaces", "subuid", "newuidmap", "overlay", "fuse-overlayfs", "slirp4netns",
                 "cgroups", "storage", "apparmor"):
        assert name in text
    checks = json.loads(rl("info", "--format", "json").out)
    by_name = {c["name"]: c for c in checks}
    assert by_name["user namespaces"]["status"] == "ok"
    assert by_name["overlay"]["status"] == "ok" and "kernel" in by_name["overlay"]["detail"]
    assert all(set(c) == {"name", "status", "detail", "action", "fix"} for c in checks)
    assert "unsupported format" in rl("info", "--format", "yaml", expect=125).err


def test_info_shows_a_forced_overlay_method(tmp_path):
    from tests.conftest import Rootless
    rl = Rootless(tmp_path, overlay="fuse")
    by_name = {c["name"]: c for c in json.loads(rl("info", "--format", "json").out)}
    assert "fuse" in json.dumps(by_name["overlay"])


def test_unshare_is_root_of_the_user_namespace_and_can_remove_subordinate_files(rl, images):
    rl.load(images, "layered")
    assert rl("unshare", "id", "-u").out.strip() == "0"
    layer_files = [p for p in (rl.root / "layers").rglob("owned-by-app.txt")]
    assert layer_files and layer_files[0].stat().st_uid != os.getuid()
    victim = layer_files[0].parent
    rl("unshare", "rm", "-rf", victim)
    assert not victim.exists()
    assert rl("unshare", "no-such-program", expect=127).err.startswith("rootless: error:")


def test_system_reset_wipes_the_store(rl, images):
    rl.load(images, "layered")
    rl("run", "--name", "kept", "layered")
    assert "needs confirmation" in rl("system", "reset", expect=125).err
    rl("system", "reset", "--force")
    assert not rl.root.exists() or not any(rl.root.iterdir())
    assert rl("images", "-q").out == ""


def test_version_and_help(rl):
    assert rl("version").out.startswith("rootless version ")
    assert "Run a command in a new container" in rl("--help").out
    assert "--entrypoint" in rl("run", "--help").out
    r = rl("no-such-command", expect=125)
    assert "rootless: error:" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("argv", [["--version"], ["-v"], ["--root", "/nonexistent/x", "--version"], ["-v", "ps"]])
def test_the_version_flag_prints_the_version_line_as_docker_does(rl, argv):
    """`docker --version` / `-v`: one line, exit 0, whatever else is on the command line."""
    r = rl(*argv)
    assert r.out == rl("version").out and r.err == ""
