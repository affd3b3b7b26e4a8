"""Recursive descent over the lexer's tokens into the evaluator's nodes; checks
names, variables and arities before anything runs.

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
"""

from __future__ import annotations

from rootless.cli.gotemplate.evaluator import (
    NIL,
    Action,
    Chain,
    Cmd,
    Dot,
    Field,
    Ident,
    If,
    Jump,
    Lit,
    Operand,
    Paren,
    Pipe,
    Range,
    Text,
    Var,
)
from rootless.cli.gotemplate.funcs import FUNCS, param_kind
from rootless.cli.gotemplate.lexer import Lexer, Token, location
from rootless.cli.gotemplate.values import Break, Continue, TemplateError, strconv_quote


class Parser:
    """Recursive descent over the tokens; checks names, variables and arities."""

    def __init__(self, text: str):
        self.text = text
        self.toks = Lexer(text).run()
        self.i = 0
        self.vars = ["$"]
        self.ranges = 0

    def fail(self, msg: str, tok: Token):
        raise TemplateError(f"template: {msg}{location(self.text, tok.pos)}")

    def desc(self, tok: Token) -> str:
        if tok.kind == "eof":
            return "end of template"
        return strconv_quote(self.text[tok.pos:tok.end])

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def peek(self) -> Token:
        return self.toks[self.i]

    def peek_ns(self) -> Token:
        """The next token that is not a space (the spaces are consumed)."""
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.toks[self.i]

    def next_ns(self) -> Token:
        self.peek_ns()
        return self.next()

    def parse(self) -> list:
        nodes, end = self.items()
        if end.kind != "eof":
            self.fail(f"unexpected {{{{{end.val}}}}}", end)
        return nodes

    def items(self) -> tuple[list, Token]:
        """Nodes up to {{end}}, {{else}} or the end of the text."""
        nodes = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                return nodes, tok
            if tok.kind == "text":
                nodes.append(Text(tok.val))
                continue
            tok = self.peek_ns()
            if tok.kind != "kw":
                nodes.append(Action(self.pipeline("command")))
                continue
            self.next()
            if tok.val in ("end", "else"):
                return nodes, tok
            nodes.append(self.control(tok))

    def body(self, opener: Token) -> tuple[list, Token]:
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

    def control(self, tok: Token):
        if tok.val in ("if", "with"):
            return self.if_with(tok)
        if tok.val == "range":
            return self.range_(tok)
        if tok.val in ("break", "continue"):
            if not self.ranges:
                self.fail(f"{{{{{tok.val}}}}} outside {{{{range}}}}", tok)
            self.close(tok.val)
            return Jump(Break if tok.val == "break" else Continue)
        self.fail(f"unsupported action {{{{{tok.val}}}}}", tok)

    def if_with(self, tok: Token) -> If:
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
        return If(pipe, body, orelse, tok.val == "with")

    def expect_end(self, end: Token) -> None:
        if end.val != "end":
            self.fail(f"expected {{{{end}}}}; found {{{{{end.val}}}}}", end)
        self.close("end")

    def range_(self, tok: Token) -> Range:
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
        return Range(pipe, body, orelse)

    def declarations(self, context: str) -> tuple[list[Token], bool]:
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

    def use_var(self, tok: Token) -> None:
        if tok.val not in self.vars:
            self.fail(f"undefined variable {strconv_quote(tok.val)}", tok)

    def pipeline(self, context: str, end: str = "}}") -> Pipe:
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
        return Pipe([t.val for t in names], assign, cmds)

    def command(self, context: str, stage: int) -> Cmd:
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
        return Cmd(words, src)

    def operand(self) -> Operand:
        tok = self.next()
        node = self.term(tok)
        names = []
        while self.peek().kind == "field":
            names.append(self.next().val)
        if not names:
            return node
        if isinstance(node, Field):
            return Field(node.names + tuple(names))
        if isinstance(node, Var):
            return Var(node.name, tuple(names))
        if isinstance(node, (Ident, Paren)):
            return Chain(node, tuple(names))
        self.fail(f"unexpected . after term {self.desc(tok)}", tok)

    def term(self, tok: Token) -> Operand:
        kind = tok.kind
        if kind == "field":
            return Field((tok.val,))
        if kind == "dot":
            return Dot()
        if kind == "lit":
            return Lit(tok.val)
        if kind == "nil":
            return NIL
        if kind == "var":
            self.use_var(tok)
            return Var(tok.val)
        if kind == "ident":
            if tok.val not in FUNCS:
                self.fail(f"unsupported function {strconv_quote(tok.val)}", tok)
            return Ident(tok.val)
        if kind == "(":
            return Paren(self.pipeline("parenthesized pipeline", ")"))
        self.fail(f"unexpected {self.desc(tok)} in operand", tok)

    def check(self, words: list, stage: int, src: str, tok: Token) -> None:
        """What Go finds only while running: arities, nil, arguments to non-functions."""
        head, nargs = words[0], len(words) - 1 + (stage > 0)
        if head is NIL:
            self.fail("nil is not a command", tok)
        if isinstance(head, Ident):
            self.arity(head.name, nargs, tok)
            for i, w in enumerate(words[1:]):
                if w is NIL and param_kind(head.name, i) not in "val":
                    self.fail(f"cannot use nil as argument {i + 1} of {head.name}", tok)
        elif nargs and not isinstance(head, (Field, Chain)) and not (
                isinstance(head, Var) and head.names):
            self.fail(f"can't give argument to non-function {self.desc(tok)}", tok)
        for w in words[1:] if isinstance(head, Ident) else words:
            base = w.base if isinstance(w, Chain) else w
            if isinstance(base, Ident):
                self.arity(base.name, 0, tok)

    def arity(self, name: str, n: int, tok: Token) -> None:
        _, fixed, more = FUNCS[name]
        if n < len(fixed) or (n > len(fixed) and not more):
            want = f"at least {len(fixed)}" if more else str(len(fixed))
            self.fail(f"wrong number of args for {name}: want {want} got {n}", tok)
