"""Where the store goes by default: the home's data directory, unless that is on a network
filesystem (NFS, Lustre, GPFS, ...), where overlay upper directories and user xattrs fail: then
a local directory. (The real NFS case runs in the guest: tests/vm/test_nfs.py.)"""

from __future__ import annotations

import os
import pwd

import pytest

from rootless.base import paths


def mountinfo(home_fs: str, var_tmp_fs: str = "ext4") -> str:
    return (f"22 1 8:1 / / rw,relatime shared:1 - {var_tmp_fs} /dev/sda1 rw\n"
            f"40 22 0:50 / /home rw,relatime shared:30 - {home_fs} server:/export/home rw,vers=4.2\n")


@pytest.mark.parametrize("fs", ["nfs4", "nfs", "lustre", "gpfs", "cifs", "fuse.sshfs"])
def test_a_home_on_a_network_filesystem_sends_the_store_to_var_tmp(fs):
    user = pwd.getpwuid(os.getuid()).pw_name
    assert paths.local_root("/home/alice/.local/share/rootless", mountinfo(fs)) == \
        (f"/var/tmp/{user}/rootless", fs)


def test_a_local_home_keeps_the_store():
    assert paths.local_root("/home/alice/.local/share/rootless", mountinfo("ext4")) is None


def test_no_local_place_keeps_the_store_where_it_was():
    assert paths.local_root("/home/alice/x", mountinfo("nfs4", var_tmp_fs="nfs4")) is None


def test_an_explicit_root_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("ROOTLESS_ROOT", str(tmp_path / "r"))
    assert paths.default_root("/elsewhere") == str(tmp_path / "r")
    monkeypatch.delenv("ROOTLESS_ROOT")
    assert paths.default_root("/elsewhere") == "/elsewhere"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.default_root() == str(tmp_path / "data" / "rootless")  # tmp_path is local here
