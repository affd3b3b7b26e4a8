"""The shape of the code (issue 23, point 3): no function over 80 lines, no module over 800 lines,
in rootless/, layers/ and netstack/ (scripts/ and tests/ are not held to it).

The rule, measured on the source by ``ast``:

- a function's length runs from its first decorator (or its ``def`` when it has none) to its
  last line, both included: docstring, comments and blank lines inside count. A nested function
  counts on its own and as part of the function around it; methods count like functions.
- a module's length is its number of lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rootless", "layers", "netstack")
MAX_FUNCTION = 80
MAX_MODULE = 800

# Files allowed past the limits: none. Nothing may join these: split the long function by phase,
# the long module by responsibility.
ALLOWED_MODULES: set[str] = set()
ALLOWED_FUNCTIONS_IN: set[str] = set()


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """(name, line of its def, length) of every function and method in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append((node.name, node.lineno, node.end_lineno - start + 1))
    return found


def sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(REPO)), p.read_text()) for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]


def test_the_measure_counts_decorators_docstrings_and_nested_functions():
    body = "\n".join(f"        x{i} = {i}" for i in range(3))
    source = (f'@decorator\n@other(\n    1)\ndef outer():\n    """Doc."""\n\n    def inner():\n{body}\n'
              f"        return 1\n    return inner\n\n\nclass C:\n    async def method(self):\n        pass\n")
    assert sorted(function_lengths(source)) == [("inner", 7, 5), ("method", 16, 2), ("outer", 4, 12)]


def test_no_function_over_80_lines():
    long = [f"{path}:{line} {name} ({length} lines)"
            for path, text in sources() if path not in ALLOWED_FUNCTIONS_IN
            for name, line, length in function_lengths(text) if length > MAX_FUNCTION]
    assert not long, (f"functions over {MAX_FUNCTION} lines: {'; '.join(long)}; split each into named "
                      "phases (helpers that each do one step)")


def test_no_module_over_800_lines():
    long = [f"{path} ({len(text.splitlines())} lines)" for path, text in sources()
            if path not in ALLOWED_MODULES and len(text.splitlines()) > MAX_MODULE]
    assert not long, f"modules over {MAX_MODULE} lines: {', '.join(long)}; split each by responsibility"


def test_the_allow_list_names_only_files_that_exist():
    existing = {path for path, _ in sources()}
    assert (ALLOWED_MODULES | ALLOWED_FUNCTIONS_IN) <= existing
