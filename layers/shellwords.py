"""Dockerfile variable substitution, as Docker's builder does it (buildkit's ``shell.Lex``).

:func:`expand_word` gives the value of one Dockerfile word: quotes go away (``'...'`` is
literal, ``"..."`` still expands ``$``), the escape character (``\\``, or the backtick chosen
by ``# escape=``) protects the character after it, and ``$VAR``, ``${VAR}``, the
``${VAR:-word}`` family and the ``${VAR#pattern}``/``${VAR/pattern/text}`` forms take their
values from a mapping, an unknown variable being empty; whitespace stays in the word.
:func:`expand_words` does the same and then splits on unquoted whitespace, and
:func:`referenced` names the variables a word looks up. A malformed word raises
:class:`WordError` with Docker's message.
"""

from __future__ import annotations

from rootless.base.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    import re
    from collections.abc import Mapping

_MISSING_BRACE = "syntax error: missing '}'"
# ``${A:-${B:-...}}`` nests by recursion: a bound keeps a hostile word from exhausting the stack.
MAX_NESTING = 100
_MISSING_SLASH = "syntax error: missing '/' in ${}"
# $@ $* $# $? $- $$ $! $0: one character each, and never set in a Dockerfile.
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_PATTERN_OPS = frozenset("#%")  # their word keeps its escapes: it is a pattern
_GLOB_ESCAPABLE = frozenset("*?\\}/")
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}


class WordError(UsageError):
    """A word Docker's builder refuses to process."""


class _Fail(Exception):
    """The bare reason, inside the lexer; the entry points add which word failed."""


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``word`` with quotes and escapes processed and variables replaced from ``env``."""
    return "".join(text for text, _ in _Lexer(word, env, escape).run())


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` expanded as by :func:`expand_word`, then split on unquoted whitespace.

    Whitespace from a quote or after the escape character does not split; whitespace in the
    value of an unquoted ``$VAR`` does. As in Docker, a word that comes out empty (``""``, or
    an unset ``$VAR``) is dropped.
    """
    return _split(_Lexer(text, env, escape).run())


def referenced(text: str, escape: str = "\\") -> set[str]:
    """The names of the variables ``text`` looks up, set or not, however deeply nested
    (``${A:-$B}`` refers to both). Raises :class:`WordError` where the word is malformed."""
    lexer = _Lexer(text, _EveryName(), escape)
    lexer.run()
    return lexer.names


class _EveryName:
    """An environment in which every variable is set and not empty."""

    def get(self, name: str, default: str | None = None) -> str:
        return "x"


class _Lexer:
    """One pass over ``text``; ``run`` gives (text, splittable) pieces, in order."""

    def __init__(self, text: str, env: Mapping[str, str] | _EveryName, escape: str):
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0
        self.depth = 0  # ${...} open around the current position
        self.names: set[str] = set()  # every variable looked up

    def run(self) -> list[tuple[str, bool]]:
        try:
            return self._scan("", raw=False)
        except _Fail as e:
            shown = self.text if len(self.text) <= 200 else self.text[:200] + "..."
            raise WordError(f"failed to process {_go_quote(shown)}: {e}") from None

    def _peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def _next(self) -> str:
        ch = self._peek()
        self.pos += len(ch)
        return ch

    def _get(self, name: str) -> str | None:
        if name:
            self.names.add(name)
        return self.env.get(name)

    def _scan(self, stop: str, raw: bool) -> list[tuple[str, bool]]:
        """Up to (and past) ``stop``, or to the end when ``stop`` is empty. ``raw`` keeps the
        escape characters (a pattern needs them)."""
        pieces: list[tuple[str, bool]] = []
        while ch := self._peek():
            if ch == stop:
                self.pos += 1
                return pieces
            if ch == "$":
                pieces.append((self._dollar(), True))
            elif ch == "'":
                pieces.append((self._single(), False))
            elif ch == '"':
                pieces.append((self._double(raw), False))
            else:
                self.pos += 1
                if ch != self.escape:
                    pieces.append((ch, True))
                elif escaped := self._next():  # a trailing escape is dropped
                    pieces.append((ch + escaped if raw else escaped, False))
        if stop:
            raise _Fail(f"unexpected end of statement while looking for matching {stop}")
        return pieces

    def _word(self, stop: str, raw: bool, missing: str = _MISSING_BRACE) -> str:
        """The word inside ``${...}``, up to ``stop``."""
        try:
            pieces = self._scan(stop, raw)
        except _Fail:
            if self.pos < len(self.text):
                raise
            raise _Fail(missing) from None
        return "".join(text for text, _ in pieces)

    def _single(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise _Fail("unexpected end of statement while looking for matching single-quote")
        text, self.pos = self.text[self.pos + 1:end], end + 1
        return text

    def _double(self, raw: bool) -> str:
        """Only ``$`` and the escape character are special; the escape protects only ``"``,
        ``$`` and itself, and is kept before anything else."""
        self.pos += 1
        out: list[str] = []
        while (ch := self._peek()) != '"':
            if not ch:
                raise _Fail("unexpected end of statement while looking for matching double-quote")
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                following = self._peek()
                if following in ('"', "$", self.escape):
                    self.pos += 1
                    out.append(ch + following if raw else following)
                    continue
                if raw:  # a literal escape character, escaped for the pattern
                    out.append(ch)
            out.append(ch)
        self.pos += 1
        return "".join(out)

    def _name(self) -> str:
        """A name after ``$``: digits (positional), one special character, or an identifier."""
        start = self.pos
        ch = self._peek()
        if ch.isdecimal():
            while self._peek().isdecimal():
                self.pos += 1
        elif ch in _SPECIAL_PARAMS:
            self.pos += 1
        else:
            while _is_name_char(self._peek()):
                self.pos += 1
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        self.pos += 1
        if self._peek() != "{":
            name = self._name()
            return (self._get(name) or "") if name else "$"
        if self.depth >= MAX_NESTING:
            raise _Fail(f"substitutions nested more than {MAX_NESTING} deep")
        self.depth += 1
        try:
            return self._braced()
        finally:
            self.depth -= 1

    def _braced(self) -> str:
        """``${...}``, after the ``$``."""
        self.pos += 1
        first = self._peek()
        if not first:
            raise _Fail(_MISSING_BRACE)
        if first in ("{", "}", ":"):
            raise _Fail("syntax error: bad substitution")
        name = self._name()
        op = self._next()
        if op == ":":
            op += self._next()
        if op in ("", ":"):
            raise _Fail(_MISSING_BRACE)
        if op == "}":
            return self._get(name) or ""
        if op == "/":
            return self._replace(name)
        modifier = _MODIFIERS.get(op)
        if modifier is None:
            raise _Fail(f"unsupported modifier ({op}) in substitution")
        word = self._word("}", raw=op in _PATTERN_OPS)
        return modifier(name, self._get(name), word, op[0] == ":")

    def _replace(self, name: str) -> str:
        """``${NAME/pattern/text}`` (first match) and ``${NAME//pattern/text}`` (every one)."""
        every = self._peek() == "/"
        self.pos += every
        pattern = self._word("/", raw=True, missing=_MISSING_SLASH)
        replacement = self._word("}", raw=True)
        return _substitute(self._get(name) or "", pattern, replacement, every)


# ---- the ${NAME<op>word} forms: (name, value or None when unset, word, ":" given) -> text ----

def _unset(value: str | None, colon: bool) -> bool:
    return value is None or (colon and not value)


def _default(name: str, value: str | None, word: str, colon: bool) -> str:
    return word if value is None or _unset(value, colon) else value


def _alternative(name: str, value: str | None, word: str, colon: bool) -> str:
    return "" if _unset(value, colon) else word


def _required(name: str, value: str | None, word: str, colon: bool) -> str:
    if value is None:
        raise _Fail(f"{name}: {word or 'is not allowed to be unset'}")
    if colon and not value:
        raise _Fail(f"{name}: {word or 'is not allowed to be empty'}")
    return value


def _strip_prefix(name: str, value: str | None, word: str, colon: bool) -> str:
    greedy = word.startswith("#")  # ## removes the longest match, # the shortest
    return _trim_prefix(value or "", word[greedy:], greedy)


def _strip_suffix(name: str, value: str | None, word: str, colon: bool) -> str:
    greedy = word.startswith("%")
    # A suffix of the value is a prefix of it reversed, for the pattern reversed too
    # (keeping each escape before the character it escapes).
    units = _pattern_units(word[greedy:])
    return _trim_prefix((value or "")[::-1], "".join(reversed(units)), greedy)[::-1]


_MODIFIERS = {
    "-": _default, ":-": _default,
    "+": _alternative, ":+": _alternative,
    "?": _required, ":?": _required,
    "#": _strip_prefix,
    "%": _strip_suffix,
}


# ---- patterns: * and ? are wildcards, \ escapes *, ?, \ (and the } and / of ${}) ----

def _pattern_units(pattern: str) -> list[str]:
    units: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        units.append(ch + next(chars, "") if ch == "\\" else ch)
    return units


def _glob(pattern: str, greedy: bool) -> re.Pattern[str]:
    import re  # only these forms need it, and the CLI starts without it
    wildcards = {"*": ".*" if greedy else ".*?", "?": "."}
    out: list[str] = []
    for unit in _pattern_units(pattern):
        if unit[0] != "\\":
            out.append(wildcards.get(unit) or re.escape(unit))
        elif unit[1:] in _GLOB_ESCAPABLE:
            out.append(re.escape(unit[1:]))
        else:
            raise _Fail(f"invalid pattern ({pattern}) in substitution: invalid escape '{unit}'")
    return re.compile("".join(out))


def _trim_prefix(value: str, pattern: str, greedy: bool) -> str:
    match = _glob(pattern, greedy).match(value)
    return value[match.end():] if match else value


def _substitute(value: str, pattern: str, replacement: str, every: bool) -> str:
    """The replacement is literal; like Go, ``//`` skips an empty match right after a match."""
    regex = _glob(pattern, greedy=True)
    out: list[str] = []
    done = last_end = 0
    for match in regex.finditer(value):
        start, end = match.span()
        if start == end == last_end and out:
            continue
        out += (value[done:start], replacement)
        done = last_end = end
        if not every:
            break
    return "".join(out) + value[done:]


# ---- small helpers ----

def _is_name_char(ch: str) -> bool:
    return ch.isalpha() or ch.isdecimal() or ch == "_"


def _is_space(ch: str) -> bool:
    return ch.isspace() and not "\x1c" <= ch <= "\x1f"  # Go's unicode.IsSpace


def _split(pieces: list[tuple[str, bool]]) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    for text, splittable in pieces:
        if not splittable:
            current.append(text)
            continue
        for ch in text:
            if not _is_space(ch):
                current.append(ch)
            elif word := "".join(current):
                words.append(word)
                current = []
    if word := "".join(current):
        words.append(word)
    return words


def _go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` shows it: double-quoted, escaped, on one line."""
    return '"' + "".join(_go_char(ch) for ch in text) + '"'


def _go_char(ch: str) -> str:
    if ch in _GO_ESCAPES:
        return _GO_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
