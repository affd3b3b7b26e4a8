"""How commands declare their parameters, without importing typer.

Each command is a plain function whose parameter defaults are ``Opt``/``Arg``
declarations. The same declarations drive two parsers: typer (help, errors,
everything) and a small fast parser for well-formed command lines, so that
start-up does not pay for building the whole typer application.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping

REQUIRED = ...


# Value types on the start-up path are namedtuples: importing dataclasses costs ~8 ms per command.
Opt = namedtuple("Opt", "decls default help envvar metavar", defaults=(None, "", None, None))
Arg = namedtuple("Arg", "default help metavar", defaults=(REQUIRED, "", None))


class Param(namedtuple("Param", "name decl type")):
    """One parameter: its name, its Opt/Arg declaration and its type (bool, str, int, list[str])."""

    __slots__ = ()

    @property
    def is_list(self) -> bool:
        return getattr(self.type, "__origin__", None) is list

    @property
    def is_flag(self) -> bool:
        return self.type is bool


class Command(namedtuple("Command", "path func interspersed params", defaults=(True, ()))):
    """A registered command; ``interspersed=False``: everything after the first argument is an
    argument (run, unshare)."""

    __slots__ = ()

    @property
    def help(self) -> str:
        import inspect
        return inspect.getdoc(self.func) or ""


class Registry(Mapping):
    """The commands by path. A command's module registers it when imported; ``where`` names each
    path's module (:mod:`rootless.cli.commands` fills it), so that looking one command up imports
    its module alone, and iterating imports them all (in ``where``'s order, the help's)."""

    def __init__(self):
        self.found: dict[tuple[str, ...], Command] = {}
        self.where: dict[tuple[str, ...], str] = {}

    def __getitem__(self, path: tuple[str, ...]) -> Command:
        if path not in self.found and path in self.where:
            __import__(self.where[path])
        return self.found[path]

    def __iter__(self):
        for module in dict.fromkeys(self.where.values()):
            __import__(module)
        return iter([*(p for p in self.where if p in self.found), *(p for p in self.found if p not in self.where)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


COMMANDS = Registry()
GROUPS: dict[str, str] = {}


def group(name: str, help: str) -> None:
    GROUPS[name] = help


def alias(path: tuple[str, ...], target) -> None:
    """``path`` is another name of the command function ``target`` (``image ls`` of ``images``,
    ``container ls`` of ``ps``): its flags, its parsing and its help."""
    base = next(c for c in COMMANDS.found.values() if c.func is target)

    def same(ctx, **kw):
        return target(ctx, **kw)
    same.__doc__, same.__module__ = target.__doc__, target.__module__  # the target's module registers it
    command(*path, interspersed=base.interspersed, params_of=target)(same)


def command(*path: str, interspersed: bool = True, params_of=None, without: tuple[str, ...] = (),
            more: Mapping | None = None):
    """Register a command function; its first parameter ``ctx`` receives the Context.

    ``params_of``: take the parameters of another command function (``create`` has ``run``'s
    flags), less ``without``; the function then receives them as keyword arguments.
    ``more``: parameters beyond the function's own, name -> (type, Opt), which it receives in its
    ``**`` argument (a group of flags declared once, for a signature that stays readable).
    """
    def register(func):
        if params_of is not None:
            base = next(c for c in COMMANDS.found.values() if c.func is params_of)
            params = tuple(p for p in base.params if p.name not in without)
            COMMANDS.found[path] = Command(path, func, interspersed, params)
            return func
        # Read the code object rather than ``inspect.signature``: this runs for every
        # command at every start-up. Annotations are real types (the commands do not
        # use postponed evaluation).
        code = func.__code__
        names = code.co_varnames[:code.co_argcount]
        defaults = dict(zip(names[len(names) - len(func.__defaults__ or ()):], func.__defaults__ or (), strict=True))
        params = tuple(Param(n, defaults[n], func.__annotations__[n]) for n in names if n != "ctx")
        params += tuple(Param(n, decl, kind) for n, (kind, decl) in (more or {}).items())
        COMMANDS.found[path] = Command(path, func, interspersed, params)
        return func
    return register
