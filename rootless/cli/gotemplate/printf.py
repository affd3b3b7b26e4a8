"""Go's fmt.Sprintf for the template function ``printf``: the verbs, flags, width
and precision, and Go's in-band complaints (``%!d(string=x)``)."""

from __future__ import annotations

import re

from rootless.cli.gotemplate.values import (
    MISSING,
    RenderError,
    basic_kind,
    float_g,
    gotype,
    nonfinite,
    show,
    strconv_quote,
    strconv_quote_rune,
)

_VERB = r"(?s)%([-+# 0]*)(\*|\d*)(?:\.(\*|\d*))?(.?)"


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
            return _pad(strconv_quote_rune(v), flags, width)
        if verb == "b":
            return _pad(format(v, "b"), flags, width)
        if verb == "U":
            return _pad(f"U+{v:04X}", flags, width)
        if verb == "o" and "#" in flags:
            return _pad(("-0" if v < 0 else "0") + format(abs(v), "o"), flags, width)
        conv = {"v": "d", "d": "d", "x": "x", "X": "X", "o": "o"}.get(verb)
    else:
        bad = nonfinite(v)
        if bad and verb in "vgGeEfF":
            return _pad(bad, flags.replace("0", ""), width)
        if verb in "vgG" and prec is None:
            s = float_g(v).upper() if verb == "G" else float_g(v)
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
    if v is None or v is MISSING:
        return _pad("<nil>", flags, width) if verb == "v" or depth else f"%!{verb}(<nil>)"
    s = None
    if isinstance(v, bool):
        s = _pad(show(v), flags, width) if verb in "tv" else None
    elif isinstance(v, (int, float)):
        s = _printf_num(v, verb, flags, width, prec)
    elif isinstance(v, str):
        s = _printf_str(v, verb, flags, width, prec)
    elif verb in "vs":
        s = _pad(str(v), flags, width)
    return f"%!{verb}({gotype(v)}={show(v)})" if s is None else s


def _star(args: list, used: int) -> int:
    """The argument a ``*`` width or precision takes."""
    if used < len(args) and basic_kind(args[used]) == "int":
        return args[used]
    raise RenderError("a * width or precision needs an int argument")


def _printf_str(v: str, verb: str, flags: str, width: int, prec: str | None) -> str | None:
    if verb == "v" and "#" in flags:
        s = strconv_quote(v)
    elif verb in "vs":
        s = v if prec is None else v[:int(prec or 0)]
    elif verb == "q":
        s = strconv_quote(v, ascii_only="+" in flags)
    elif verb in "xX":
        s = v.encode().hex(" ") if " " in flags else v.encode().hex()
        s = s.upper() if verb == "X" else s
    else:
        return None
    return _pad(s, flags, width)


def sprintf(fmt: str, *args) -> str:
    """Go's fmt.Sprintf, including its in-band complaints (``%!d(string=x)``)."""
    out, args, pos = [], list(args), 0
    used = 0
    for m in re.finditer(_VERB, fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "[":
            raise RenderError("explicit argument indexes (%[n]) are not supported")
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
        extra = (f"{gotype(a)}={show(a)}" if a is not None else "<nil>" for a in args[used:])
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)
