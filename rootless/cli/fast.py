"""A small parser for well-formed command lines, over the same declarations as typer's.

It handles what Docker users type (long and short options, ``--opt=value``,
``--flag=false`` as Docker's boolean flags take it, ``-it`` clusters, ``-eK=V``,
repeated options, ``--``, arguments) and gives
up (returns None) on anything else: help, unknown flags, missing values or
arguments. Then the full typer application parses the line and reports.
"""

from __future__ import annotations

from collections import namedtuple

from rootless.cli.params import COMMANDS, GROUPS, REQUIRED, Arg, Command, Opt, Param  # noqa: F401

GLOBAL_FLAGS = {"--debug"}
GLOBAL_VALUES = {"--root"}


Parsed = namedtuple("Parsed", "command kwargs root debug", defaults=(None, False))


class _GiveUp(Exception):
    pass


def parse(argv: list[str]) -> Parsed | None:
    try:
        return _parse(argv)
    except _GiveUp:
        return None


def _parse(argv: list[str]) -> Parsed:
    i, root, debug = 0, None, False
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if name in GLOBAL_FLAGS and not eq:
            debug = True
        elif name in GLOBAL_VALUES:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise _GiveUp
                value = argv[i]
            root = value
        else:
            raise _GiveUp
        i += 1
    if i >= len(argv):
        raise _GiveUp
    path: tuple[str, ...] = (argv[i],)
    i += 1
    if path[0] in GROUPS:
        if i >= len(argv):
            raise _GiveUp
        path += (argv[i],)
        i += 1
    cmd = COMMANDS.get(path)
    if cmd is None:
        raise _GiveUp
    return Parsed(cmd, _params(cmd, argv[i:]), root, debug)


def _params(cmd: Command, args: list[str]) -> dict:
    options = {d: p for p in cmd.params if isinstance(p.decl, Opt) for d in p.decl.decls}
    values: dict = {}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            positionals += args[i:]
            break
        if not a.startswith("-") or a == "-":
            positionals.append(a)
            if not cmd.interspersed:
                positionals += args[i:]
                break
            continue
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            p = options.get(name) or _give_up()
            if p.is_flag:
                values[p.name] = _bool(value) if eq else True  # --rm=false, --privileged=true: Docker's too
                continue
            if not eq:
                value, i = _next(args, i)
            _set(values, p, value)
            continue
        j = 1
        while j < len(a):  # a cluster of short options: -it, -eK=V, -w /x
            p = options.get("-" + a[j]) or _give_up()
            if p.is_flag:
                if a[j + 1:j + 2] == "=":  # -d=false
                    values[p.name] = _bool(a[j + 2:])
                    break
                values[p.name] = True
                j += 1
                continue
            value = a[j + 1:]
            if not value:
                value, i = _next(args, i)
            _set(values, p, value)
            break
    _assign(cmd, positionals, values)
    for p in cmd.params:
        if p.name not in values:
            default = p.decl.default
            if default is REQUIRED:
                raise _GiveUp
            values[p.name] = list(default) if isinstance(default, list) else default
    return values


# Go's strconv.ParseBool, which Docker's flags take after a boolean flag's "="
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _bool(value: str) -> bool:
    if value not in _BOOLS:
        raise _GiveUp  # typer says what is wrong
    return _BOOLS[value]


def _next(args: list[str], i: int) -> tuple[str, int]:
    """The option's value in the next argument."""
    if i >= len(args):
        raise _GiveUp
    return args[i], i + 1


def _give_up() -> Param:
    raise _GiveUp


def _convert(p: Param, value: str):
    if p.type is int:
        try:
            return int(value)
        except ValueError:
            raise _GiveUp from None
    return value


def _set(values: dict, p: Param, value: str) -> None:
    if p.is_list:
        values.setdefault(p.name, []).append(value)
    else:
        values[p.name] = _convert(p, value)


def _assign(cmd: Command, positionals: list[str], values: dict) -> None:
    args = [p for p in cmd.params if isinstance(p.decl, Arg)]
    for n, p in enumerate(args):
        if p.is_list:
            rest = len(args) - n - 1
            take = positionals[: len(positionals) - rest] if rest else positionals
            positionals = positionals[len(take):]
            if take:
                values[p.name] = take
            elif p.decl.default is REQUIRED:
                raise _GiveUp
            continue
        if positionals:
            values[p.name] = _convert(p, positionals.pop(0))
    if positionals:
        raise _GiveUp
