"""The full typer application, built from the command declarations.

Used for help, completion-style discovery and every command line the fast
parser declines; it reports usage errors as typer/click do, and the error
boundary in :mod:`rootless.cli.main` turns them into Docker-like lines.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import typer

from rootless.cli import params as P

_RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def _typer_default(decl: P.Opt | P.Arg):
    if isinstance(decl, P.Opt):
        return typer.Option(decl.default, *decl.decls, help=decl.help, envvar=decl.envvar, metavar=decl.metavar)
    return typer.Argument(decl.default, help=decl.help or None, metavar=decl.metavar)


def _wrap(cmd: P.Command, invoke: Callable[[P.Command, dict], object]):
    def wrapper(**kwargs):
        return invoke(cmd, kwargs)

    wrapper.__name__ = cmd.func.__name__
    wrapper.__doc__ = cmd.func.__doc__
    wrapper.__signature__ = inspect.Signature([
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=_typer_default(p.decl), annotation=p.type)
        for p in cmd.params])
    wrapper.__annotations__ = {p.name: p.type for p in cmd.params}
    return wrapper


def build(invoke: Callable[[P.Command, dict], object], on_globals: Callable[[str | None, bool], None]) -> typer.Typer:
    from rootless.cli import commands  # noqa: F401 - the table of commands (iterating COMMANDS imports them)

    def settings(cmd: P.Command) -> dict:
        return _RUN_SETTINGS if not cmd.interspersed else {"help_option_names": ["--help"]}

    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode=None, context_settings={"help_option_names": ["--help"]},
                      help="Run containers like Docker does, without a daemon and without root.")
    groups = {name: typer.Typer(help=text, no_args_is_help=True) for name, text in P.GROUPS.items()}
    for name, sub in groups.items():
        app.add_typer(sub, name=name)
    for path, cmd in P.COMMANDS.items():
        target = groups[path[0]] if len(path) > 1 else app
        target.command(path[-1], help=cmd.help, context_settings=settings(cmd))(_wrap(cmd, invoke))

    def _version(value: bool) -> None:
        if value:  # as `docker --version`: the one line, whatever follows
            from rootless import __version__
            print(f"rootless version {__version__}")
            raise typer.Exit(0)

    @app.callback()
    def _global(root: str = typer.Option(None, "--root", help="Storage directory (or ROOTLESS_ROOT)."),
                debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
                version: bool = typer.Option(False, "--version", "-v", is_eager=True, callback=_version,
                                             help="Print the version and quit.")) -> None:
        on_globals(root, debug)

    return app
