"""A strict subset of Go's text/template, for ``--format`` / ``-f``.

``compile(text)`` parses a template once (a tokenizer, a recursive-descent
parser into a small node tree); ``Template.render(data)`` evaluates it. Every
syntax error, unsupported construct or failure on the data raises
``TemplateError`` (a ``UsageError``, exit code 125): a template never silently
renders as an empty string.

Supported:

* text and ``{{ actions }}``; ``{{- `` and `` -}}`` trim the whitespace next to
  them; ``{{/* comments */}}``
* ``.``, ``.Field``, ``.A.B.C``, ``$`` (the data), ``$.Field``, ``$x``,
  ``$x.Field``, ``(pipeline).Field``; a missing map key gives ``<no value>``
* literals: ``"string"`` (Go escapes), ```raw```, ``'c'``, integers (also 0x,
  0o, 0b, ``_``), floats, ``true``, ``false``, ``nil``
* pipelines ``a | b`` (the value becomes the last argument of the next
  command); ``$x := pipeline`` declares, ``$x = pipeline`` assigns
* ``{{if}}`` ``{{else if}}`` ``{{else}}`` ``{{end}}``; ``{{with}}`` (also
  ``{{else with}}``); ``{{range}}`` over lists, maps (sorted keys, ``.`` is the
  value) and integers, with ``$v :=`` or ``$i, $v :=``, ``{{else}}``,
  ``{{break}}``, ``{{continue}}``
* Go's functions and, or, not, len, index, print, printf, println, eq, ne, lt,
  le, gt, ge; Docker's json, join, split, upper, lower, title, truncate
* Go's truthiness and Go's ``%v`` printing (``[a b]``, ``map[k:v]``, ``1e+06``)

Not supported: define, template, block, the functions html, js, urlquery,
slice, call, and Docker's pad.

The data is JSON-like: dicts, lists, str, int, float, bool and None. None
prints as ``<nil>``, like a nil pointer in Docker's structs. A callable stored
in a dict acts as a Go method: ``{{.Label "k"}}`` calls it with ``"k"``.

Docker's list output: ``split_table`` (the ``table`` prefix), ``unescape``
(``\\t``, ``\\n``), ``compile_format`` (both, then compile; sets
``Template.is_table``), ``header_row`` / ``Template.header`` (each field
becomes its column title; json, join, split, upper, lower, title and truncate
return it unchanged, as in Docker), ``tabwrite`` (Go's tabwriter as Docker
sets it up: cells padded to the widest plus 3, at least 10) and
``render_rows``.
"""

from __future__ import annotations

import operator
import re

from rootless.base.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class TemplateError(UsageError):
    """A bad ``--format`` template, or one that failed on the data."""


class _Err(Exception):
    """A failure while rendering; the failing command is added on the way up."""

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg
        self.where = ""


class _Missing:
    """The value of a missing map key (Go's invalid value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


_MISSING = _Missing()
_NOFINAL = _Missing()  # no value piped into a command


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# --- values -------------------------------------------------------------


def _gotype(v) -> str:
    """The Go type name the value would have in a decoded JSON document."""
    if v is None or v is _MISSING:
        return "<nil>"
    for py, go in _GOTYPES:
        if isinstance(v, py):
            return go
    return type(v).__name__


_GOTYPES = ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
            ((list, tuple), "[]interface {}"), (dict, "map[string]interface {}"))


def _truth(v) -> bool:
    if v is None or v is _MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def _show(v) -> str:
    """Go's ``%v``."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if v is _MISSING:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float_g(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(map(_show, v)) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_show(k)}:{_show(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _shortest(f: float) -> tuple[str, str, int]:
    """(sign, digits, dp): abs(f) == 0.DIGITS * 10**dp, with the fewest digits."""
    r = repr(f)
    sign = "-" if r.startswith("-") else ""
    mant, _, exp = r.lstrip("-").partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    dp = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0")
    return (sign, digits, dp) if digits else (sign, "0", 1)


def _fmt_e(sign: str, digits: str, dp: int) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(sign: str, digits: str, dp: int) -> str:
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _nonfinite(f: float) -> str | None:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    return None


def _float_g(f: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form outside 1e-4..1e21."""
    bad = _nonfinite(f)
    if bad:
        return bad
    sign, digits, dp = _shortest(f)
    if not -4 <= dp - 1 < 6:
        return _fmt_e(sign, digits, dp)
    return _fmt_f(sign, digits, dp)


# --- json (Docker's: compact, no HTML escaping, keys in the dict's order) ---

# Regular expressions are compiled on first use (re caches them): importing
# this module must stay cheap for commands that never see a template.
_JSON_ESC = '[\x00-\x1f"\\\\\u2028\u2029\ud800-\udfff]'
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\b": "\\b", "\f": "\\f"}


def _json_char(m: re.Match) -> str:
    c = m.group()
    if c in _JSON_SHORT:
        return _JSON_SHORT[c]
    return "\ufffd" if "\ud800" <= c <= "\udfff" else f"\\u{ord(c):04x}"


def _json_float(f: float) -> str:
    if _nonfinite(f):
        raise _Err(f"json: unsupported value: {_float_g(f)}")
    sign, digits, dp = _shortest(f)
    if f and not 1e-6 <= abs(f) < 1e21:
        return re.sub(r"e-0(\d)$", r"e-\1", _fmt_e(sign, digits, dp))
    return _fmt_f(sign, digits, dp)


def _json(v) -> str:
    if v is None or v is _MISSING:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return '"' + re.sub(_JSON_ESC, _json_char, v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(map(_json, v)) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_json(str(k)) + ":" + _json(x) for k, x in v.items()) + "}"
    raise _Err(f"json: unsupported type: {_gotype(v)}")


# --- printf ---------------------------------------------------------------

_VERB = r"(?s)%([-+# 0]*)(\*|\d*)(?:\.(\*|\d*))?(.?)"
_QUOTE_ESC = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
              "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _quote(s: str, ascii_only: bool = False) -> str:
    """Go's strconv.Quote (QuoteToASCII with ascii_only)."""
    out = []
    for c in s:
        o = ord(c)
        if c in _QUOTE_ESC:
            out.append(_QUOTE_ESC[c])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif c.isprintable() and not (ascii_only and o > 0x7E):
            out.append(c)
        else:
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def _quote_rune(code: int) -> str:
    """Go's strconv.QuoteRune."""
    c = chr(code)
    return "'" + ({'"': '"', "'": "\\'"}.get(c) or _quote(c)[1:-1]) + "'"


def _pad(s: str, flags: str, width: int) -> str:
    if len(s) >= width:
        return s
    if "-" in flags:
        return s.ljust(width)
    if "0" in flags:
        sign = s[:1] if s[:1] in ("+", "-") else ""
        return sign + s[len(sign):].rjust(width - len(sign), "0")
    return s.rjust(width)


def _printf_num(v, verb: str, flags: str, width: int, prec: str | None) -> str | None:
    if isinstance(v, int):
        if verb == "c":
            return _pad(chr(v), flags, width)
        if verb == "q":
            return _pad(_quote_rune(v), flags, width)
        if verb == "b":
            return _pad(format(v, "b"), flags, width)
        if verb == "U":
            return _pad(f"U+{v:04X}", flags, width)
        if verb == "o" and "#" in flags:
            return _pad(("-0" if v < 0 else "0") + format(abs(v), "o"), flags, width)
        conv = {"v": "d", "d": "d", "x": "x", "X": "X", "o": "o"}.get(verb)
    else:
        bad = _nonfinite(v)
        if bad and verb in "vgGeEfF":
            return _pad(bad, flags.replace("0", ""), width)
        if verb in "vgG" and prec is None:
            s = _float_g(v).upper() if verb == "G" else _float_g(v)
            if s[0] != "-" and ("+" in flags or " " in flags):
                s = ("+" if "+" in flags else " ") + s
            return _pad(s, flags, width)
        conv = {"v": "g", "g": "g", "G": "G", "e": "e", "E": "E", "f": "f", "F": "f"}.get(verb)
    if conv is None:
        return None
    spec = "%" + flags.replace("#", "" if conv in "do" else "#") + str(width or "")
    return (spec + ("." + (prec or "0") if prec is not None else "") + conv) % v


def _printf_one(v, verb: str, flags: str, width: int, prec: str | None, depth: int = 0) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_printf_one(x, verb, flags, width, prec, 1) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(
            _printf_one(k, verb, flags, width, prec, 1) + ":"
            + _printf_one(v[k], verb, flags, width, prec, 1) for k in sorted(v)) + "]"
    if v is None or v is _MISSING:
        return _pad("<nil>", flags, width) if verb == "v" or depth else f"%!{verb}(<nil>)"
    s = None
    if isinstance(v, bool):
        s = _pad(_show(v), flags, width) if verb in "tv" else None
    elif isinstance(v, (int, float)):
        s = _printf_num(v, verb, flags, width, prec)
    elif isinstance(v, str):
        s = _printf_str(v, verb, flags, width, prec)
    elif verb in "vs":
        s = _pad(str(v), flags, width)
    return f"%!{verb}({_gotype(v)}={_show(v)})" if s is None else s


def _star(args: list, used: int) -> int:
    """The argument a ``*`` width or precision takes."""
    if used < len(args) and _basic(args[used]) == "int":
        return args[used]
    raise _Err("a * width or precision needs an int argument")


def _printf_str(v: str, verb: str, flags: str, width: int, prec: str | None) -> str | None:
    if verb == "v" and "#" in flags:
        s = _quote(v)
    elif verb in "vs":
        s = v if prec is None else v[:int(prec or 0)]
    elif verb == "q":
        s = _quote(v, ascii_only="+" in flags)
    elif verb in "xX":
        s = v.encode().hex(" ") if " " in flags else v.encode().hex()
        s = s.upper() if verb == "X" else s
    else:
        return None
    return _pad(s, flags, width)


def _printf(fmt: str, *args) -> str:
    """Go's fmt.Sprintf, including its in-band complaints (``%!d(string=x)``)."""
    out, args, pos = [], list(args), 0
    used = 0
    for m in re.finditer(_VERB, fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "[":
            raise _Err("explicit argument indexes (%[n]) are not supported")
        if width == "*":
            width, used = _star(args, used), used + 1
            flags, width = (flags + "-", -width) if width < 0 else (flags, width)
        if prec == "*":
            prec, used = str(max(_star(args, used), 0)), used + 1
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_printf_one(args[used], verb, flags, int(width or 0), prec))
            used += 1
    out.append(fmt[pos:])
    if used < len(args):
        extra = (f"{_gotype(a)}={_show(a)}" if a is not None else "<nil>" for a in args[used:])
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


# --- the functions ----------------------------------------------------------


def _basic(v) -> str:
    """Go's comparison kinds."""
    if v is None or v is _MISSING:
        return "nil"
    if isinstance(v, (bool, int, float, str)):
        return _gotype(v)
    return "other"


def _eq(a, *others) -> bool:
    ka = _basic(a)
    for b in others:
        kb = _basic(b)
        if "nil" in (ka, kb):
            if ka == kb:
                return True
            continue
        if ka != kb:
            raise _Err("incompatible types for comparison")
        if ka == "other":
            raise _Err(f"non-comparable type {_gotype(a)}")
        if a == b:
            return True
    return False


def _ordered(a, b) -> None:
    ka, kb = _basic(a), _basic(b)
    if ka in ("nil", "other") or kb in ("nil", "other"):
        raise _Err("invalid type for comparison")
    if ka != kb:
        raise _Err("incompatible types for comparison")
    if ka == "bool":
        raise _Err("invalid type for comparison")


def _comparison(op):
    def compare(a, b) -> bool:
        _ordered(a, b)
        return op(a, b)
    return compare


def _len(v) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    if v is None or v is _MISSING:
        raise _Err("len of nil pointer")
    raise _Err(f"len of type {_gotype(v)}")


class Struct(dict):
    """A dict that stands for a Go struct: a field it lacks is an error, not ``<no value>``."""

    type_name = "struct"


def _lookup(d: dict, key):
    try:
        return d[key]
    except KeyError:
        if isinstance(d, Struct):
            raise _Err(f"can't evaluate field {key} in type {d.type_name}") from None
        return _MISSING


def _index(item, *keys):
    if item is None or item is _MISSING:
        raise _Err("index of untyped nil")
    for key in keys:
        if item is None or item is _MISSING:
            raise _Err("index of nil pointer")
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise _Err(f"value has type {_gotype(key)}; should be string")
            # Docker's maps (labels, env) hold strings: a missing key is the empty string there.
            item = item.get(key, "")
            continue
        if not isinstance(item, (list, tuple, str)):
            raise _Err(f"can't index item of type {_gotype(item)}")
        seq = item.encode() if isinstance(item, str) else item
        if _basic(key) != "int":
            raise _Err(f"cannot index slice/array with type {_gotype(key)}")
        if not 0 <= key < len(seq):
            raise _Err(f"index out of range: {key}")
        item = seq[key]
    return item


def _print(*args) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_show(a))
    return "".join(out)


def _title(s: str) -> str:
    """Docker's title: upper-case each letter that follows a separator."""
    out, prev = [], " "
    for c in s:
        if prev < "\x80":
            sep = not (prev.isalnum() or prev == "_")
        else:
            sep = prev.isspace()
        out.append(c.upper() if sep else c)
        prev = c
    return "".join(out)


def _truncate(s: str, n: int) -> str:
    if n < 0:
        raise _Err(f"negative length {n}")
    return s[:n]


# name -> (function, kinds of the fixed parameters, kind of the variadic ones)
# kinds: v any value (missing stays missing), a any value (missing is nil),
# s string, i int, l list of strings (nil is empty)
_FUNCS = {
    "and": (None, "v", "v"),
    "or": (None, "v", "v"),
    "not": (lambda v: not _truth(v), "v", ""),
    "len": (_len, "v", ""),
    "index": (_index, "v", "v"),
    "eq": (_eq, "vv", "v"),
    "ne": (lambda a, b: not _eq(a, b), "vv", ""),
    "lt": (_comparison(operator.lt), "vv", ""),
    "le": (_comparison(operator.le), "vv", ""),
    "gt": (_comparison(operator.gt), "vv", ""),
    "ge": (_comparison(operator.ge), "vv", ""),
    "print": (_print, "", "a"),
    "println": (lambda *a: " ".join(map(_show, a)) + "\n", "", "a"),
    "printf": (_printf, "s", "a"),
    "json": (_json, "a", ""),
    "join": (lambda items, sep: sep.join(items), "ls", ""),
    "split": (lambda s, sep: s.split(sep) if sep else list(s), "ss", ""),
    "upper": (str.upper, "s", ""),
    "lower": (str.lower, "s", ""),
    "title": (_title, "s", ""),
    "truncate": (_truncate, "si", ""),
}
# In a table's header row these return their argument, as in Docker.
_HEADER_SAME = frozenset({"json", "join", "split", "upper", "lower", "title", "truncate"})
_KIND_NAMES = {"s": "string", "i": "int", "l": "[]string"}


def _kind(name: str, i: int) -> str:
    _, fixed, more = _FUNCS[name]
    return fixed[i] if i < len(fixed) else more


def _convert(v, kind: str):
    """Check an argument against the parameter kind, as Go's reflection does."""
    if kind == "v":
        return v
    if kind == "a":
        return None if v is _MISSING else v
    if kind == "l" and (v is None or v is _MISSING):
        return []
    if kind == "i" and isinstance(v, float) and v.is_integer():
        return int(v)
    ok = {"s": str, "i": int, "l": (list, tuple)}[kind]
    if isinstance(v, ok) and not isinstance(v, bool):
        if kind != "l" or all(isinstance(x, str) for x in v):
            return v
    if v is _MISSING:
        raise _Err(f"invalid value; expected {_KIND_NAMES[kind]}")
    raise _Err(f"wrong type for value; expected {_KIND_NAMES[kind]}; got {_gotype(v)}")


# --- the tokenizer ----------------------------------------------------------

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


class _Tok:
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


class _Lexer:
    """Splits a template into text and the tokens of its actions."""

    def __init__(self, text: str):
        self.text = text
        self.toks: list[_Tok] = []

    def fail(self, msg: str, pos: int):
        raise TemplateError(f"template: {msg}{_where(self.text, pos)}")

    def run(self) -> list[_Tok]:
        text, pos, trim = self.text, 0, False
        while True:
            i = text.find("{{", pos)
            chunk = text[pos:i] if i >= 0 else text[pos:]
            chunk = chunk.lstrip(_SPACE) if trim else chunk
            ltrim = i >= 0 and text.startswith("-", i + 2) and text[i + 3:i + 4] in tuple(_SPACE)
            chunk = chunk.rstrip(_SPACE) if ltrim else chunk
            if chunk:
                self.toks.append(_Tok("text", chunk, pos, i))
            if i < 0:
                self.toks.append(_Tok("eof", None, len(text), len(text)))
                return self.toks
            start = i + (4 if ltrim else 2)
            if text.startswith("/*", start):
                pos, trim = self.comment(start)
            else:
                self.toks.append(_Tok("{{", None, i, start))
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
                self.toks.append(_Tok("}}", None, pos, pos + 2))
                return pos + 2, False
            m = token.match(text, pos)
            if m is None:
                if pos >= len(text):
                    self.fail("unclosed action", len(text))
                c = text[pos]
                self.fail(_UNTERMINATED.get(c) or f"unexpected {_quote(c)} in action", pos)
            kind, end = m.lastgroup, m.end()
            if kind == "space" and text.startswith("-}}", end):
                self.toks.append(_Tok("}}", None, end, end + 3))
                return end + 3, True
            if kind in ("num", "field", "dot", "var", "ident") and not (
                    end >= len(text) or text[end] in _TERMINATORS or text.startswith("}}", end)):
                self.fail(f"bad character {_quote(text[end])} after {_quote(m.group())}", end)
            if kind != "space":
                self.toks.append(self.token(kind, m.group(), pos, end))
            else:
                self.toks.append(_Tok("space", None, pos, end))
            pos = end

    def token(self, kind: str, s: str, pos: int, end: int) -> _Tok:
        val = s
        if kind == "num":
            val = _number(s)
            if val is None:
                self.fail(f"bad number syntax: {_quote(s)}", pos)
        elif kind in ("str", "char"):
            try:
                val = _unquote(s[1:-1], s[0])
            except ValueError as e:
                self.fail(f"bad escape {_quote(str(e))} in {s}", pos)
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
        return _Tok("lit" if kind == "num" else kind, val, pos, end)


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - text.rfind("\n", 0, pos)
    return f" (line {line}, column {col})" if "\n" in text else f" (column {col})"


# --- the node tree and its evaluation -------------------------------------


class _State:
    """One rendering: the output, the variables, header mode."""

    __slots__ = ("out", "vars", "header")

    def __init__(self, data, header: bool = False):
        self.out: list[str] = []
        self.vars: list[list] = [["$", data]]
        self.header = header

    def var(self, name: str):
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise _Err(f"undefined variable: {name}")  # the parser prevents this

    def assign(self, name: str, value) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return

    def walk(self, dot, nodes: list) -> None:
        for node in nodes:
            node.run(self, dot)

    def block(self, dot, nodes: list) -> None:
        """Walk nodes in their own variable scope."""
        mark = len(self.vars)
        try:
            self.walk(dot, nodes)
        finally:
            del self.vars[mark:]

    def pipe(self, dot, pipe: _Pipe, bind: bool = True):
        value = _NOFINAL
        for cmd in pipe.cmds:
            value = cmd.run(self, dot, value)
        if bind:
            for name in pipe.decls:
                if pipe.assign:
                    self.assign(name, value)
                else:
                    self.vars.append([name, value])
        return value

    def chain(self, dot, recv, names: tuple, args: tuple, final):
        """Follow .A.B.C from recv; arguments go to the last one (a method)."""
        if isinstance(recv, _Headers):
            return recv.title(names[-1])
        for i, name in enumerate(names):
            last = i == len(names) - 1
            recv = self.field(dot, recv, name, args if last else (), final if last else _NOFINAL)
        return recv

    def field(self, dot, recv, name: str, args: tuple, final):
        if isinstance(recv, dict):
            value = _lookup(recv, name)
            if callable(value):
                return self.method(dot, name, value, args, final)
            if args or final is not _NOFINAL:
                raise _Err(f"{name} is not a method but has arguments")
            return value
        if recv is _MISSING:
            return _MISSING
        if recv is None:
            raise _Err(f"nil pointer evaluating interface {{}}.{name}")
        raise _Err(f"can't evaluate field {name} in type {_gotype(recv)}")

    def method(self, dot, name: str, fn, args: tuple, final):
        vals = [_convert(a.value(self, dot), "a") for a in args]
        if final is not _NOFINAL:
            vals.append(_convert(final, "a"))
        try:
            return fn(*vals)
        except TypeError as e:
            raise _Err(f"error calling {name}: {e}") from None

    def call(self, dot, name: str, args: tuple, final):
        if name in ("and", "or"):
            return self.and_or(dot, name == "or", args, final)
        if self.header and name in _HEADER_SAME:
            return args[0].value(self, dot) if args else final
        vals = [_convert(a.value(self, dot), _kind(name, i)) for i, a in enumerate(args)]
        if final is not _NOFINAL:
            vals.append(_convert(final, _kind(name, len(args))))
        try:
            return _FUNCS[name][0](*vals)
        except _Err as e:
            raise _Err(f"error calling {name}: {e.msg}") from None

    def and_or(self, dot, want: bool, args: tuple, final):
        """Go's and/or: the first argument that settles it, else the last one."""
        value = _NOFINAL
        for arg in args:
            value = arg.value(self, dot)
            if _truth(value) == want:
                return value
        return value if final is _NOFINAL else final


class _Headers:
    """The data of a table's header row: every field is its column title."""

    __slots__ = ("titles",)

    def __init__(self, titles: Mapping[str, str]):
        self.titles = titles

    def title(self, name: str) -> str:
        return self.titles.get(name, name.upper())

    def __str__(self) -> str:
        return ""


# Operands: .value() gives the operand as an argument; .call() runs it as the
# first word of a command, with the remaining words and the piped value.


class _Operand:
    __slots__ = ()

    def call(self, st: _State, dot, args: tuple, final):
        return self.value(st, dot)  # the parser allows no arguments here


class _Dot(_Operand):
    __slots__ = ()

    def value(self, st, dot):
        return dot


class _Lit(_Operand):
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def value(self, st, dot):
        return self.v


class _Field(_Operand):
    __slots__ = ("names",)

    def __init__(self, names: tuple):
        self.names = names

    def value(self, st, dot):
        return st.chain(dot, dot, self.names, (), _NOFINAL)

    def call(self, st, dot, args, final):
        return st.chain(dot, dot, self.names, args, final)


class _Var(_Operand):
    __slots__ = ("name", "names")

    def __init__(self, name: str, names: tuple = ()):
        self.name, self.names = name, names

    def value(self, st, dot):
        return self.call(st, dot, (), _NOFINAL)

    def call(self, st, dot, args, final):
        v = st.var(self.name)
        return st.chain(dot, v, self.names, args, final) if self.names else v


class _Chain(_Operand):
    """(pipeline).Field or function.Field."""

    __slots__ = ("base", "names")

    def __init__(self, base: _Operand, names: tuple):
        self.base, self.names = base, names

    def value(self, st, dot):
        return self.call(st, dot, (), _NOFINAL)

    def call(self, st, dot, args, final):
        return st.chain(dot, self.base.value(st, dot), self.names, args, final)


class _Ident(_Operand):
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def value(self, st, dot):
        return st.call(dot, self.name, (), _NOFINAL)

    def call(self, st, dot, args, final):
        return st.call(dot, self.name, args, final)


class _Paren(_Operand):
    __slots__ = ("pipe",)

    def __init__(self, pipe: _Pipe):
        self.pipe = pipe

    def value(self, st, dot):
        return st.pipe(dot, self.pipe)


class _Cmd:
    __slots__ = ("head", "args", "src")

    def __init__(self, words: list, src: str):
        self.head, self.args, self.src = words[0], tuple(words[1:]), src

    def run(self, st: _State, dot, final):
        try:
            return self.head.call(st, dot, self.args, final)
        except _Err as e:
            e.where = e.where or self.src
            raise


class _Pipe:
    __slots__ = ("decls", "assign", "cmds")

    def __init__(self, decls: list, assign: bool, cmds: list):
        self.decls, self.assign, self.cmds = decls, assign, cmds


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def run(self, st, dot):
        st.out.append(self.text)


class _Action:
    __slots__ = ("pipe",)

    def __init__(self, pipe: _Pipe):
        self.pipe = pipe

    def run(self, st, dot):
        value = st.pipe(dot, self.pipe)
        if not self.pipe.decls:
            st.out.append(_show(value))


class _If:
    """{{if}} and {{with}}: with also moves dot to the value."""

    __slots__ = ("pipe", "body", "orelse", "is_with")

    def __init__(self, pipe: _Pipe, body: list, orelse: list, is_with: bool):
        self.pipe, self.body, self.orelse, self.is_with = pipe, body, orelse, is_with

    def run(self, st, dot):
        mark = len(st.vars)
        value = st.pipe(dot, self.pipe)
        if _truth(value):
            st.block(value if self.is_with else dot, self.body)
        else:
            st.block(dot, self.orelse)
        del st.vars[mark:]


class _Range:
    __slots__ = ("pipe", "body", "orelse")

    def __init__(self, pipe: _Pipe, body: list, orelse: list):
        self.pipe, self.body, self.orelse = pipe, body, orelse

    def run(self, st, dot):
        mark = len(st.vars)
        value = st.pipe(dot, self.pipe, bind=False)
        items = _range_items(value, len(self.pipe.decls))
        if not self.pipe.assign:
            st.vars.extend([name, None] for name in self.pipe.decls)
        for key, item in items:
            self.bind(st, key, item)
            try:
                st.block(item, self.body)
            except _Continue:
                continue
            except _Break:
                break
        if not items:
            st.block(dot, self.orelse)
        del st.vars[mark:]

    def bind(self, st, key, item):
        decls = self.pipe.decls
        values = (item,) if len(decls) == 1 else (key, item)
        for name, v in zip(decls, values, strict=False):
            st.assign(name, v)


def _range_items(value, nvars: int) -> list:
    if value is None or value is _MISSING:
        return []
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    if isinstance(value, dict):
        return [(k, value[k]) for k in sorted(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        if nvars > 1:
            raise _Err(f"can't use {value} to iterate over more than one variable")
        return [(i, i) for i in range(value)]
    raise _Err(f"range can't iterate over {_show(value)}")


class _Jump:
    """{{break}} and {{continue}}."""

    __slots__ = ("exc",)

    def __init__(self, exc: type):
        self.exc = exc

    def run(self, st, dot):
        raise self.exc


# --- the parser ---------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens; checks names, variables and arities."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _Lexer(text).run()
        self.i = 0
        self.vars = ["$"]
        self.ranges = 0

    def fail(self, msg: str, tok: _Tok):
        raise TemplateError(f"template: {msg}{_where(self.text, tok.pos)}")

    def desc(self, tok: _Tok) -> str:
        if tok.kind == "eof":
            return "end of template"
        return _quote(self.text[tok.pos:tok.end])

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def peek_ns(self) -> _Tok:
        """The next token that is not a space (the spaces are consumed)."""
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.toks[self.i]

    def next_ns(self) -> _Tok:
        self.peek_ns()
        return self.next()

    def parse(self) -> list:
        nodes, end = self.items()
        if end.kind != "eof":
            self.fail(f"unexpected {{{{{end.val}}}}}", end)
        return nodes

    def items(self) -> tuple[list, _Tok]:
        """Nodes up to {{end}}, {{else}} or the end of the text."""
        nodes = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                return nodes, tok
            if tok.kind == "text":
                nodes.append(_Text(tok.val))
                continue
            tok = self.peek_ns()
            if tok.kind != "kw":
                nodes.append(_Action(self.pipeline("command")))
                continue
            self.next()
            if tok.val in ("end", "else"):
                return nodes, tok
            nodes.append(self.control(tok))

    def body(self, opener: _Tok) -> tuple[list, _Tok]:
        mark = len(self.vars)
        nodes, end = self.items()
        del self.vars[mark:]
        if end.kind == "eof":
            self.fail(f"unclosed {{{{{opener.val}}}}}: missing {{{{end}}}}", opener)
        return nodes, end

    def close(self, what: str) -> None:
        tok = self.next_ns()
        if tok.kind != "}}":
            self.fail(f"unexpected {self.desc(tok)} in {what}", tok)

    def control(self, tok: _Tok):
        if tok.val in ("if", "with"):
            return self.if_with(tok)
        if tok.val == "range":
            return self.range_(tok)
        if tok.val in ("break", "continue"):
            if not self.ranges:
                self.fail(f"{{{{{tok.val}}}}} outside {{{{range}}}}", tok)
            self.close(tok.val)
            return _Jump(_Break if tok.val == "break" else _Continue)
        self.fail(f"unsupported action {{{{{tok.val}}}}}", tok)

    def if_with(self, tok: _Tok) -> _If:
        mark = len(self.vars)
        pipe = self.pipeline(tok.val)
        body, end = self.body(tok)
        orelse: list = []
        if end.val == "else":
            nxt = self.peek_ns()
            if nxt.kind == "kw" and nxt.val == tok.val:  # {{else if}}, {{else with}}
                self.next()
                orelse = [self.if_with(nxt)]
            else:
                self.close("else")
                orelse, end = self.body(tok)
                self.expect_end(end)
        else:
            self.close("end")
        del self.vars[mark:]
        return _If(pipe, body, orelse, tok.val == "with")

    def expect_end(self, end: _Tok) -> None:
        if end.val != "end":
            self.fail(f"expected {{{{end}}}}; found {{{{{end.val}}}}}", end)
        self.close("end")

    def range_(self, tok: _Tok) -> _Range:
        mark = len(self.vars)
        pipe = self.pipeline("range")
        self.ranges += 1
        body, end = self.body(tok)
        self.ranges -= 1
        orelse: list = []
        if end.val == "else":
            self.close("else")
            orelse, end = self.body(tok)
        self.expect_end(end)
        del self.vars[mark:]
        return _Range(pipe, body, orelse)

    def declarations(self, context: str) -> tuple[list[_Tok], bool]:
        """``$x :=``, ``$x =`` or, in range, ``$i, $x :=``."""
        save = self.i
        names = [self.next_ns()]
        if names[0].kind != "var":
            self.i = save
            return [], False
        op = self.next_ns()
        if op.kind == ",":
            if context != "range":
                self.fail(f"too many declarations in {context}", op)
            names.append(self.next_ns())
            if names[1].kind != "var":
                self.fail("range can only initialize variables", names[1])
            op = self.next_ns()
            if op.kind not in (":=", "="):
                self.fail(f"unexpected {self.desc(op)} after {self.desc(names[1])}", op)
        if op.kind not in (":=", "="):
            self.i = save
            return [], False
        if op.kind == "=":
            for name in names:
                self.use_var(name)
        return names, op.kind == "="

    def use_var(self, tok: _Tok) -> None:
        if tok.val not in self.vars:
            self.fail(f"undefined variable {_quote(tok.val)}", tok)

    def pipeline(self, context: str, end: str = "}}") -> _Pipe:
        names, assign = self.declarations(context) if end == "}}" else ([], False)
        cmds = []
        while True:
            cmds.append(self.command(context, len(cmds)))
            tok = self.next_ns()
            if tok.kind == end:
                break
            if tok.kind == "}}":
                self.fail("unclosed left paren", tok)
            if tok.kind == ")":
                self.fail("unexpected right paren", tok)
            if tok.kind != "|":
                self.fail(f"unexpected {self.desc(tok)} in {context}", tok)
        if not assign:
            self.vars.extend(t.val for t in names)
        return _Pipe([t.val for t in names], assign, cmds)

    def command(self, context: str, stage: int) -> _Cmd:
        words = []
        first = self.peek_ns()
        while self.peek_ns().kind not in ("|", "}}", ")"):
            words.append(self.operand())
            tok = self.peek()
            if tok.kind not in ("space", "|", "}}", ")"):
                self.fail(f"unexpected {self.desc(tok)} in operand", tok)
        if not words:
            what = f"missing value for {context}" if not stage else "missing command after |"
            self.fail(what, first)
        src = self.text[first.pos:self.toks[self.i - 1].end]
        self.check(words, stage, src, first)
        return _Cmd(words, src)

    def operand(self) -> _Operand:
        tok = self.next()
        node = self.term(tok)
        names = []
        while self.peek().kind == "field":
            names.append(self.next().val)
        if not names:
            return node
        if isinstance(node, _Field):
            return _Field(node.names + tuple(names))
        if isinstance(node, _Var):
            return _Var(node.name, tuple(names))
        if isinstance(node, (_Ident, _Paren)):
            return _Chain(node, tuple(names))
        self.fail(f"unexpected . after term {self.desc(tok)}", tok)

    def term(self, tok: _Tok) -> _Operand:
        kind = tok.kind
        if kind == "field":
            return _Field((tok.val,))
        if kind == "dot":
            return _Dot()
        if kind == "lit":
            return _Lit(tok.val)
        if kind == "nil":
            return _NIL
        if kind == "var":
            self.use_var(tok)
            return _Var(tok.val)
        if kind == "ident":
            if tok.val not in _FUNCS:
                self.fail(f"unsupported function {_quote(tok.val)}", tok)
            return _Ident(tok.val)
        if kind == "(":
            return _Paren(self.pipeline("parenthesized pipeline", ")"))
        self.fail(f"unexpected {self.desc(tok)} in operand", tok)

    def check(self, words: list, stage: int, src: str, tok: _Tok) -> None:
        """What Go finds only while running: arities, nil, arguments to non-functions."""
        head, nargs = words[0], len(words) - 1 + (stage > 0)
        if head is _NIL:
            self.fail("nil is not a command", tok)
        if isinstance(head, _Ident):
            self.arity(head.name, nargs, tok)
            for i, w in enumerate(words[1:]):
                if w is _NIL and _kind(head.name, i) not in "val":
                    self.fail(f"cannot use nil as argument {i + 1} of {head.name}", tok)
        elif nargs and not isinstance(head, (_Field, _Chain)) and not (
                isinstance(head, _Var) and head.names):
            self.fail(f"can't give argument to non-function {self.desc(tok)}", tok)
        for w in words[1:] if isinstance(head, _Ident) else words:
            base = w.base if isinstance(w, _Chain) else w
            if isinstance(base, _Ident):
                self.arity(base.name, 0, tok)

    def arity(self, name: str, n: int, tok: _Tok) -> None:
        _, fixed, more = _FUNCS[name]
        if n < len(fixed) or (n > len(fixed) and not more):
            want = f"at least {len(fixed)}" if more else str(len(fixed))
            self.fail(f"wrong number of args for {name}: want {want} got {n}", tok)


_NIL = _Lit(_MISSING)  # nil: an untyped nil, like a missing key


# --- the public API -----------------------------------------------------------


class Template:
    """A compiled template; render it once per object."""

    __slots__ = ("text", "nodes", "is_table")

    def __init__(self, text: str, nodes: list, is_table: bool = False):
        self.text, self.nodes, self.is_table = text, nodes, is_table

    def render(self, data) -> str:
        return self._run(_State(data))

    def header(self, headers: Mapping[str, str]) -> str:
        """The header row: each ``{{.Field}}`` is ``headers.get(Field, FIELD)``."""
        return self._run(_State(_Headers(headers), header=True))

    def _run(self, st: _State) -> str:
        try:
            st.walk(st.vars[0][1], self.nodes)
        except _Err as e:
            where = f" at <{e.where}>" if e.where else ""
            raise TemplateError(f"template: executing{where}: {e.msg}") from None
        return "".join(st.out)


def compile(text: str) -> Template:
    """Parse a template; raise TemplateError for anything unsupported."""
    return Template(text, _Parser(text).parse())


def split_table(text: str) -> tuple[bool, str]:
    """Docker's list formats: a leading ``table`` asks for a header and columns.

    Like Docker, the prefix is stripped and the rest trimmed of spaces.
    """
    if text.startswith("table"):
        return True, text[5:].strip(" ")
    return False, text.strip(" ")


def unescape(text: str) -> str:
    """Turn the two-character sequences ``\\t`` and ``\\n`` into tab and newline."""
    return text.replace("\\t", "\t").replace("\\n", "\n")


def compile_format(fmt: str) -> Template:
    """A ``--format`` value of a list command: ``table`` prefix, escapes, template."""
    is_table, rest = split_table(fmt)
    tmpl = compile(unescape(rest))
    tmpl.is_table = is_table
    return tmpl


def header_row(template_text: str, headers: Mapping[str, str]) -> str:
    """The template rendered with each field replaced by its column title."""
    return compile(template_text).header(headers)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's tabwriter as Docker sets it up.

    A column is as wide as its widest cell plus ``padding`` (at least
    ``minwidth``) over each run of lines that have that column; the text after
    a line's last tab is not padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def emit(lo: int, hi: int, widths: list[int]) -> None:
        for cells in lines[lo:hi]:
            out.append("".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + cells[-1])

    def columns(lo: int, hi: int, widths: list[int]) -> None:
        col, this = len(widths), lo
        while this < hi:
            if len(lines[this]) - 1 <= col:
                this += 1
                continue
            emit(lo, this, widths)
            lo, width = this, minwidth
            while this < hi and len(lines[this]) - 1 > col:
                width = max(width, len(lines[this][col]) + padding)
                this += 1
            columns(lo, this, [*widths, width])
            lo = this
        emit(lo, hi, widths)

    columns(0, len(lines), [])
    return "\n".join(out)


def render_rows(fmt: str, rows: Iterable, headers: Mapping[str, str] | None = None,
                default: str = "") -> str:
    """Render a list command's rows with a ``--format`` value.

    Plain formats give one rendered row per line; ``table`` formats add a
    header row and align the tab-separated columns. A bare ``table`` uses
    ``default``. No trailing newline.
    """
    is_table, rest = split_table(fmt)
    if is_table and not rest:
        if not default:
            raise TemplateError("template: \"table\" needs a template after it")
        rest = split_table(default)[1]
    tmpl = compile(unescape(rest))
    lines = [tmpl.render(row) for row in rows]
    if not is_table:
        return "\n".join(lines)
    return tabwrite("\n".join([tmpl.header(headers or {}), *lines]))
