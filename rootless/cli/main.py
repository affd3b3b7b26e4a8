"""``rootless``: Docker's verbs, without a daemon and without root.

The entry point: a fast parse of well-formed command lines (no typer import),
else the typer application; then one error boundary that prints
``rootless: error: ...`` / ``rootless: hint: ...`` and exits with Docker's codes.
"""

from __future__ import annotations

import os
import sys


class _Globals:
    root: str | None = None
    debug: bool = False
    ctx = None  # the command's Context, once made: a full disk's error names its store


def _progress(quiet: bool):
    from rootless.cli import progress
    return progress.reporter(quiet)


def _invoke(cmd, kwargs: dict):
    from rootless.engine.context import Context
    _Globals.ctx = ctx = Context(root=_Globals.root, debug=_Globals.debug, progress=_progress,
                                      warm_forker=True)
    return cmd.func(ctx, **kwargs)


def _set_globals(root: str | None, debug: bool) -> None:
    _Globals.root, _Globals.debug = root, debug


def _run_typer(argv: list[str]):
    import typer

    from rootless.cli import typer_app
    app = typer_app.build(_invoke, _set_globals)
    return typer.main.get_command(app).main(args=argv, prog_name="rootless", standalone_mode=False)


def _usage_error(e) -> int:
    msg = e.format_message()
    if msg.startswith("No such option: "):
        msg = "unknown flag: " + msg.removeprefix("No such option: ").split()[0]
    elif msg:
        msg = msg[0].lower() + msg[1:]
    sub = e.ctx.command_path if getattr(e, "ctx", None) else "rootless"
    print(f"rootless: error: {msg}\nSee '{sub} --help'.", file=sys.stderr)
    return 125


def main(argv: list[str] | None = None) -> None:
    if argv is None:  # the CLI itself (not a call with a command line): the warm forker may run it
        argv = sys.argv[1:]
        from rootless.cli import warm
        warm_code = warm.client(argv)
        if warm_code is not None:
            _exit(warm_code)
    from rootless.base.errors import EXIT_TOOL, RootlessError
    if argv[:1] == ["oci"]:  # the OCI runtime face: runc's command line and exit codes (rootless.cli.oci)
        from rootless.cli import oci
        _exit(oci.main(argv[1:]))
    from rootless.base import timing
    timing.mark("main")
    try:
        from rootless.cli import (
            commands,  # noqa: F401 - the table of commands: a look-up imports its module alone
            fast,
        )
        parsed = fast.parse(argv)
        if parsed is not None:
            _set_globals(parsed.root, parsed.debug)
            rv = _invoke(parsed.command, parsed.kwargs)
        else:
            rv = _run_typer(argv)
        code = rv if isinstance(rv, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0
    except RootlessError as e:
        if _is_no_space(e):  # met in a helper: said as any full disk is
            code = _no_space(e)
        else:
            print(f"rootless: error: {' '.join(e.message.splitlines())}", file=sys.stderr)
            if e.hint:
                print(f"rootless: hint: {e.hint}", file=sys.stderr)
            code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `rootless ps | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        code = 0
    except Exception as e:  # noqa: BLE001 - the boundary
        code = _no_space(e) if _is_no_space(e) else _other_error(e, EXIT_TOOL)
    _exit(code)


def _is_no_space(e: Exception) -> bool:
    from rootless.base.errors import is_no_space
    return is_no_space(e)


def _no_space(e: Exception) -> int:
    """A full disk: one line naming the store (or the file outside it), never an internal error."""
    from rootless.base.errors import EXIT_TOOL, no_space
    from rootless.base.paths import default_root
    ctx = _Globals.ctx
    store = ctx.__dict__["paths"].root if ctx is not None and "paths" in ctx.__dict__ else None
    if store is None:
        try:
            store = os.path.abspath(_Globals.root) if _Globals.root else default_root()
        except Exception:  # noqa: BLE001 - the configuration itself may be what failed
            store = "(the store)"
    err = no_space(store, e if isinstance(e, OSError) else None)
    print(f"rootless: error: {err.message}", file=sys.stderr)
    if _Globals.debug or os.environ.get("ROOTLESS_DEBUG"):
        print(f"rootless: debug: {e}", file=sys.stderr)  # where it was met
        import traceback
        traceback.print_exc()
    return EXIT_TOOL


def warm_session(req: dict, fds: list[int]) -> int:
    """A command run by a fork of the warm forker (``rootless.cli.warm``): the caller's context, then ``main``."""
    from rootless.cli import warm
    warm.take_caller(req, fds)
    main(req["args"])  # exits
    return 0


def runc_main() -> None:
    """The ``rootless-runc`` console script: ``rootless oci``'s command line under runc's name."""
    from rootless.cli import oci
    _exit(oci.main(sys.argv[1:], prog="rootless-runc"))


def _exit(code: int) -> None:
    """Flush and leave without the interpreter's teardown (it costs milliseconds per command)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    os._exit(code)


def _other_error(e: Exception, tool_code: int) -> int:
    try:
        from typer._click import exceptions as cexc
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions as cexc
    if isinstance(e, cexc.UsageError):
        return _usage_error(e)
    if isinstance(e, cexc.ClickException):
        print(f"rootless: error: {e.format_message()}", file=sys.stderr)
        return tool_code
    if type(e).__name__ == "Abort":
        return 130
    print(f"rootless: internal error: {e!r}", file=sys.stderr)
    if _Globals.debug or os.environ.get("ROOTLESS_DEBUG"):
        import traceback
        traceback.print_exc()
    else:
        print("rootless: hint: run with --debug for the traceback, and report it", file=sys.stderr)
    return tool_code


if __name__ == "__main__":
    main()
