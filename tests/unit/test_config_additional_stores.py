"""Tests for ``storage.additional_stores`` in rootless/base/config.py and its environment override."""

import pytest

from rootless.base import config
from rootless.base.errors import RootlessError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("ROOTLESS_CONFIG", raising=False)
    monkeypatch.delenv("ROOTLESS_ADDITIONAL_STORES", raising=False)
    monkeypatch.setenv("ROOTLESS_SYSTEM_CONFIG", str(tmp_path / "system.toml"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write(tmp_path, text: str, name: str = "config.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_absent_means_none(tmp_path):
    cfg = config.load(write(tmp_path, "[storage]\n"))
    assert cfg.additional_stores == () and config.additional_stores(cfg) == ()


def test_a_list_of_directories(tmp_path):
    cfg = config.load(write(tmp_path, '[storage]\nadditional_stores = ["/shared/a", "~/b", "/shared/a"]\n'))
    assert cfg.additional_stores == ("/shared/a", str(tmp_path / "home" / "b"), "/shared/a")
    assert config.additional_stores(cfg) == ("/shared/a", str(tmp_path / "home" / "b"))  # each once


@pytest.mark.parametrize("value", ['"/shared/a"', "[1]", '[""]', "true"])
def test_a_bad_value_names_the_line(tmp_path, value):
    path = write(tmp_path, f"[storage]\noverlay = \"auto\"\nadditional_stores = {value}\n")
    with pytest.raises(RootlessError) as e:
        config.load(path)
    assert f"{path}:3" in str(e.value) and "storage.additional_stores" in str(e.value)


def test_the_environment_overrides_the_config(tmp_path, monkeypatch):
    cfg = config.load(write(tmp_path, '[storage]\nadditional_stores = ["/from/config"]\n'))
    monkeypatch.setenv("ROOTLESS_ADDITIONAL_STORES", "/x::/y:/x")
    assert config.additional_stores(cfg) == ("/x", "/y")
    monkeypatch.setenv("ROOTLESS_ADDITIONAL_STORES", "")  # set empty: none at all
    assert config.additional_stores(cfg) == ()


def test_the_user_file_wins_over_the_system_one(tmp_path):
    write(tmp_path, '[storage]\nadditional_stores = ["/site/images"]\n', "system.toml")
    assert config.load(write(tmp_path, "")).additional_stores == ("/site/images",)
    assert config.load(write(tmp_path, '[storage]\nadditional_stores = ["/mine"]\n')).additional_stores == ("/mine",)
