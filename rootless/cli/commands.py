"""The commands: parse results in, one engine call, rendered output out.

No typer here (see :mod:`rootless.cli.params`); heavy modules are imported
inside each command so that start-up stays lean for every command.
"""

import sys

from rootless.cli.params import Arg, Opt, command, group

group("system", "Manage the store and the host.")


# ---- images ------------------------------------------------------------------------------
@command("load")
def load(ctx, input: str = Opt(("-i", "--input"), ..., "docker-archive or OCI layout (tar or directory)")):
    """Load an image from a docker-archive or an OCI layout."""
    from rootless import engine
    for line in engine.load(ctx, input):
        print(line)


@command("import")
def import_(ctx, tarball: str = Arg(help="rootfs tarball (plain or gzip)"),
            reference: str = Arg(None, metavar="[REPOSITORY[:TAG]]")):
    """Create an image from a rootfs tarball (one layer)."""
    from rootless import engine
    print(engine.import_rootfs(ctx, tarball, reference))


@command("images")
def images(ctx, quiet: bool = Opt(("-q", "--quiet"), False, "Only show image IDs.")):
    """List images."""
    from rootless import engine
    from rootless.cli import render
    rows = engine.images(ctx)
    if quiet:
        ids = list(dict.fromkeys(r.id[7:19] for r in rows))
        if ids:
            print("\n".join(ids))
        return
    print(render.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                       [[r.repository, r.tag, r.id[7:19], render.ago(r.created), render.human_size(r.size)]
                        for r in rows]))


@command("rmi")
def rmi(ctx, images: list[str] = Arg(metavar="IMAGE..."),
        force: bool = Opt(("-f", "--force"), False, "Remove even if containers use it.")):
    """Remove images."""
    from rootless import engine
    for line in engine.rmi(ctx, images, force):
        print(line)


# ---- containers ----------------------------------------------------------------------------
@command("run", interspersed=False)
def run(ctx,
        image: str = Arg(metavar="IMAGE"),
        command: list[str] = Arg(None, metavar="[COMMAND] [ARG...]"),
        rm: bool = Opt(("--rm",), False, "Remove the container when it exits."),
        interactive: bool = Opt(("-i", "--interactive"), False, "Keep stdin open."),
        tty: bool = Opt(("-t", "--tty"), False, "Allocate a pseudo-terminal."),
        env: list[str] = Opt(("-e", "--env"), [], "Set environment variables (K=V, or K to take the host's)."),
        env_file: list[str] = Opt(("--env-file",), [], "Read environment variables from a file."),
        workdir: str = Opt(("-w", "--workdir"), None, "Working directory inside the container."),
        user: str = Opt(("-u", "--user"), None, "name|uid[:group|gid]"),
        entrypoint: str = Opt(("--entrypoint",), None, "Override the image's entrypoint."),
        hostname: str = Opt(("-h", "--hostname"), None, "Container host name."),
        name: str = Opt(("--name",), None, "Name the container."),
        network: str = Opt(("--network", "--net"), "none", "none | host"),
        init: bool = Opt(("--init",), False, "Run an init that forwards signals and reaps zombies.")):
    """Run a command in a new container."""
    from rootless import engine
    from rootless.spec import RunOptions
    opts = RunOptions(image=image, command=tuple(command or ()), entrypoint=entrypoint, env=tuple(env),
                      env_files=tuple(env_file), workdir=workdir, user=user, hostname=hostname, name=name,
                      network=network, init=init, rm=rm, interactive=interactive, tty=tty)
    return engine.run(ctx, opts)


# ---- system ----------------------------------------------------------------------------------
@command("info")
def info(ctx, format: str = Opt(("-f", "--format"), None, "json")):
    """Diagnose the host: what works, what degrades, and how to fix it."""
    from rootless import engine, preflight
    from rootless.errors import UsageError
    if format not in (None, "json"):
        raise UsageError(f"unsupported format {format!r}", "use --format json")
    checks = engine.info(ctx)
    if format == "json":
        import json
        print(json.dumps(preflight.to_json(checks), indent=2))
    else:
        print(preflight.render_text(checks))


@command("unshare", interspersed=False)
def unshare(ctx, command: list[str] = Arg(None, metavar="[COMMAND] [ARG...]")):
    """Run a command (default: your shell) as root of the user namespace, e.g. to remove files."""
    from rootless import engine
    return engine.unshare(ctx, command or [])


@command("system", "reset")
def system_reset(ctx, force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove all images, containers and layers of the store."""
    from rootless import engine
    from rootless.errors import UsageError
    if not force:
        if not sys.stdin.isatty():
            raise UsageError("system reset needs confirmation", "use --force in scripts")
        answer = input(f"This removes everything under {ctx.paths.root}. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    engine.system_reset(ctx)


@command("version")
def version(ctx):
    """Show the version."""
    from rootless import __version__
    print(f"rootless version {__version__}")
