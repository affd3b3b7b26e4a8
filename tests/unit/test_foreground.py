"""``runtime.foreground.Session``: the one loop of ``run``'s and ``exec``'s parents (issue 23).
No namespaces: a channel pair stands for the child, pipes for its output."""

from __future__ import annotations

import os

from rootless.base.channel import Channel
from rootless.runtime import execute, foreground, launcher


class _Fwd:
    def __init__(self):
        self.pids = []

    def started(self, pid):
        self.pids.append(pid)


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 1 << 20):
        out += chunk
    return out


def test_the_output_left_in_the_pipes_is_shown_when_the_child_is_gone():
    parent, kid = Channel.pair()
    out_r, out_w = os.pipe()
    shown_r, shown_w = os.pipe()
    fwd = _Fwd()
    session = foreground.Session(parent, fwd, interactive=False, outputs={out_r: shown_w})
    seen = []
    kid.send("pid", pid=4242)
    os.write(out_w, b"last words")
    kid.send("error", message="it failed", exit_code=126)
    kid.close()
    try:
        assert session.run(False, lambda pid: seen.append(pid)) == foreground.ENDED
    finally:
        session.close()
        parent.close()
    os.close(shown_w)
    assert _read_all(shown_r) == b"last words"
    assert fwd.pids == [4242] and seen == [4242]
    assert session.error["message"] == "it failed" and not session.finished
    os.close(out_w)
    os.close(shown_r)


def test_the_recorded_end_stops_the_loop_with_its_code():
    parent, kid = Channel.pair()
    session = foreground.Session(parent, _Fwd(), interactive=True, detach_keys=b"\x10\x11", eof_to_pty=True)
    kid.send("finished", code=7)
    try:
        assert session.run(False) == foreground.ENDED
    finally:
        session.close()
        parent.close()
        kid.close()
    assert session.finished and session.code == 7 and session.error is None


def test_a_detached_start_leaves_once_the_process_runs():
    parent, kid = Channel.pair()
    session = foreground.Session(parent, _Fwd(), interactive=False)
    kid.send("pid", pid=99)
    try:
        assert session.run(False, lambda _pid: True) == foreground.LEFT
    finally:
        session.close()
        parent.close()
        kid.close()
    assert session.code is None and not session.finished


def test_run_and_exec_have_no_loop_of_their_own():
    for module in (launcher, execute):
        source = open(module.__file__).read()
        assert "Session(" in source and ".select(" not in source, module.__name__


def test_a_warning_of_the_child_goes_to_the_context(capfd):
    """The keeper's and the container's warnings reach the face through ``warn`` (the Context's),
    which shows, collects or drops them; the loop itself writes nothing (issue 23 point 5)."""
    parent, kid = Channel.pair()
    warned: list[str] = []
    session = foreground.Session(parent, _Fwd(), interactive=False, warn=warned.append)
    kid.send("warning", message="cannot write the container's log")
    kid.send("finished", code=0)
    try:
        assert session.run(False) == foreground.ENDED
    finally:
        session.close()
        parent.close()
        kid.close()
    assert warned == ["cannot write the container's log"]
    assert capfd.readouterr() == ("", "")


def test_the_runtime_warns_through_the_context():
    """No module of the runtime writes a warning to stderr itself: the CLI's Context shows it,
    the API's reports it (a keeper or a container's setup sends it over the channel)."""
    import pathlib
    import re
    here = pathlib.Path(foreground.__file__).parent
    direct = re.compile(r"file=sys\.stderr|sys\.stderr\.write|os\.write\(2,")
    found = [f"{p.name}:{n}" for p in sorted(here.glob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if direct.search(line)]
    assert found == []
