"""Tests for rootless/base/config.py: the TOML configuration file."""

import os

import pytest

from rootless.base import config
from rootless.base.config import Config
from rootless.base.errors import RootlessError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("ROOTLESS_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write(tmp_path, text: str | bytes, name: str = "config.toml") -> str:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(p)


def test_missing_file_gives_defaults(tmp_path):
    assert config.load(str(tmp_path / "absent.toml")) == Config()
    assert config.load() == Config()  # the default path does not exist either


@pytest.mark.parametrize("text, root, overlay, idmap", [
    ("", None, "auto", "auto"),
    ("[storage]\n", None, "auto", "auto"),
    ('[storage]\nroot = "/scratch/me"\noverlay = "fuse"\n\n[userns]\nidmap = "single"\n',
     "/scratch/me", "fuse", "single"),
    ('[storage]\noverlay = "kernel"\n', None, "kernel", "auto"),
    ('[storage]\noverlay = "copy"\n', None, "copy", "auto"),
    ('[storage]\noverlay = "auto"\nroot = ""\n', None, "auto", "auto"),
    ('[userns]\nidmap = "auto"\n[other]\nignored = 1\n', None, "auto", "auto"),
])
def test_valid_file(tmp_path, text, root, overlay, idmap):
    path = write(tmp_path, text)
    assert config.load(path) == Config(path=path, root=root, overlay=overlay, idmap=idmap)


def test_root_tilde_is_expanded(tmp_path):
    path = write(tmp_path, '[storage]\nroot = "~/data/rootless"\n')
    assert config.load(path).root == os.path.join(str(tmp_path / "home"), "data/rootless")


@pytest.mark.parametrize("text", [
    "[storage\n",
    "overlay = \n",
    '[storage]\noverlay = "a"\noverlay = "b"\n',
    b"\xff\xfe[storage]\n",
])
def test_invalid_toml_names_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(RootlessError, match="bad config") as e:
        config.load(path)
    assert path in str(e.value)
    assert e.value.hint


@pytest.mark.parametrize("text, key, allowed", [
    ('[storage]\noverlay = "zfs"\n', "storage.overlay", "auto, kernel, fuse, copy"),
    ('[userns]\nidmap = "subid"\n', "userns.idmap", "auto, single"),
    ('[userns]\nidmap = "Single"\n', "userns.idmap", "auto, single"),
])
def test_invalid_values_list_the_allowed_ones(tmp_path, text, key, allowed):
    path = write(tmp_path, text)
    with pytest.raises(RootlessError) as e:
        config.load(path)
    assert path in str(e.value) and key in str(e.value)
    assert allowed in e.value.hint


def test_unreadable_path_is_an_error(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(RootlessError, match="cannot read config"):
        config.load(str(tmp_path / "dir.toml"))


def test_rootless_config_env_var_is_honoured(tmp_path, monkeypatch):
    path = write(tmp_path, '[storage]\noverlay = "copy"\n', "custom.toml")
    monkeypatch.setenv("ROOTLESS_CONFIG", path)
    assert config.config_path() == path
    assert config.load() == Config(path=path, overlay="copy")


def test_xdg_config_home_is_honoured(tmp_path):
    expected = str(tmp_path / "xdg" / "rootless" / "config.toml")
    assert config.config_path() == expected
    os.makedirs(os.path.dirname(expected))
    write(tmp_path / "xdg" / "rootless", '[userns]\nidmap = "single"\n')
    assert config.load().idmap == "single"


def test_default_path_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config.config_path() == str(tmp_path / "home" / ".config" / "rootless" / "config.toml")


@pytest.mark.parametrize("text, key", [
    ('storage = "/scratch"\n', "[storage]"),
    ('userns = []\n', "[userns]"),
    ('[storage]\nroot = 5\n', "storage.root"),
    ('[storage]\noverlay = 1\n', "storage.overlay"),
    ('[userns]\nidmap = true\n', "userns.idmap"),
])
def test_wrong_types_are_config_errors(tmp_path, text, key):
    """Not an AttributeError or TypeError from deep inside: a config error naming the file."""
    path = write(tmp_path, text)
    with pytest.raises(RootlessError, match="bad config") as e:
        config.load(path)
    assert path in str(e.value) and key in str(e.value)


def test_search_list_is_read_and_the_users_wins(tmp_path, monkeypatch):
    system = write(tmp_path, '[registries]\nsearch = ["sys.example:5000", "docker.io"]\n', "system.toml")
    monkeypatch.setenv("ROOTLESS_SYSTEM_CONFIG", system)
    assert config.load(write(tmp_path, "")).search == ("sys.example:5000", "docker.io")
    user = write(tmp_path, '[registries]\nsearch = ["me.example", "me.example"]\n')
    assert config.load(user).search == ("me.example",)


@pytest.mark.parametrize("value", ['"docker.io"', '["not a host"]', '[""]', '[1]', '["a/b"]'])
def test_bad_search_list_is_named_with_its_line(tmp_path, value):
    path = write(tmp_path, f"[storage]\n\n[registries]\nsearch = {value}\n")
    with pytest.raises(RootlessError, match=rf"{path}:4: registries.search must be a list"):
        config.load(path)
