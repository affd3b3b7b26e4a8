"""``rootless``: Docker's verbs, without a daemon and without root.

Each command parses its flags, calls one engine function and renders the
result. Heavy modules are imported inside the commands, not here, so that
start-up stays fast for every command.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Run containers like Docker does, without a daemon and without root.",
    context_settings={"help_option_names": ["--help"]},
)
system_app = typer.Typer(help="Manage the store and the host.", no_args_is_help=True)
app.add_typer(system_app, name="system")

_RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


class _State:
    root: str | None = None
    debug: bool = False


def _ctx():
    from rootless.engine import Context
    return Context(root=_State.root, debug=_State.debug)


@app.callback()
def _global(
    root: str = typer.Option(None, "--root", envvar="ROOTLESS_ROOT", help="Storage directory."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
) -> None:
    _State.root = root
    _State.debug = debug


# ---- images --------------------------------------------------------------------------
@app.command("load")
def load_cmd(input: str = typer.Option(..., "-i", "--input", help="docker-archive or OCI layout (tar or directory)")):
    """Load an image from a docker-archive or an OCI layout."""
    from rootless import engine
    for line in engine.load(_ctx(), input):
        print(line)


@app.command("import")
def import_cmd(tarball: str = typer.Argument(..., help="rootfs tarball (plain, gzip)"),
               reference: str = typer.Argument(None, metavar="[REPOSITORY[:TAG]]")):
    """Create an image from a rootfs tarball (one layer)."""
    from rootless import engine
    print(engine.import_rootfs(_ctx(), tarball, reference))


@app.command("images")
def images_cmd(quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show image IDs.")):
    """List images."""
    from rootless import engine
    rows = engine.images(_ctx())
    if quiet:
        seen = []
        for r in rows:
            short = r.id[7:19]
            if short not in seen:
                seen.append(short)
        if seen:
            print("\n".join(seen))
        return
    from rootless.cli import render
    print(render.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                       [[r.repository, r.tag, r.id[7:19], render.ago(r.created), render.human_size(r.size)]
                        for r in rows]))


@app.command("rmi")
def rmi_cmd(images: list[str] = typer.Argument(..., metavar="IMAGE..."),
            force: bool = typer.Option(False, "-f", "--force", help="Remove even if containers use it.")):
    """Remove images."""
    from rootless import engine
    for line in engine.rmi(_ctx(), images, force):
        print(line)


# ---- containers --------------------------------------------------------------------------
@app.command("run", context_settings=_RUN_SETTINGS)
def run_cmd(
    image: str = typer.Argument(..., metavar="IMAGE"),
    command: list[str] = typer.Argument(None, metavar="[COMMAND] [ARG...]"),
    rm: bool = typer.Option(False, "--rm", help="Remove the container when it exits."),
    interactive: bool = typer.Option(False, "-i", "--interactive", help="Keep stdin open."),
    tty: bool = typer.Option(False, "-t", "--tty", help="Allocate a pseudo-terminal."),
    env: list[str] = typer.Option([], "-e", "--env", help="Set environment variables (K=V or K)."),
    env_file: list[str] = typer.Option([], "--env-file", help="Read environment variables from a file."),
    workdir: str = typer.Option(None, "-w", "--workdir", help="Working directory inside the container."),
    user: str = typer.Option(None, "-u", "--user", help="name|uid[:group|gid]"),
    entrypoint: str = typer.Option(None, "--entrypoint", help="Override the image's entrypoint."),
    hostname: str = typer.Option(None, "-h", "--hostname", help="Container host name."),
    name: str = typer.Option(None, "--name", help="Name the container."),
    network: str = typer.Option("none", "--network", "--net", help="none | host"),
    init: bool = typer.Option(False, "--init", help="Run an init that forwards signals and reaps zombies."),
):
    """Run a command in a new container."""
    from rootless import engine
    from rootless.spec import RunOptions
    opts = RunOptions(image=image, command=tuple(command or ()), entrypoint=entrypoint, env=tuple(env),
                      env_files=tuple(env_file), workdir=workdir, user=user, hostname=hostname, name=name,
                      network=network, init=init, rm=rm, interactive=interactive, tty=tty)
    raise SystemExit(engine.run(_ctx(), opts))


# ---- system --------------------------------------------------------------------------
@app.command("info")
def info_cmd(format: str = typer.Option(None, "--format", "-f", help="json")):
    """Diagnose the host: what works, what degrades, and how to fix it."""
    from rootless import engine, preflight
    checks = engine.info(_ctx())
    if format == "json":
        import json
        print(json.dumps(preflight.to_json(checks), indent=2))
    elif format:
        from rootless.errors import UsageError
        raise UsageError(f"unsupported format {format!r}", "use --format json")
    else:
        print(preflight.render_text(checks))


@app.command("unshare", context_settings=_RUN_SETTINGS)
def unshare_cmd(command: list[str] = typer.Argument(None, metavar="[COMMAND] [ARG...]")):
    """Run a command (default: your shell) as root of the user namespace, e.g. to remove files."""
    from rootless import engine
    raise SystemExit(engine.unshare(_ctx(), command or []))


@system_app.command("reset")
def reset_cmd(force: bool = typer.Option(False, "-f", "--force", help="Do not ask for confirmation.")):
    """Remove all images, containers and layers of the store."""
    from rootless import engine
    ctx = _ctx()
    if not force:
        if not sys.stdin.isatty():
            from rootless.errors import UsageError
            raise UsageError("system reset needs confirmation", "use --force in scripts")
        answer = input(f"This removes everything under {ctx.paths.root}. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return
    engine.system_reset(ctx)


@app.command("version")
def version_cmd():
    """Show the version."""
    from rootless import __version__
    print(f"rootless version {__version__}")


# ---- the error boundary ----------------------------------------------------------------
def _click_errors():
    try:
        from typer._click import exceptions as e
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions as e
    return e


def _usage_message(exc) -> str:
    msg = exc.format_message()
    if msg.startswith("No such option: "):
        opt = msg.removeprefix("No such option: ").split()[0]
        return f"unknown flag: {opt}"
    return msg[0].lower() + msg[1:] if msg else "invalid usage"


def main(argv: list[str] | None = None) -> None:
    from rootless.errors import EXIT_TOOL, RootlessError
    argv = sys.argv[1:] if argv is None else argv
    cexc = None
    try:
        cmd = typer.main.get_command(app)
        rv = cmd.main(args=argv, prog_name="rootless", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0
    except RootlessError as e:
        print(f"rootless: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"rootless: hint: {e.hint}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as e:  # noqa: BLE001
        cexc = _click_errors()
        if isinstance(e, cexc.UsageError):
            sub = e.ctx.command_path if e.ctx else "rootless"
            print(f"rootless: error: {_usage_message(e)}\nSee '{sub} --help'.", file=sys.stderr)
            code = EXIT_TOOL
        elif isinstance(e, cexc.ClickException):
            print(f"rootless: error: {e.format_message()}", file=sys.stderr)
            code = EXIT_TOOL
        elif type(e).__name__ in ("Abort",):
            code = 130
        else:
            print(f"rootless: internal error: {e!r}", file=sys.stderr)
            if _State.debug or os.environ.get("ROOTLESS_DEBUG"):
                import traceback
                traceback.print_exc()
            else:
                print("rootless: hint: run with --debug for the traceback, and report it", file=sys.stderr)
            code = EXIT_TOOL
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
