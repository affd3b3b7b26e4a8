"""scripts/bench.py's bytecode warning: start-up figures that include compiling the modules are
flagged, whether no bytecode may be written (another owner) or none will be (PYTHONDONTWRITEBYTECODE)."""

import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).parents[2] / "scripts"
_spec = importlib.util.spec_from_file_location("bench_for_test", SCRIPTS / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_no_bytecode_written_is_warned_about(tmp_path, monkeypatch):
    (tmp_path / "mod.py").write_text("X = 1\n")
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    assert bench.bytecode_fact([str(tmp_path)]) is None  # a start will write it: nothing to say
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    warning = bench.bytecode_fact([str(tmp_path)])
    assert warning and "1 modules" in warning and "PYTHONDONTWRITEBYTECODE" in warning


def test_current_bytecode_is_no_warning(tmp_path, monkeypatch):
    import py_compile
    (tmp_path / "mod.py").write_text("X = 1\n")
    py_compile.compile(str(tmp_path / "mod.py"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert bench.bytecode_fact([str(tmp_path)]) is None
