"""Docker's ``.dockerignore`` rules: reading the file, matching paths, walking a context.

A pattern is a slash path relative to the context root, cleaned like Go's
``filepath.Clean`` (a leading ``/`` is dropped), in Go's ``filepath.Match``
syntax (``*`` and ``?`` stop at ``/``; ``[...]`` classes, negated with ``^``;
``\\`` makes the next character literal) plus ``**``, which matches any number
of directories, none included. A leading ``!`` turns a pattern into an
exception that re-includes what it matches. A path is excluded when the last
pattern matching it, or matching one of its parent directories, is not an
exception, so excluding a directory excludes everything below it. Each pattern
is compiled once to an anchored regex, and also split into per-directory
pieces so that a walk can tell whether an exception could re-include anything
below an excluded directory and skip it if not.
"""

from __future__ import annotations

import os
import re

from rootless.base.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator

_BOM = "\ufeff"
_SLASH = "/"


class IgnoreError(UsageError):
    """A .dockerignore pattern that is not valid syntax."""


# --- reading the file -------------------------------------------------------------------------


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file's text, cleaned, in order, ``!`` kept."""
    patterns = []
    for line in text.removeprefix(_BOM).split("\n"):
        if line.startswith("#"):  # a comment only when '#' is the very first character
            continue
        line = line.strip()
        if line:
            patterns.append(_normalise(line))
    return patterns


def _normalise(pattern: str) -> str:
    """One stripped, non-empty pattern cleaned; an exception keeps its ``!``."""
    if not pattern.startswith("!"):
        return _clean_pattern(pattern)
    body = pattern[1:].strip()
    return "!" + (_clean_pattern(body) if body else "")


def _clean_pattern(pattern: str) -> str:
    cleaned = clean(pattern)
    return cleaned[1:] if len(cleaned) > 1 and cleaned.startswith(_SLASH) else cleaned


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash paths: no ``.``, no ``dir/..``, no repeated or trailing ``/``."""
    rooted = path.startswith(_SLASH)
    parts: list[str] = []
    for part in path.split(_SLASH):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:  # '..' above the root of an absolute path is dropped
            parts.append(part)
    joined = _SLASH.join(parts)
    if rooted:
        return _SLASH + joined
    return joined or "."


# --- compiling one pattern --------------------------------------------------------------------
#
# A pattern is first split into tokens: ("lit", char), ("star",), ("any",),
# ("class", negated, ranges) and ("dstar", at_end). A "**" eats the '/' after it,
# so "a/**/b" is a, /, dstar, b. The tokens give the whole-path regex and, split at
# literal '/', the per-directory pieces.

_DSTAR_PIECE = "**"  # a piece that is exactly '**': any number of directories
_WILD_PIECE = "wild"  # a piece that may span '/': matched only by the whole-path regex
_SPENT = "spent"  # past the last piece: the pattern is used up, nothing below can match


class _Pattern:
    __slots__ = ("exclusion", "pieces", "regex", "text")

    def __init__(self, text: str):
        self.text = text
        self.exclusion = text.startswith("!")
        body = text[1:] if self.exclusion else text
        if not body:
            raise IgnoreError(f"illegal exclusion pattern {text!r} in .dockerignore")
        try:
            tokens = _tokenise(body)
        except ValueError as exc:
            raise IgnoreError(f"bad .dockerignore pattern {text!r}: {exc}") from None
        self.regex = re.compile("".join(_token_regex(t) for t in tokens), re.DOTALL)
        self.pieces = [_piece(piece) for piece in _split_pieces(tokens)]

    def matches(self, paths: list[str]) -> bool:
        """Whether this pattern matches any of ``paths`` (a path and its parents)."""
        return any(self.regex.fullmatch(p) for p in paths)


def _tokenise(body: str) -> list[tuple]:
    tokens: list[tuple] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 == len(body):
                raise ValueError("trailing backslash")
            tokens.append(("lit", body[i + 1]))
            i += 2
        elif ch == "[":
            token, i = _class(body, i + 1)
            tokens.append(token)
        elif body.startswith("**", i):
            i += 2
            if body.startswith(_SLASH, i):
                i += 1
            tokens.append(("dstar", i == len(body)))
        else:
            tokens.append(("star",) if ch == "*" else ("any",) if ch == "?" else ("lit", ch))
            i += 1
    return tokens


def _class(body: str, i: int) -> tuple[tuple, int]:
    """A ``[...]`` class starting after its '[': the token and the index after its ']'."""
    negated = body.startswith("^", i)
    i += negated
    ranges: list[tuple[str, str]] = []
    while not (ranges and body.startswith("]", i)):
        lo, i = _class_char(body, i)
        hi = lo
        if body.startswith("-", i):
            hi, i = _class_char(body, i + 1)
        ranges.append((lo, hi))
    return ("class", negated, tuple(ranges)), i + 1


def _class_char(body: str, i: int) -> tuple[str, int]:
    """One possibly escaped character of a class; Go refuses '-' and ']' here, and a class left open."""
    if i >= len(body):
        raise ValueError("unterminated character class")
    if body[i] in "-]":
        raise ValueError(f"unexpected {body[i]!r} in character class")
    if body[i] == "\\":
        i += 1
        if i >= len(body):
            raise ValueError("unterminated character class")
    if i + 1 >= len(body):
        raise ValueError("unterminated character class")
    return body[i], i + 1


def _token_regex(token: tuple) -> str:
    kind = token[0]
    if kind == "lit":
        return re.escape(token[1])
    if kind == "star":
        return "[^/]*"
    if kind == "any":
        return "[^/]"
    if kind == "dstar":
        return ".*" if token[1] else "(?:.*/)?"
    return _class_regex(token[1], token[2])


def _class_regex(negated: bool, ranges: tuple[tuple[str, str], ...]) -> str:
    # Unlike a glob '?', a class may match '/' (as in Go). Ranges with lo > hi match nothing.
    parts = [f"{_code(lo)}-{_code(hi)}" for lo, hi in ranges if lo <= hi]
    if not parts:
        return "." if negated else "(?!)"
    return "[" + ("^" if negated else "") + "".join(parts) + "]"


def _code(ch: str) -> str:
    return f"\\U{ord(ch):08x}"


def _split_pieces(tokens: list[tuple]) -> list[list[tuple]]:
    """The tokens between literal '/'s; a '**' not at the end also ends its piece.

    Its regex, ``(?:.*/)?``, stops only after a '/' or at once, so "**b" is "**/b";
    in "a**b" the piece "a**" is wild, so the split there needs no care.
    """
    pieces: list[list[tuple]] = [[]]
    for token in tokens:
        if token == ("lit", _SLASH):
            pieces.append([])
            continue
        pieces[-1].append(token)
        if token == ("dstar", False):
            pieces.append([])
    return [piece for piece in pieces if piece]


def _piece(tokens: list[tuple]) -> re.Pattern[str] | str:
    """A per-directory matcher: ``_DSTAR_PIECE``, ``_WILD_PIECE`` or a compiled regex."""
    if tokens[0][0] == "dstar" and len(tokens) == 1:
        return _DSTAR_PIECE
    if any(_may_span_slash(t) for t in tokens):
        return _WILD_PIECE
    return re.compile("".join(_token_regex(t) for t in tokens), re.DOTALL)


def _may_span_slash(token: tuple) -> bool:
    if token[0] == "dstar":
        return True
    if token[0] == "class":
        has_slash = any(lo <= _SLASH <= hi for lo, hi in token[2])
        return has_slash != token[1]
    return False


def _may_match_below(pieces: list[re.Pattern[str] | str], dirs: list[str]) -> bool:
    """Whether a pattern could match some path strictly below the directory ``dirs``."""
    states = _skip_dstars({0}, pieces)
    for name in dirs:
        following = set()
        for i in states:
            piece = pieces[i] if i < len(pieces) else _SPENT
            if piece == _WILD_PIECE:
                return True  # cannot tell piece by piece: assume it might
            if piece == _DSTAR_PIECE:
                following.add(i)
            elif not isinstance(piece, str) and piece.fullmatch(name):  # _SPENT is the only other str
                following.add(i + 1)
        states = _skip_dstars(following, pieces)
    return any(i < len(pieces) for i in states)


def _skip_dstars(states: set[int], pieces: list[re.Pattern[str] | str]) -> set[int]:
    """``states`` plus, for each '**' piece, the state after it (it may match no directory)."""
    out = set(states)
    for i in sorted(states):
        while i < len(pieces) and pieces[i] == _DSTAR_PIECE:
            i += 1
            out.add(i)
    return out


# --- matching paths ---------------------------------------------------------------------------


class Matcher:
    """A .dockerignore file's patterns, compiled: which context paths are excluded."""

    def __init__(self, patterns: list[str]) -> None:
        texts = (p.strip() for p in patterns)
        self._patterns = [_Pattern(_normalise(text)) for text in texts if text]

    def excluded(self, rel: str) -> bool:
        """Whether the context path ``rel`` (slash-separated) is left out of the context."""
        index = self._deciding(_self_and_parents(rel))
        return index is not None and not self._patterns[index].exclusion

    def may_include_below(self, rel_dir: str) -> bool:
        """False when ``rel_dir`` is excluded and no exception could re-include anything below it."""
        paths = _self_and_parents(rel_dir)
        index = self._deciding(paths)
        if index is None or self._patterns[index].exclusion:
            return True
        # Patterns up to `index` that match the directory match all below it too; only
        # later exceptions matching something strictly below can change the outcome.
        dirs = paths[-1].split(_SLASH)
        later = self._patterns[index + 1:]
        return any(p.exclusion and _may_match_below(p.pieces, dirs) for p in later)

    def _deciding(self, paths: list[str]) -> int | None:
        """The index of the last pattern matching one of ``paths``: it alone decides."""
        for index in range(len(self._patterns) - 1, -1, -1):
            if self._patterns[index].matches(paths):
                return index
        return None


def _self_and_parents(rel: str) -> list[str]:
    """``a/b/c`` -> ``[a, a/b, a/b/c]``; the context root itself gives ``[]``."""
    rel = clean(rel.strip()).lstrip(_SLASH)
    if rel in ("", "."):
        return []
    parts = rel.split(_SLASH)
    return [_SLASH.join(parts[:n]) for n in range(1, len(parts) + 1)]


# --- walking a context ------------------------------------------------------------------------


def walk(root: str, matcher: Matcher) -> Iterator[str]:
    """The context's paths that are not excluded, top-down, sorted by name in each directory.

    Symlinks are not followed (a symlink is yielded as itself). An excluded
    directory is not yielded, but is still entered when an exception may
    re-include something below it.
    """
    yield from _walk_dir(root, "", matcher)


def _walk_dir(path: str, prefix: str, matcher: Matcher) -> Iterator[str]:
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda entry: entry.name)
    for entry in entries:
        rel = prefix + entry.name
        if not matcher.excluded(rel):
            yield rel
        if entry.is_dir(follow_symlinks=False) and matcher.may_include_below(rel):
            yield from _walk_dir(entry.path, rel + _SLASH, matcher)
