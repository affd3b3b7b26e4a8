"""Tests for layers/dockerignore.py: .dockerignore reading, matching and walking."""

import os

import pytest

from layers import dockerignore
from layers.dockerignore import IgnoreError, Matcher, read_patterns, walk
from rootless.base.errors import UsageError


def excluded(patterns, path):
    return Matcher(patterns).excluded(path)


# --- reading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, patterns", [
    ("", []),
    ("a\nb\n", ["a", "b"]),
    ("# comment\n\n   \n\t\nfile", ["file"]),
    ("  # not a comment", ["# not a comment"]),  # '#' only counts as the first character
    ("  spaced  \r\n", ["spaced"]),
    ("\ufefffirst\nsecond", ["first", "second"]),
    ("\ufeff# comment after a BOM\nx", ["x"]),
    ("/abs/path", ["abs/path"]),
    ("//double//slash/", ["double/slash"]),
    ("./here/./there/", ["here/there"]),
    ("a/../b", ["b"]),
    ("a/b/../../c", ["c"]),
    ("../up", ["../up"]),
    ("/../up", ["up"]),
    ("/", ["/"]),
    (".", ["."]),
    ("!keep", ["!keep"]),
    ("! /inverted/abs/path", ["!inverted/abs/path"]),
    ("!./x/../y/", ["!y"]),
    ("!\n! ", ["!", "!"]),
    ("*.md\n!README.md", ["*.md", "!README.md"]),
])
def test_read_patterns(text, patterns):
    assert read_patterns(text) == patterns


@pytest.mark.parametrize("path, cleaned", [
    ("", "."), (".", "."), ("/", "/"), ("a//b/", "a/b"), ("a/./b", "a/b"), ("a/..", "."),
    ("../../a", "../../a"), ("a/../../b", "../b"), ("/..", "/"), ("/a/../..", "/"),
])
def test_clean_is_go_filepath_clean(path, cleaned):
    assert dockerignore.clean(path) == cleaned


# --- syntax -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, path, want", [
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b", "a/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("*.go", "main.go", True),
    ("*.go", "cmd/main.go", False),  # '*' stops at '/'
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a?b", "a/b", False),
    ("a?b", "a☺b", True),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("ab[!c]", "ab!", True),  # Go negates with '^' only: '!' is a member
    ("ab[!c]", "abd", False),
    ("[a-ζ]*", "α", True),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[*]", "*", True),
    ("[*]", "x", False),
    ("[z-a]", "m", False),  # an inverted range matches nothing, as in Go
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("a\\\\", "a\\", True),
    ("x\\d", "xd", True),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("a^b", "a^b", True),
    ("new\nline", "new\nline", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
])
def test_syntax(pattern, path, want):
    assert excluded([pattern], path) is want


@pytest.mark.parametrize("pattern, path, want", [
    ("**", "file", True),
    ("**", "dir/file", True),
    ("**/", "file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("abc/**", "abc", False),  # '**' after '/' needs something below
    ("abc/**", "abcd", False),
    ("**/dir", "dir", True),  # zero directories
    ("**/dir", "a/b/dir", True),
    ("**/dir", "a/b/notdir", False),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/dir/file", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "x/a/b", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
])
def test_double_star(pattern, path, want):
    assert excluded([pattern], path) is want


# --- rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("patterns, path, want", [
    # a matching directory excludes all below it
    (["docs"], "docs/a/b/README.md", True),
    (["docs/"], "docs/README.md", True),
    (["docs/*"], "docs/a/b", True),
    (["*/b"], "a/b/c/d", True),
    (["a/b"], "a/bc", False),
    (["b"], "a/b", False),  # patterns are anchored at the root
    # exceptions
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README.md"], "docs/x.md", False),
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/keep/below", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["dir", "!dir/keep"], "dir", True),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!dist/*.whl"], "dist/x-1.0-py3-none-any.whl", False),
    (["!x"], "x", False),
    # the last matching pattern wins
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["a", "!a", "a"], "a/b", True),
    (["a", "!a/b", "a/b/c"], "a/b/c/d", True),
    (["a", "!a/b", "a/b/c"], "a/b/x", False),
    # the path itself is cleaned; the context root is never excluded
    (["a/b"], "./a//b/", True),
    (["*"], ".", False),
    (["*"], "", False),
    ([], "anything", False),
    (["", "  "], "anything", False),
])
def test_rules(patterns, path, want):
    assert excluded(patterns, path) is want


def test_matcher_cleans_patterns_like_read_patterns():
    assert excluded(["/a/./b/"], "a/b")
    assert not excluded(["a", "! /a/b"], "a/b")


# --- pruning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("patterns, directory, want", [
    ([], "a", True),
    (["b"], "a", True),  # not excluded
    ([""], ".", True),
    (["*"], "", True),  # the root
    (["a"], "a", False),
    (["a"], "a/b", False),
    (["a", "!a/keep"], "a", True),
    (["a", "!a/keep"], "a/keep", True),
    (["a", "!a/keep"], "a/other", False),
    (["a", "!a/keep/deep"], "a/keep", True),
    (["a", "!b"], "a", False),
    (["a", "!*.md"], "a", False),  # '*.md' is one level: it cannot reach below 'a'
    (["a", "!*/*.md"], "a", True),
    (["a", "!**/*.md"], "a/b/c", True),
    (["a", "!a/**"], "a", True),
    (["a", "!a/*/x"], "a/b", True),
    (["a", "!a/*/x"], "a/b/c", False),
    (["a", "!a/**/x"], "a/b/c", True),
    (["a", "!a/[bc]/x"], "a/d", False),
    (["a", "!a/[^b]/x"], "a/b", True),  # a negated class may match '/': no pruning
    (["a", "!a**"], "a/b", True),
    (["!a/keep", "a"], "a", False),  # an exception before the exclusion cannot win
])
def test_may_include_below(patterns, directory, want):
    assert Matcher(patterns).may_include_below(directory) is want


# --- walking ------------------------------------------------------------------------------------


@pytest.fixture
def context(tmp_path):
    for rel in ["Dockerfile", "README.md", "notes.md", "src/main.py", "src/util.py",
                "build/out.o", "build/keep/me.txt", "build/keep/also.txt", "build/gone/x",
                "node_modules/pkg/index.js"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    (tmp_path / "empty").mkdir()
    os.symlink("build", tmp_path / "link")  # a symlink to an excluded directory
    os.symlink("nowhere", tmp_path / "dangling")
    return tmp_path


def test_walk(context):
    text = "# ignore\n*.md\n!README.md\nbuild\n!build/keep\nnode_modules\n/empty\n"
    assert list(walk(str(context), Matcher(read_patterns(text)))) == [
        "Dockerfile", "README.md", "build/keep", "build/keep/also.txt", "build/keep/me.txt",
        "dangling", "link", "src", "src/main.py", "src/util.py",
    ]


def test_walk_without_patterns_yields_everything_top_down(context):
    paths = list(walk(str(context), Matcher([])))
    assert paths[:4] == ["Dockerfile", "README.md", "build", "build/gone"]
    assert "link" in paths and "link/out.o" not in paths  # symlinks are not followed
    assert len(paths) == 19


def test_walk_skips_pruned_directories(context, monkeypatch):
    entered = []
    real = dockerignore._walk_dir

    def spy(path, prefix, matcher):
        entered.append(prefix)
        return real(path, prefix, matcher)

    monkeypatch.setattr(dockerignore, "_walk_dir", spy)
    assert list(walk(str(context), Matcher(["build", "!build/keep", "node_modules"]))) == [
        "Dockerfile", "README.md", "build/keep", "build/keep/also.txt", "build/keep/me.txt",
        "dangling", "empty", "link", "notes.md", "src", "src/main.py", "src/util.py",
    ]
    assert sorted(entered) == ["", "build/", "build/keep/", "empty/", "src/"]


def test_walk_everything_excluded(context):
    assert list(walk(str(context), Matcher(["*"]))) == []
    assert list(walk(str(context), Matcher(["**", "!src/main.py"]))) == ["src/main.py"]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, reason", [
    ("[", "unterminated"),
    ("a[bc", "unterminated"),
    ("a[b-", "unterminated"),
    ("a[b-c", "unterminated"),
    ("[\\", "unterminated"),
    ("[]", "']'"),
    ("[]a]", "']'"),
    ("[^]", "']'"),
    ("[-a]", "'-'"),
    ("[a-]", "']'"),
    ("[a--]", "'-'"),
    ("abc\\", "trailing backslash"),
    ("!docs/[", "unterminated"),
    ("!", "illegal exclusion"),
    ("! ", "illegal exclusion"),
    ("a\n[", "unterminated"),  # only through the API: the message stays one line
])
def test_bad_patterns(pattern, reason):
    with pytest.raises(IgnoreError) as info:
        Matcher(["ok", pattern])
    message = str(info.value)
    assert reason in message
    assert repr(pattern.strip()) in message
    assert "\n" not in message
    assert isinstance(info.value, UsageError)
