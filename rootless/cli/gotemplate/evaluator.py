"""The node tree and its evaluation: one ``_State`` per rendering walks the nodes
the parser built; ``Template`` is the compiled result.

The data is JSON-like: dicts, lists, str, int, float, bool and None. None
prints as ``<nil>``, like a nil pointer in Docker's structs. A callable stored
in a dict acts as a Go method: ``{{.Label "k"}}`` calls it with ``"k"``.
"""

from __future__ import annotations

from rootless.cli.gotemplate.funcs import FUNCS, HEADER_SAME, convert_arg, param_kind
from rootless.cli.gotemplate.values import (
    MISSING,
    NOFINAL,
    Break,
    Continue,
    RenderError,
    Struct,
    TemplateError,
    gotype,
    show,
    truth,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def _lookup(d: dict, key):
    try:
        return d[key]
    except KeyError:
        if isinstance(d, Struct):
            raise RenderError(f"can't evaluate field {key} in type {d.type_name}") from None
        return MISSING


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
        raise RenderError(f"undefined variable: {name}")  # the parser prevents this

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

    def pipe(self, dot, pipe: Pipe, bind: bool = True):
        value = NOFINAL
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
            recv = self.field(dot, recv, name, args if last else (), final if last else NOFINAL)
        return recv

    def field(self, dot, recv, name: str, args: tuple, final):
        if isinstance(recv, dict):
            value = _lookup(recv, name)
            if callable(value):
                return self.method(dot, name, value, args, final)
            if args or final is not NOFINAL:
                raise RenderError(f"{name} is not a method but has arguments")
            return value
        if recv is MISSING:
            return MISSING
        if recv is None:
            raise RenderError(f"nil pointer evaluating interface {{}}.{name}")
        raise RenderError(f"can't evaluate field {name} in type {gotype(recv)}")

    def method(self, dot, name: str, fn, args: tuple, final):
        vals = [convert_arg(a.value(self, dot), "a") for a in args]
        if final is not NOFINAL:
            vals.append(convert_arg(final, "a"))
        try:
            return fn(*vals)
        except TypeError as e:
            raise RenderError(f"error calling {name}: {e}") from None

    def call(self, dot, name: str, args: tuple, final):
        if name in ("and", "or"):
            return self.and_or(dot, name == "or", args, final)
        if self.header and name in HEADER_SAME:
            return args[0].value(self, dot) if args else final
        vals = [convert_arg(a.value(self, dot), param_kind(name, i)) for i, a in enumerate(args)]
        if final is not NOFINAL:
            vals.append(convert_arg(final, param_kind(name, len(args))))
        try:
            return FUNCS[name][0](*vals)
        except RenderError as e:
            raise RenderError(f"error calling {name}: {e.msg}") from None

    def and_or(self, dot, want: bool, args: tuple, final):
        """Go's and/or: the first argument that settles it, else the last one."""
        value = NOFINAL
        for arg in args:
            value = arg.value(self, dot)
            if truth(value) == want:
                return value
        return value if final is NOFINAL else final


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


class Operand:
    __slots__ = ()

    def call(self, st: _State, dot, args: tuple, final):
        return self.value(st, dot)  # the parser allows no arguments here


class Dot(Operand):
    __slots__ = ()

    def value(self, st, dot):
        return dot


class Lit(Operand):
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def value(self, st, dot):
        return self.v


NIL = Lit(MISSING)  # nil: an untyped nil, like a missing key


class Field(Operand):
    __slots__ = ("names",)

    def __init__(self, names: tuple):
        self.names = names

    def value(self, st, dot):
        return st.chain(dot, dot, self.names, (), NOFINAL)

    def call(self, st, dot, args, final):
        return st.chain(dot, dot, self.names, args, final)


class Var(Operand):
    __slots__ = ("name", "names")

    def __init__(self, name: str, names: tuple = ()):
        self.name, self.names = name, names

    def value(self, st, dot):
        return self.call(st, dot, (), NOFINAL)

    def call(self, st, dot, args, final):
        v = st.var(self.name)
        return st.chain(dot, v, self.names, args, final) if self.names else v


class Chain(Operand):
    """(pipeline).Field or function.Field."""

    __slots__ = ("base", "names")

    def __init__(self, base: Operand, names: tuple):
        self.base, self.names = base, names

    def value(self, st, dot):
        return self.call(st, dot, (), NOFINAL)

    def call(self, st, dot, args, final):
        return st.chain(dot, self.base.value(st, dot), self.names, args, final)


class Ident(Operand):
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def value(self, st, dot):
        return st.call(dot, self.name, (), NOFINAL)

    def call(self, st, dot, args, final):
        return st.call(dot, self.name, args, final)


class Paren(Operand):
    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe):
        self.pipe = pipe

    def value(self, st, dot):
        return st.pipe(dot, self.pipe)


class Cmd:
    __slots__ = ("head", "args", "src")

    def __init__(self, words: list, src: str):
        self.head, self.args, self.src = words[0], tuple(words[1:]), src

    def run(self, st: _State, dot, final):
        try:
            return self.head.call(st, dot, self.args, final)
        except RenderError as e:
            e.where = e.where or self.src
            raise


class Pipe:
    __slots__ = ("decls", "assign", "cmds")

    def __init__(self, decls: list, assign: bool, cmds: list):
        self.decls, self.assign, self.cmds = decls, assign, cmds


class Text:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def run(self, st, dot):
        st.out.append(self.text)


class Action:
    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe):
        self.pipe = pipe

    def run(self, st, dot):
        value = st.pipe(dot, self.pipe)
        if not self.pipe.decls:
            st.out.append(show(value))


class If:
    """{{if}} and {{with}}: with also moves dot to the value."""

    __slots__ = ("pipe", "body", "orelse", "is_with")

    def __init__(self, pipe: Pipe, body: list, orelse: list, is_with: bool):
        self.pipe, self.body, self.orelse, self.is_with = pipe, body, orelse, is_with

    def run(self, st, dot):
        mark = len(st.vars)
        value = st.pipe(dot, self.pipe)
        if truth(value):
            st.block(value if self.is_with else dot, self.body)
        else:
            st.block(dot, self.orelse)
        del st.vars[mark:]


class Range:
    __slots__ = ("pipe", "body", "orelse")

    def __init__(self, pipe: Pipe, body: list, orelse: list):
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
            except Continue:
                continue
            except Break:
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
    if value is None or value is MISSING:
        return []
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    if isinstance(value, dict):
        return [(k, value[k]) for k in sorted(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        if nvars > 1:
            raise RenderError(f"can't use {value} to iterate over more than one variable")
        return [(i, i) for i in range(value)]
    raise RenderError(f"range can't iterate over {show(value)}")


class Jump:
    """{{break}} and {{continue}}."""

    __slots__ = ("exc",)

    def __init__(self, exc: type):
        self.exc = exc

    def run(self, st, dot):
        raise self.exc


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
        except RenderError as e:
            where = f" at <{e.where}>" if e.where else ""
            raise TemplateError(f"template: executing{where}: {e.msg}") from None
        return "".join(st.out)
