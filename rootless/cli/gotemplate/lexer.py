"""The tokenizer: a template's text and the tokens of its actions, with Go's
literals (quoted strings, characters, numbers) decoded."""

from __future__ import annotations

import re

from rootless.cli.gotemplate.values import TemplateError, strconv_quote

_SPACE = " \t\r\n"
_TERMINATORS = _SPACE + ".,|:()"
_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue",
                       "define", "template", "block"})
_TOKEN = r"""
    (?P<space>[ \t\r\n]+)
  | (?P<num>[+-]?\.?\d(?:[eE][+-]|[\w.])*)
  | (?P<field>\.\w+)
  | (?P<dot>\.)
  | (?P<var>\$\w*)
  | (?P<ident>\w+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<op>:=|[=|(),])
"""
_UNTERMINATED = {'"': "unterminated quoted string", "`": "unterminated raw quoted string",
                 "'": "unterminated character constant"}
_ESCAPE = (r"(?s)\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})"
           r"|U([0-9a-fA-F]{8})|([0-7]{3})|(.?))")
_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
               "v": "\v", "\\": "\\", "'": "'", '"': '"'}


class Token:
    __slots__ = ("kind", "val", "pos", "end")

    def __init__(self, kind: str, val, pos: int, end: int):
        self.kind, self.val, self.pos, self.end = kind, val, pos, end


def _unquote(body: str, quote: str) -> str:
    def one(m: re.Match) -> str:
        simple, x, u, big, octal, bad = m.groups()
        if bad is not None or (simple in ("'", '"') and simple != quote):
            raise ValueError(m.group())
        if simple:
            return _SIMPLE_ESC[simple]
        code = int(octal, 8) if octal else int(x or u or big, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ValueError(m.group())
        return chr(code)
    return re.sub(_ESCAPE, one, body)


def _number(text: str) -> int | float | None:
    t = text.replace("_", "")
    digits = t.lstrip("+-")
    octal = len(digits) > 1 and digits[0] == "0" and digits.isdigit()
    try:
        return int(t, 8 if octal else 0)
    except ValueError:
        if octal:
            return None
    try:
        f = float(t)
    except ValueError:
        return None
    return f if f != f or any(c in t for c in ".eE") or not f.is_integer() else int(f)


class Lexer:
    """Splits a template into text and the tokens of its actions."""

    def __init__(self, text: str):
        self.text = text
        self.toks: list[Token] = []

    def fail(self, msg: str, pos: int):
        raise TemplateError(f"template: {msg}{location(self.text, pos)}")

    def run(self) -> list[Token]:
        text, pos, trim = self.text, 0, False
        while True:
            i = text.find("{{", pos)
            chunk = text[pos:i] if i >= 0 else text[pos:]
            chunk = chunk.lstrip(_SPACE) if trim else chunk
            ltrim = i >= 0 and text.startswith("-", i + 2) and text[i + 3:i + 4] in tuple(_SPACE)
            chunk = chunk.rstrip(_SPACE) if ltrim else chunk
            if chunk:
                self.toks.append(Token("text", chunk, pos, i))
            if i < 0:
                self.toks.append(Token("eof", None, len(text), len(text)))
                return self.toks
            start = i + (4 if ltrim else 2)
            if text.startswith("/*", start):
                pos, trim = self.comment(start)
            else:
                self.toks.append(Token("{{", None, i, start))
                pos, trim = self.action(i + (3 if ltrim else 2))

    def comment(self, start: int) -> tuple[int, bool]:
        end = self.text.find("*/", start + 2)
        if end < 0:
            self.fail("unclosed comment", start)
        end += 2
        if self.text.startswith("}}", end):
            return end + 2, False
        if self.text[end:end + 1] in tuple(_SPACE) and self.text.startswith("-}}", end + 1):
            return end + 4, True
        self.fail("comment ends before closing delimiter", end)

    def action(self, pos: int) -> tuple[int, bool]:
        """Tokens up to the closing ``}}``; returns (where text resumes, trim it)."""
        text, token = self.text, re.compile(_TOKEN, re.X)
        while True:
            if text.startswith("}}", pos):
                self.toks.append(Token("}}", None, pos, pos + 2))
                return pos + 2, False
            m = token.match(text, pos)
            if m is None:
                if pos >= len(text):
                    self.fail("unclosed action", len(text))
                c = text[pos]
                self.fail(_UNTERMINATED.get(c) or f"unexpected {strconv_quote(c)} in action", pos)
            kind, end = m.lastgroup, m.end()
            if kind == "space" and text.startswith("-}}", end):
                self.toks.append(Token("}}", None, end, end + 3))
                return end + 3, True
            if kind in ("num", "field", "dot", "var", "ident") and not (
                    end >= len(text) or text[end] in _TERMINATORS or text.startswith("}}", end)):
                self.fail(f"bad character {strconv_quote(text[end])} after {strconv_quote(m.group())}", end)
            if kind != "space":
                self.toks.append(self.token(kind, m.group(), pos, end))
            else:
                self.toks.append(Token("space", None, pos, end))
            pos = end

    def token(self, kind: str, s: str, pos: int, end: int) -> Token:
        val = s
        if kind == "num":
            val = _number(s)
            if val is None:
                self.fail(f"bad number syntax: {strconv_quote(s)}", pos)
        elif kind in ("str", "char"):
            try:
                val = _unquote(s[1:-1], s[0])
            except ValueError as e:
                self.fail(f"bad escape {strconv_quote(str(e))} in {s}", pos)
            if kind == "char":
                if len(val) != 1:
                    self.fail(f"malformed character constant: {s}", pos)
                kind, val = "num", ord(val)
            kind = "lit" if kind == "str" else kind
        elif kind == "raw":
            kind, val = "lit", s[1:-1]
        elif kind == "op":
            kind = s
        elif kind == "field":
            val = s[1:]
        elif kind == "ident" and s in ("true", "false"):
            kind, val = "lit", s == "true"
        elif kind == "ident" and s == "nil":
            kind = "nil"
        elif kind == "ident" and s in _KEYWORDS:
            kind = "kw"
        return Token("lit" if kind == "num" else kind, val, pos, end)


def location(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - text.rfind("\n", 0, pos)
    return f" (line {line}, column {col})" if "\n" in text else f" (column {col})"
