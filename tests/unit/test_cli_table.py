"""The table of commands (``rootless.cli.commands.TABLE``, pip's ``commands_dict``) names the module
of every command, so that the fast path imports that module alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rootless.cli import commands
from rootless.cli.params import COMMANDS

REPO = Path(__file__).resolve().parents[2]


def test_every_command_is_in_the_table_under_its_own_module():
    registered = {path: cmd.func.__module__ for path, cmd in COMMANDS.items()}
    assert set(registered) == set(commands.TABLE)
    for path, module in registered.items():
        assert module == f"rootless.cli.commands.{commands.TABLE[path]}", path


def test_a_look_up_imports_the_command_s_module_alone():
    code = ("import sys\nfrom rootless.cli import commands\nfrom rootless.cli.params import COMMANDS\n"
            "assert COMMANDS.get(('volume', 'ls')).path == ('volume', 'ls')\n"
            "assert COMMANDS.get(('no', 'such')) is None\n"
            "print(sorted(m for m in sys.modules if m.startswith('rootless.cli.commands.')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["['rootless.cli.commands.volumes']"]
