"""The packaging the quick start installs: no deprecated setting setuptools warns about, and
every package of the project in the wheel."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_license_is_an_spdx_string_setuptools_reads():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"  # a TOML table is deprecated
    requires = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requires[0].replace(" ", ""))
    assert m and int(m.group(1)) >= 77, f"{requires}: SPDX license strings need setuptools>=77"


def test_the_editable_install_needs_no_deprecated_mode():
    # package-dir "" = "." lets setuptools' default (lenient) mode write a plain .pth path
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"": "."}
    assert "editable_mode=compat" not in (REPO / "scripts" / "setup.sh").read_text()


def test_every_package_is_installed():
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    dirs = {p.parent for top in ("rootless", "layers", "netstack") for p in (REPO / top).rglob("*.py")}
    packages = sorted(".".join(d.relative_to(REPO).parts) for d in dirs)
    left_out = [p for p in packages if not any(fnmatch.fnmatchcase(p, pat) for pat in find["include"])
                or any(fnmatch.fnmatchcase(p, pat) for pat in find.get("exclude", []))]
    assert packages and not left_out
