"""The import direction between packages (design: base modules <- layers, netstack <- runtime <- cli).

``layers`` and ``netstack`` may use only the base modules of ``rootless``;
base modules import nothing from the runtime; nothing but the CLI imports typer.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE = {"rootless.errors", "rootless.atomic", "rootless.locking", "rootless.paths", "rootless.proc",
        "rootless.syscalls", "rootless.config", "rootless.idmap", "rootless.channel", "rootless.userns"}
RUNTIME_ONLY = {"rootless.engine", "rootless.launcher", "rootless.child", "rootless.cli", "rootless.state",
                "rootless.spec", "rootless.mountplan", "rootless.users", "rootless.names", "rootless.rootfs",
                "rootless.preflight"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules(pkg: str) -> list[Path]:
    return sorted((REPO / pkg).rglob("*.py"))


def test_layers_and_netstack_use_only_base_modules():
    for pkg in ("layers", "netstack"):
        for path in modules(pkg):
            bad = {m for m in imports_of(path) if any(m == r or m.startswith(r + ".") for r in RUNTIME_ONLY)}
            assert not bad, f"{path.relative_to(REPO)} imports the runtime: {sorted(bad)}"


def test_base_modules_do_not_import_the_runtime():
    for name in BASE:
        path = REPO / (name.replace(".", "/") + ".py")
        bad = {m for m in imports_of(path) if any(m == r or m.startswith(r + ".") for r in RUNTIME_ONLY)}
        bad |= {m for m in imports_of(path) if m.startswith(("layers", "netstack"))}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_only_the_cli_imports_typer():
    for pkg in ("rootless", "layers", "netstack"):
        for path in modules(pkg):
            if "cli" in path.parts:
                continue
            assert "typer" not in imports_of(path), f"{path.relative_to(REPO)} imports typer"


def test_only_proc_uses_subprocess():
    for pkg in ("rootless", "layers", "netstack"):
        for path in modules(pkg):
            if path.name == "proc.py":
                continue
            assert "subprocess" not in imports_of(path), f"{path.relative_to(REPO)} imports subprocess"
