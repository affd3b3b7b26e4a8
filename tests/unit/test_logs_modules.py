"""``rootless.runtime.logs`` is the one face of the log phases, and loads only the phase used."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rootless.runtime import logs

REPO = Path(__file__).resolve().parents[2]
PHASES = ["logs", "logwrite", "logrotate", "logread", "logfollow", "logtime"]


def test_every_name_of_the_face_is_its_phases_own():
    assert sorted(logs.__all__) == sorted(logs._WHERE)
    for name, where in logs._WHERE.items():
        assert getattr(logs, name) is getattr(sys.modules[where], name)
    with pytest.raises(AttributeError):
        logs.no_such_name  # noqa: B018


def test_a_caller_loads_only_the_phase_it_uses():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from rootless.runtime.logs import log_config; "
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('rootless.runtime.log')))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(REPO)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['logs',", "'logtime',", "'logwrite']"]


@pytest.mark.parametrize("name", PHASES)
def test_phases_are_small(name):
    source = (REPO / "rootless" / "runtime" / f"{name}.py").read_text()
    assert source.count("\n") < 800
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno - node.lineno + 1 <= 80, node.name
