"""rootless.runtime.pause: which way a container is paused, and the cgroup v2 freezer's files
(a fake cgroup directory: this host may have no delegated cgroup v2)."""

from __future__ import annotations

import threading

import pytest

from rootless.base.errors import RootlessError
from rootless.runtime import pause


def _scope(tmp_path, events: str = "populated 1\nfrozen 0\n"):
    ctr = tmp_path / "scope" / "ctr"
    ctr.mkdir(parents=True)
    (ctr / "cgroup.freeze").write_text("0\n")
    (ctr / "cgroup.events").write_text(events)
    return tmp_path / "scope", ctr


def test_is_paused_only_for_the_pid_1_that_was_paused():
    assert pause.is_paused({"status": "running", "pid": 42, "paused": 42})
    assert not pause.is_paused({"status": "running", "pid": 43, "paused": 42})  # started again since
    assert not pause.is_paused({"status": "exited", "pid": 0, "paused": 0})
    assert not pause.is_paused({"status": "running", "pid": 42})


def test_method_is_the_freezer_where_the_container_has_a_cgroup_of_its_own(tmp_path):
    scope, _ctr = _scope(tmp_path)
    assert pause.method({"cgroup": str(scope)}) == pause.FREEZER
    assert pause.method({"cgroup": ""}) == pause.SIGNALS
    assert pause.method({}) == pause.SIGNALS
    assert pause.method({"cgroup": str(tmp_path / "gone")}) == pause.SIGNALS


def test_freezer_writes_cgroup_freeze_and_waits_for_the_kernel(tmp_path):
    scope, ctr = _scope(tmp_path)

    def kernel():  # the kernel says frozen a little later
        import time
        time.sleep(0.05)
        (ctr / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    t = threading.Thread(target=kernel)
    t.start()
    st = {"status": "running", "pid": 7, "cgroup": str(scope)}
    assert pause.pause(st) == pause.FREEZER
    t.join()
    assert (ctr / "cgroup.freeze").read_text() == "1"
    (ctr / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    pause.unpause({**st, "paused": 7, "pause_method": pause.FREEZER})
    assert (ctr / "cgroup.freeze").read_text() == "0"


def test_a_freezer_that_never_freezes_is_one_line(tmp_path):
    _dir, ctr = _scope(tmp_path)
    with pytest.raises(RootlessError, match="did not freeze"):
        pause._freeze(str(ctr / "cgroup.freeze"), True, timeout=0.1)
