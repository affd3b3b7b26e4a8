"""The layers of the code, by folder, bottom to top (docs/architecture.md draws them):

    rootless/base      imports nothing of the project
    layers, netstack   base only (peers: neither imports the other)
    rootless/runtime   base, layers, netstack
    rootless/engine    everything below
    rootless/api       everything below (the Docker Engine API server)
    rootless/cli       everything below (the only user of typer)

Every import counts, including the ones inside functions: a lazy import keeps start-up lean,
it is no way round the direction. No module may take part in an import circle. Every module is
named under its folder in the document's picture, so that the picture stays true.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# package -> its rank; a module may import its own package or any package of a lower rank
RANKS = {"rootless.base": 0, "layers": 1, "netstack": 1, "rootless.runtime": 2, "rootless.engine": 3,
         "rootless.api": 4, "rootless.cli": 5}
ROOT_PACKAGES = ("rootless", "layers", "netstack")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in ROOT_PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def package_of(module: str) -> str | None:
    """The layer a module belongs to (None: the bare ``rootless`` package, which holds the version)."""
    for pkg in RANKS:
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return None


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (``a.b.func`` -> ``a.b``); None if outside."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every name a module imports, at the top or inside functions (absolute, dotted)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def project_imports(module: str) -> set[str]:
    return {m for m in map(_resolve, imports_of(module)) if m and m != module}


def test_every_module_belongs_to_a_layer():
    loose = [m for m in MODULES if package_of(m) is None and m != "rootless"]
    assert not loose, f"modules outside the layers (put each in rootless/base, runtime, engine or cli): {loose}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if package_of(m)))
def test_imports_point_down(module):
    pkg = package_of(module)
    for target in sorted(project_imports(module)):
        other = package_of(target)
        if other is None or other == pkg:
            continue
        assert RANKS[other] < RANKS[pkg], (
            f"{module} ({pkg}) imports {target} ({other}): {pkg} may import only "
            f"{sorted(p for p, r in RANKS.items() if r < RANKS[pkg]) or 'nothing of the project'}")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_find_cycles_sees_a_circle_through_a_lazy_import():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    graph = {m: project_imports(m) for m in MODULES}
    assert find_cycles(graph) == []


DOC = REPO / "docs" / "architecture.md"


def documented_names(text: str) -> dict[str, set[str]]:
    """The words the folder picture (the first fenced block after "The folders and their
    direction") puts under each folder: from a line starting with the folder's path and two
    spaces, up to the next such line."""
    picture = text.split("## The folders and their direction", 1)[-1].split("```", 2)[1]
    folders = {pkg.replace(".", "/") + "/": pkg for pkg in RANKS}
    alternatives = "|".join(map(re.escape, folders))
    header = re.compile(rf"\s*({alternatives})(\s{{2,}}|$)")
    names: dict[str, set[str]] = {pkg: set() for pkg in RANKS}
    current = None
    for line in picture.splitlines():
        m = header.match(line)
        if m:
            current = folders[m.group(1)]
            line = line[m.end():]
        if current:
            names[current] |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line))
    return names


def undocumented(modules, names: dict[str, set[str]]) -> list[str]:
    """The modules the picture does not name under their folder. A module inside a package of a
    folder (``rootless/cli/gotemplate/lexer.py``) is named by its own name or by that package's."""
    missing = []
    for module in sorted(modules):
        pkg = package_of(module)
        if pkg is None or module == pkg:
            continue
        if not names[pkg] & set(module[len(pkg) + 1:].split(".")):
            missing.append(module)
    return missing


def test_the_picture_check_sees_a_missing_module_and_takes_a_package_whole():
    text = ("## The folders and their direction\n\n```\n rootless/cli/   main, gotemplate\n"
            "       v         (the runtime: below)\n rootless/runtime/  keeper\n```\n")
    names = documented_names(text)
    assert names["rootless.cli"] >= {"main", "gotemplate", "runtime"} and names["rootless.runtime"] == {"keeper"}
    modules = ["rootless.cli", "rootless.cli.main", "rootless.cli.gotemplate", "rootless.cli.gotemplate.lexer",
               "rootless.cli.fast", "rootless.runtime.keeper", "rootless.runtime.logs"]
    assert undocumented(modules, names) == ["rootless.cli.fast", "rootless.runtime.logs"]


def test_every_module_is_in_the_architecture_picture():
    missing = undocumented(MODULES, documented_names(DOC.read_text()))
    assert not missing, (
        f"{DOC.relative_to(REPO)} does not name these modules under their folder in its picture (\"The "
        f"folders and their direction\"): {', '.join(missing)}; add each by its module name "
        "(a package may be named as a whole)")


def test_every_package_says_what_it_owns():
    inner = sorted(m for m in MODULES if MODULES[m].name == "__init__.py" and m not in ("rootless", *RANKS))
    for pkg in ("rootless", *RANKS, *inner):  # the layers, then the packages inside them
        init = REPO / pkg.replace(".", "/") / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc.lower(), (f"{init.relative_to(REPO)}: "
                                                 "a docstring saying what it owns and may import")
        assert "\n\n" not in doc, f"{init.relative_to(REPO)}: one paragraph"


def test_only_the_cli_imports_typer():
    for module in MODULES:
        if package_of(module) != "rootless.cli":
            assert not {m for m in imports_of(module) if m.split(".")[0] in ("typer", "click")}, module


def test_only_proc_uses_subprocess():
    for module in MODULES:
        if module != "rootless.base.proc":
            assert "subprocess" not in imports_of(module), f"{module} imports subprocess"


def test_the_fast_cli_path_imports_neither_typer_nor_the_runtime():
    """``rootless images -q`` parses and runs without typer and without the namespace runtime."""
    code = ("import sys; sys.argv[1:] = ['--root', sys.argv[1], 'images', '-q']\n"
            "from rootless.cli import main\n"
            "import os; os._exit = lambda code: None\n"
            "main.main()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click')"
            " or m.startswith(('rootless.runtime', 'netstack')))\n"
            "print(heavy, file=sys.stderr)")
    import tempfile
    with tempfile.TemporaryDirectory() as root:  # the command itself, not a fork of the warm forker
        res = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, cwd=REPO,
                             timeout=60, env=dict(os.environ, ROOTLESS_FORKER="0"))
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "[]", res.stderr


def test_the_warm_clients_path_imports_no_more_than_it_needs():
    """A warm command's client (``rootless.cli.warm``) reaches the forker before anything else: it
    loads no socket.py, array, pickle, collections, typer or runtime (each costs a millisecond or more)."""
    code = ("import sys\n"
            "from rootless.cli import warm\n"
            "from rootless.base import forkconn\n"
            "before = set(sys.modules)\n"
            "ident = forkconn.identity()\n"
            "forkconn.socket_path(ident)\n"
            "import marshal; marshal.dumps(dict(forkconn.context(), ignored=warm._ignored()))\n"
            "import _socket; a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)\n"
            "forkconn.send(a, ident, forkconn.SESSION, b'', [0, 1, 2]); forkconn.same_namespaces(forkconn.peer(a)[0])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('socket', 'array', 'pickle', '_pickle',"
            " 'collections', 'typer', 'click', 'netstack', 'enum', 're', 'json')"
            " or m.startswith('rootless.runtime')))")
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout


def test_type_checking_is_the_projects_flag():
    """``TYPE_CHECKING = False`` at the top of a module, never ``typing``'s: importing it loads
    ``typing`` (milliseconds of start-up) for names that only annotations use."""
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "typing":
                assert "TYPE_CHECKING" not in {a.name for a in node.names}, f"{module} imports typing.TYPE_CHECKING"
            if isinstance(node, ast.Attribute) and node.attr == "TYPE_CHECKING":
                raise AssertionError(f"{module} reads typing.TYPE_CHECKING")
