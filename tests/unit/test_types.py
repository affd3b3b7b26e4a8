"""The type checker on the seams it cannot see from `just lint` alone: the engine's build executor
is checked against the builder's Executor protocol (layers.build), which the engine implements
without deriving from it."""

from __future__ import annotations

import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# the engine's class passed where the builder wants its protocol; a class that lacks a method and
# one whose method takes too few arguments must not pass, so the check is known to be live
_CHECK = """
from layers.build import Executor, Stage
from rootless.engine.build import Executor as EngineExecutor


def engine(e: EngineExecutor) -> Executor:
    return e


class NoFetch:
    def say(self, text: str) -> None:
        pass

    def base(self, name: str, platform: str | None, pull: str) -> tuple[str, dict, list[dict]]:
        raise NotImplementedError

    def run(self, stage: Stage, step: dict) -> dict:
        raise NotImplementedError

    def files(self, stage: Stage, ops: list[dict]) -> dict | None:
        raise NotImplementedError

    def now(self) -> str:
        raise NotImplementedError


class ShortRun:
    def say(self, text: str) -> None:
        pass

    def base(self, name: str, platform: str | None, pull: str) -> tuple[str, dict, list[dict]]:
        raise NotImplementedError

    def run(self, stage: Stage) -> dict:
        raise NotImplementedError

    def files(self, stage: Stage, ops: list[dict]) -> dict | None:
        raise NotImplementedError

    def fetch(self, url: str, checksum: str | None) -> tuple[str, str, str | None]:
        raise NotImplementedError

    def now(self) -> str:
        raise NotImplementedError


def no_fetch(e: NoFetch) -> Executor:
    return e  # LINE-NO-FETCH


def short_run(e: ShortRun) -> Executor:
    return e  # LINE-SHORT-RUN
"""


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    from mypy import api
    path = tmp_path / "check_executor.py"
    path.write_text(textwrap.dedent(source))
    # the engine's own modules are not clean yet: their types are used, their errors not shown
    out, err, status = api.run(["--config-file", str(REPO / "pyproject.toml"), "--follow-imports=silent",
                                "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary",
                                str(path)])
    return out + err, status


def test_the_engine_executor_matches_the_builders_protocol(tmp_path):
    out, status = _mypy(tmp_path, _CHECK)
    lines = _CHECK.splitlines()
    flagged = {lines[int(line.split(":")[1]) - 1].split("# ")[-1]
               for line in out.splitlines() if ": error:" in line}
    assert flagged == {"LINE-NO-FETCH", "LINE-SHORT-RUN"}, out
    assert status == 1


# the attach relay's client: the hijacked socket or a WebSocket over it, both the API's Hijacked
_HIJACKED = """
import socket

from rootless.api.http import Hijacked
from rootless.api.websocket import WebSocket


def plain(s: socket.socket) -> Hijacked:
    return s


def over_websocket(w: WebSocket) -> Hijacked:
    return w


def not_a_connection(n: int) -> Hijacked:
    return n  # LINE-NOT-ONE
"""


def test_both_hijacked_connections_match_the_relays_protocol(tmp_path):
    out, status = _mypy(tmp_path, _HIJACKED)
    lines = _HIJACKED.splitlines()
    flagged = {lines[int(line.split(":")[1]) - 1].split("# ")[-1]
               for line in out.splitlines() if ": error:" in line}
    assert flagged == {"LINE-NOT-ONE"}, out
    assert status == 1


def test_the_api_is_type_checked_and_clean(tmp_path):
    """`just lint`'s mypy covers rootless/api (the API's handlers, its HTTP and WebSocket code),
    and it has no finding."""
    import tomllib

    from mypy import api
    files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert "rootless/api" in files
    out, err, status = api.run(["--config-file", str(REPO / "pyproject.toml"), "--follow-imports=silent",
                                "--cache-dir", str(tmp_path / "mypy-cache"), str(REPO / "rootless" / "api")])
    assert status == 0, out + err
