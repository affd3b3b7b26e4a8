"""Go's values as a template sees them: the errors, the missing value, Go's type
names and truthiness, ``%v`` printing (floats included), strconv's quoting and
``Struct``. Imports only ``rootless.base``."""

from __future__ import annotations

from rootless.base.errors import UsageError


class TemplateError(UsageError):
    """A bad ``--format`` template, or one that failed on the data."""


class RenderError(Exception):
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


MISSING = _Missing()
NOFINAL = _Missing()  # no value piped into a command


class NilSlice(tuple):
    """A typed struct field's nil slice (Docker's ``Config.Env`` of an imported image): empty,
    shown as ``[]`` by ``%v``, ``null`` by ``json``."""

    __slots__ = ()


class NilMap(dict):
    """A typed struct field's nil map: empty, ``map[]`` by ``%v``, ``null`` by ``json``."""


class Break(Exception):
    pass


class Continue(Exception):
    pass


def gotype(v) -> str:
    """The Go type name the value would have in a decoded JSON document."""
    if v is None or v is MISSING:
        return "<nil>"
    for py, go in _GOTYPES:
        if isinstance(v, py):
            return go
    return type(v).__name__


_GOTYPES = ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
            ((list, tuple), "[]interface {}"), (dict, "map[string]interface {}"))


def truth(v) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def show(v) -> str:
    """Go's ``%v``."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if v is MISSING:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return float_g(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(map(show, v)) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{show(k)}:{show(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def shortest(f: float) -> tuple[str, str, int]:
    """(sign, digits, dp): abs(f) == 0.DIGITS * 10**dp, with the fewest digits."""
    r = repr(f)
    sign = "-" if r.startswith("-") else ""
    mant, _, exp = r.lstrip("-").partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    dp = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0")
    return (sign, digits, dp) if digits else (sign, "0", 1)


def fmt_e(sign: str, digits: str, dp: int) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def fmt_f(sign: str, digits: str, dp: int) -> str:
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def nonfinite(f: float) -> str | None:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    return None


def float_g(f: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form outside 1e-4..1e21."""
    bad = nonfinite(f)
    if bad:
        return bad
    sign, digits, dp = shortest(f)
    if not -4 <= dp - 1 < 6:
        return fmt_e(sign, digits, dp)
    return fmt_f(sign, digits, dp)


_QUOTE_ESC = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
              "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def strconv_quote(s: str, ascii_only: bool = False) -> str:
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


def strconv_quote_rune(code: int) -> str:
    """Go's strconv.QuoteRune."""
    c = chr(code)
    return "'" + ({'"': '"', "'": "\\'"}.get(c) or strconv_quote(c)[1:-1]) + "'"


def basic_kind(v) -> str:
    """Go's comparison kinds."""
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, (bool, int, float, str)):
        return gotype(v)
    return "other"


class Struct(dict):
    """A dict that stands for a Go struct: a field it lacks is an error, not ``<no value>``."""

    type_name = "struct"
