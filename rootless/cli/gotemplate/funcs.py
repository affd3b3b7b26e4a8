"""The functions a template may call (Go's builtins and Docker's), with the kinds
of their parameters and the checks Go's reflection makes on the arguments."""

from __future__ import annotations

import operator
import re

from rootless.cli.gotemplate.printf import sprintf
from rootless.cli.gotemplate.values import (
    MISSING,
    NilMap,
    NilSlice,
    RenderError,
    basic_kind,
    float_g,
    fmt_e,
    fmt_f,
    gotype,
    nonfinite,
    shortest,
    show,
    truth,
)

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
    if nonfinite(f):
        raise RenderError(f"json: unsupported value: {float_g(f)}")
    sign, digits, dp = shortest(f)
    if f and not 1e-6 <= abs(f) < 1e21:
        return re.sub(r"e-0(\d)$", r"e-\1", fmt_e(sign, digits, dp))
    return fmt_f(sign, digits, dp)


def _json(v) -> str:
    if v is None or v is MISSING or isinstance(v, (NilSlice, NilMap)):
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
    raise RenderError(f"json: unsupported type: {gotype(v)}")


def _eq(a, *others) -> bool:
    ka = basic_kind(a)
    for b in others:
        kb = basic_kind(b)
        if "nil" in (ka, kb):
            if ka == kb:
                return True
            continue
        if ka != kb:
            raise RenderError("incompatible types for comparison")
        if ka == "other":
            raise RenderError(f"non-comparable type {gotype(a)}")
        if a == b:
            return True
    return False


def _ordered(a, b) -> None:
    ka, kb = basic_kind(a), basic_kind(b)
    if ka in ("nil", "other") or kb in ("nil", "other"):
        raise RenderError("invalid type for comparison")
    if ka != kb:
        raise RenderError("incompatible types for comparison")
    if ka == "bool":
        raise RenderError("invalid type for comparison")


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
    if v is None or v is MISSING:
        raise RenderError("len of nil pointer")
    raise RenderError(f"len of type {gotype(v)}")


def _index(item, *keys):
    if item is None or item is MISSING:
        raise RenderError("index of untyped nil")
    for key in keys:
        if item is None or item is MISSING:
            raise RenderError("index of nil pointer")
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise RenderError(f"value has type {gotype(key)}; should be string")
            # Docker's maps (labels, env) hold strings: a missing key is the empty string there.
            item = item.get(key, "")
            continue
        if not isinstance(item, (list, tuple, str)):
            raise RenderError(f"can't index item of type {gotype(item)}")
        seq = item.encode() if isinstance(item, str) else item
        if basic_kind(key) != "int":
            raise RenderError(f"cannot index slice/array with type {gotype(key)}")
        if not 0 <= key < len(seq):
            raise RenderError(f"index out of range: {key}")
        item = seq[key]
    return item


def _print(*args) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(show(a))
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
        raise RenderError(f"negative length {n}")
    return s[:n]


# name -> (function, kinds of the fixed parameters, kind of the variadic ones)
# kinds: v any value (missing stays missing), a any value (missing is nil),
# s string, i int, l list of strings (nil is empty)
FUNCS = {
    "and": (None, "v", "v"),
    "or": (None, "v", "v"),
    "not": (lambda v: not truth(v), "v", ""),
    "len": (_len, "v", ""),
    "index": (_index, "v", "v"),
    "eq": (_eq, "vv", "v"),
    "ne": (lambda a, b: not _eq(a, b), "vv", ""),
    "lt": (_comparison(operator.lt), "vv", ""),
    "le": (_comparison(operator.le), "vv", ""),
    "gt": (_comparison(operator.gt), "vv", ""),
    "ge": (_comparison(operator.ge), "vv", ""),
    "print": (_print, "", "a"),
    "println": (lambda *a: " ".join(map(show, a)) + "\n", "", "a"),
    "printf": (sprintf, "s", "a"),
    "json": (_json, "a", ""),
    "join": (lambda items, sep: sep.join(items), "ls", ""),
    "split": (lambda s, sep: s.split(sep) if sep else list(s), "ss", ""),
    "upper": (str.upper, "s", ""),
    "lower": (str.lower, "s", ""),
    "title": (_title, "s", ""),
    "truncate": (_truncate, "si", ""),
}
# In a table's header row these return their argument, as in Docker.
HEADER_SAME = frozenset({"json", "join", "split", "upper", "lower", "title", "truncate"})
_KIND_NAMES = {"s": "string", "i": "int", "l": "[]string"}


def param_kind(name: str, i: int) -> str:
    _, fixed, more = FUNCS[name]
    return fixed[i] if i < len(fixed) else more


def convert_arg(v, kind: str):
    """Check an argument against the parameter kind, as Go's reflection does."""
    if kind == "v":
        return v
    if kind == "a":
        return None if v is MISSING else v
    if kind == "l" and (v is None or v is MISSING):
        return []
    if kind == "i" and isinstance(v, float) and v.is_integer():
        return int(v)
    ok = {"s": str, "i": int, "l": (list, tuple)}[kind]
    if isinstance(v, ok) and not isinstance(v, bool):
        if kind != "l" or all(isinstance(x, str) for x in v):
            return v
    if v is MISSING:
        raise RenderError(f"invalid value; expected {_KIND_NAMES[kind]}")
    raise RenderError(f"wrong type for value; expected {_KIND_NAMES[kind]}; got {gotype(v)}")
