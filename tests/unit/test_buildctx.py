"""The build context (layers.buildctx): what COPY/ADD sources name, what they may not reach, and
the digest the build cache keys them by. Docker's rules: sources are relative to the context
(a leading ``/`` too), globs follow Go's filepath.Match, ``../`` cannot leave the context,
``.dockerignore`` hides files (``!`` brings some back)."""

from __future__ import annotations

import os

import pytest

from layers.buildctx import BuildContext, ContextError, digest
from rootless.base.errors import UsageError

WHAT = "Dockerfile:3: COPY"


def make_tree(root, files: dict[str, str], ignore: str | None = None) -> None:
    for rel, content in files.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    if ignore is not None:
        (root / ".dockerignore").write_text(ignore)


@pytest.fixture
def ctxdir(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    make_tree(root, {
        "a.txt": "a", "b.txt": "b", "c.md": "c",
        "src/main.py": "print()", "src/util.py": "x = 1", "src/sub/deep.txt": "deep",
        "empty/": "",
    })
    (tmp_path / "outside.txt").write_text("secret outside")
    return root


def names(sources):
    return [(s.name, s.is_dir) for s in sources]


# ---- plain paths and globs -------------------------------------------------------------------

@pytest.mark.parametrize("pattern, expected", [
    ("a.txt", [("a.txt", False)]),
    ("./a.txt", [("a.txt", False)]),
    ("/a.txt", [("a.txt", False)]),  # a leading / still means the context
    ("src/main.py", [("main.py", False)]),
    ("/src/../a.txt", [("a.txt", False)]),
    ("src", [("src", True)]),
    ("src/", [("src", True)]),
    ("empty", [("empty", True)]),
    ("*.txt", [("a.txt", False), ("b.txt", False)]),
    ("?.md", [("c.md", False)]),
    ("[ab].txt", [("a.txt", False), ("b.txt", False)]),
    ("[^a].txt", [("b.txt", False)]),  # Go's negated class
    ("src/*.py", [("main.py", False), ("util.py", False)]),
    ("*/*.py", [("main.py", False), ("util.py", False)]),
    ("s*", [("src", True)]),
])
def test_sources_of_paths_and_globs(ctxdir, pattern, expected):
    ctx = BuildContext(str(ctxdir))
    assert names(ctx.sources(pattern, WHAT)) == expected


@pytest.mark.parametrize("pattern, rel", [
    ("a.txt", "a.txt"),
    ("/a.txt", "a.txt"),
    ("/src/sub/deep.txt", "src/sub/deep.txt"),
    (".", ""),
    ("/", ""),
])
def test_source_paths_are_inside_the_context(ctxdir, pattern, rel):
    ctx = BuildContext(str(ctxdir))
    (src,) = ctx.sources(pattern, WHAT)
    assert src.path == os.path.join(os.path.realpath(ctxdir), rel).rstrip("/")


def test_directory_source_lists_its_entries(ctxdir):
    (src,) = BuildContext(str(ctxdir)).sources("src", WHAT)
    assert src.is_dir
    assert set(src.entries) == {"", "main.py", "util.py", "sub", "sub/deep.txt"}


@pytest.mark.parametrize("pattern", ["missing.txt", "src/nope", "*.nothing", "src/*.c"])
def test_missing_sources_are_errors(ctxdir, pattern):
    with pytest.raises(ContextError) as e:
        BuildContext(str(ctxdir)).sources(pattern, WHAT)
    assert WHAT in e.value.message


def test_context_must_be_a_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    for root in (tmp_path / "f", tmp_path / "nope"):
        with pytest.raises(ContextError):
            BuildContext(str(root))


# ---- escaping the context ----------------------------------------------------------------------

@pytest.mark.parametrize("pattern", [
    "../outside.txt",
    "..",
    "../",
    "src/../../outside.txt",
    "./../outside.txt",
    "src/../../ctx/a.txt",  # out and back in is still out
])
def test_parent_paths_are_refused(ctxdir, pattern):
    with pytest.raises(ContextError) as e:
        BuildContext(str(ctxdir)).sources(pattern, WHAT)
    assert isinstance(e.value, UsageError)
    assert WHAT in e.value.message


@pytest.mark.parametrize("link, target, pattern, expected_real", [
    ("link.txt", "a.txt", "link.txt", "a.txt"),
    ("linkdir", "src", "linkdir/main.py", "src/main.py"),
    ("src/up.txt", "../b.txt", "src/up.txt", "b.txt"),
    ("src/sub/rel", "../main.py", "src/sub/rel", "src/main.py"),
    ("chain1", "chain2", "chain1", "a.txt"),  # chain2 -> a.txt below
])
def test_symlinks_inside_the_context_are_followed(ctxdir, link, target, pattern, expected_real):
    os.symlink("a.txt", ctxdir / "chain2")
    os.symlink(target, ctxdir / link)
    (src,) = BuildContext(str(ctxdir)).sources(pattern, WHAT)
    assert src.path == os.path.join(os.path.realpath(ctxdir), expected_real)
    assert not src.is_dir


@pytest.mark.parametrize("link, target, pattern", [
    ("abs", "/etc/passwd", "abs"),
    ("absdir", "/etc", "absdir/passwd"),
    ("rel", "../outside.txt", "rel"),
    ("src/rel", "../../outside.txt", "src/rel"),
    ("reldir", "..", "reldir/outside.txt"),
    ("abs_in", "ABS_CTX/a.txt", "abs_in"),  # absolute, even if it names the context itself
])
def test_symlinks_pointing_out_are_refused(ctxdir, link, target, pattern):
    target = target.replace("ABS_CTX", str(os.path.realpath(ctxdir)))
    os.symlink(target, ctxdir / link)
    with pytest.raises(ContextError) as e:
        BuildContext(str(ctxdir)).sources(pattern, WHAT)
    assert WHAT in e.value.message


def test_symlink_loop_is_an_error(ctxdir):
    os.symlink("loop2", ctxdir / "loop1")
    os.symlink("loop1", ctxdir / "loop2")
    with pytest.raises(ContextError):
        BuildContext(str(ctxdir)).sources("loop1", WHAT)


def test_symlink_inside_a_directory_source_is_kept_as_a_link(ctxdir):
    os.symlink("/etc/passwd", ctxdir / "src" / "abs-link")
    (src,) = BuildContext(str(ctxdir)).sources("src", WHAT)
    assert "abs-link" in src.entries  # listed (copied as a link), never followed


# ---- .dockerignore ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ignore, pattern", [
    ("a.txt", "a.txt"),
    ("*.txt", "b.txt"),
    ("src", "src/main.py"),
    ("src", "src"),
    ("**/deep.txt", "src/sub/deep.txt"),
    ("/c.md", "/c.md"),
])
def test_excluded_sources_are_refused(ctxdir, ignore, pattern):
    (ctxdir / ".dockerignore").write_text(ignore + "\n")
    with pytest.raises(ContextError) as e:
        BuildContext.open(str(ctxdir)).sources(pattern, WHAT)
    assert "dockerignore" in e.value.message


@pytest.mark.parametrize("ignore, pattern, expected", [
    ("a.txt", "*.txt", ["b.txt"]),
    ("*.txt\n!b.txt", "*.txt", ["b.txt"]),
    ("src/util.py", "src/*.py", ["main.py"]),
])
def test_globs_skip_excluded_files(ctxdir, ignore, pattern, expected):
    ctx = BuildContext(str(ctxdir), ignore)
    assert [s.name for s in ctx.sources(pattern, WHAT)] == expected


@pytest.mark.parametrize("ignore, present, absent", [
    ("", {"a.txt", "src/main.py", "src/sub/deep.txt"}, set()),
    ("*.txt", {"c.md", "src", "src/sub/deep.txt"}, {"a.txt", "b.txt"}),
    ("src/sub", {"src/main.py"}, {"src/sub", "src/sub/deep.txt"}),
    ("**/*.py", {"a.txt", "src/sub/deep.txt"}, {"src/main.py", "src/util.py"}),
    ("src\n!src/util.py", {"src/util.py", "a.txt"}, {"src/main.py", "src/sub/deep.txt"}),
    ("*\n!c.md", {"c.md"}, {"a.txt", "b.txt", "src", "src/main.py"}),
    ("src/**\n!src/sub/deep.txt", {"src/sub/deep.txt"}, {"src/main.py", "src/util.py"}),
    ("*.txt\n!*.txt\na.txt", {"b.txt"}, {"a.txt"}),  # the last matching pattern decides
])
def test_directory_source_entries_honour_dockerignore(ctxdir, ignore, present, absent):
    ctx = BuildContext(str(ctxdir), ignore)
    (src,) = ctx.sources(".", WHAT)
    entries = set(src.entries)
    assert present <= entries
    assert not (absent & entries)


def test_open_reads_the_dockerignore_file(ctxdir):
    (ctxdir / ".dockerignore").write_text("# comment\nb.txt\n")
    ctx = BuildContext.open(str(ctxdir))
    assert [s.name for s in ctx.sources("*.txt", WHAT)] == ["a.txt"]
    assert BuildContext.open(str(ctxdir)).sources("a.txt", WHAT)


# ---- digest -------------------------------------------------------------------------------------

def _digest(ctxdir, pattern="."):
    return digest(BuildContext(str(ctxdir)).sources(pattern, WHAT))


def test_digest_is_stable(ctxdir):
    first = _digest(ctxdir)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert _digest(ctxdir) == first
    assert _digest(ctxdir, "a.txt") == _digest(ctxdir, "/a.txt")


def _content(p):
    p.write_text("A")


def _mode(p):
    os.chmod(p, 0o755)


def _mtime(p):
    os.utime(p, (1, 1))


def _atime_mtime_now(p):
    os.utime(p, None)


def _new_file(p):
    (p.parent / "new.txt").write_text("new")


def _rename(p):
    os.rename(p, p.parent / "renamed.txt")


@pytest.mark.parametrize("change, changes_digest", [
    (_content, True),
    (_mode, True),
    (_new_file, True),
    (_rename, True),
    (_mtime, False),
    (_atime_mtime_now, False),
])
@pytest.mark.parametrize("pattern", [".", "src"])
def test_digest_follows_content_and_mode_not_mtime(ctxdir, change, changes_digest, pattern):
    before = _digest(ctxdir, pattern)
    target = ctxdir / "src" / "main.py"
    change(target)
    assert (_digest(ctxdir, pattern) != before) is changes_digest


def test_digest_of_a_file_source(ctxdir):
    before = _digest(ctxdir, "a.txt")
    os.utime(ctxdir / "a.txt", (5, 5))
    assert _digest(ctxdir, "a.txt") == before
    (ctxdir / "a.txt").write_text("changed")
    assert _digest(ctxdir, "a.txt") != before


def test_digest_follows_link_targets(ctxdir):
    os.symlink("main.py", ctxdir / "src" / "ln")
    before = _digest(ctxdir, "src")
    os.remove(ctxdir / "src" / "ln")
    os.symlink("util.py", ctxdir / "src" / "ln")
    assert _digest(ctxdir, "src") != before


def test_digest_ignores_excluded_files(ctxdir):
    ctx = BuildContext(str(ctxdir), "src/sub\n")
    before = digest(ctx.sources("src", WHAT))
    (ctxdir / "src" / "sub" / "deep.txt").write_text("changed, but ignored")
    assert digest(ctx.sources("src", WHAT)) == before


def test_digest_depends_on_the_destination_name(ctxdir):
    (ctxdir / "a2.txt").write_text("a")  # same content as a.txt
    assert _digest(ctxdir, "a.txt") != _digest(ctxdir, "a2.txt")
