"""System commands: info, version, events, unshare and the ``system`` group (df, check, service,
prune, reset, apparmor-profile)."""

import sys

from rootless.cli.params import Arg, Opt, command

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context


@command("system", "df")
def system_df(ctx: "Context", verbose: bool = Opt(("-v", "--verbose"), False, "Each image, container and volume."),
              format_: str = Opt(("--format",), None, "Go template over .Type .TotalCount .Active .Size "
                                                      ".Reclaimable, or json.")):
    """Show disk usage of images and containers."""
    from rootless.cli import render
    from rootless.engine import system
    if verbose:
        if format_:
            from rootless.base.errors import UsageError
            raise UsageError("--format and --verbose together are not supported", "give one of them")
        _df_verbose(ctx)
        return
    rows = system.system_df(ctx)

    def pct(r) -> str:
        return f"{render.human_size(r.reclaimable)} ({100 * r.reclaimable // r.size if r.size else 0}%)"
    data = [{"Type": r.type, "TotalCount": str(r.total), "Active": str(r.active), "Size": render.human_size(r.size),
             "Reclaimable": pct(r)} for r in rows]
    if format_:
        out = render.formatted(format_, data, DF_HEADERS)
        if out:
            print(out)
        return
    print(render.table([DF_HEADERS[k] for k in DF_HEADERS], [list(d.values()) for d in data]))


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}


def _df_verbose(ctx: "Context") -> None:
    """Docker's ``system df -v``: a table per kind, each thing on a line."""
    from rootless.cli import render, views
    from rootless.engine import system
    images, containers, volumes = system.df_verbose(ctx)
    size = render.human_size
    print("Images space usage:\n")
    print(render.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE",
                        "CONTAINERS"],
                       [[i.repository, i.tag, i.id[7:19], render.ago(i.created), size(i.size), size(i.shared),
                         size(i.size - i.shared), str(i.containers)] for i in images]))
    print("\nContainers space usage:\n")
    rows = []
    for rec, rw in containers:
        row = views.ps_row(rec)
        local = sum(1 for m in rec["spec"].get("mounts") or () if m.get("name"))
        rows.append([row["ID"], row["Image"], row["Command"], str(local), size(rw), row["RunningFor"], row["Status"],
                     row["Names"]])
    print(render.table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
                       rows))
    print("\nLocal Volumes space usage:\n")
    print(render.table(["VOLUME NAME", "LINKS", "SIZE"], [[v.name, str(v.links), size(v.size)] for v in volumes]))
    cache = [r for r in system.system_df(ctx) if r.type == "Build Cache"]
    print(f"\nBuild cache usage: {size(cache[0].size if cache else 0)}")


@command("events")
def events(ctx: "Context",
           since: str = Opt(("--since",), None, "Show the events since a timestamp or a relative time (10m)."),
           until: str = Opt(("--until",), None, "Stream the events until a timestamp or a relative time."),
           filter_: list[str] = Opt(("-f", "--filter"), [],
                                    "type=, event=, container=, image=, label=, volume=, network= (repeatable)."),
           format_: str = Opt(("--format",), None, "json, or a Go template.")):
    """Show what happens to containers, images and volumes (follows until --until or Ctrl-C)."""
    from rootless.cli import eventview
    from rootless.engine import events as event_ops
    out = eventview.printer(format_)
    try:
        for ev in event_ops.stream(ctx, since, until, filter_):
            sys.stdout.write(out(ev))
            sys.stdout.flush()
    except KeyboardInterrupt:  # the way to end following: not an error
        return 0


@command("info")
def info(ctx: "Context", format: str = Opt(("-f", "--format"), None, "json")):
    """Diagnose the host: what works, what degrades, and how to fix it."""
    from rootless.base.errors import UsageError
    from rootless.cli import infoview
    from rootless.engine import system
    if format not in (None, "json"):
        raise UsageError(f"unsupported format {format!r}", "use --format json")
    checks = system.info(ctx)
    if format == "json":
        import json
        print(json.dumps(infoview.to_json(checks), indent=2))
    else:
        print(infoview.render_text(checks))


@command("system", "check")
def system_check(ctx: "Context"):
    """Check the store: images, container records, runtime and leftover directories."""
    from rootless.engine import system
    problems = system.check(ctx)
    for line in problems:
        print(line)
    if problems:
        from rootless.base.errors import RootlessError
        raise RootlessError(f"{len(problems)} problem(s) in the store {ctx.paths.root}", exit_code=1)
    print(f"the store {ctx.paths.root} is consistent")


@command("unshare", interspersed=False)
def unshare(ctx: "Context", command: list[str] = Arg(None, metavar="[COMMAND] [ARG...]")):
    """Run a command (default: your shell) as root of the user namespace, e.g. to remove files."""
    from rootless.engine import system
    return system.unshare(ctx, command or [])


@command("system", "service")
def system_service(ctx: "Context", uri: str = Arg(None, metavar="[URI]"),
                   time_: int = Opt(("-t", "--time"), 5, "Seconds without a connection before it exits (0: never).")):
    """Serve the Docker Engine API on a Unix socket (for the docker CLI, Compose, Testcontainers)."""
    from rootless.api import server
    if time_ < 0:
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid --time {time_}", "give seconds, or 0 to run until interrupted")
    server.serve(ctx, uri or None, float(time_))


@command("system", "apparmor-profile")
def system_apparmor_profile(ctx: "Context", entry: str = Arg(None, metavar="[PATH]"),
                            install: bool = Opt(("--install",), False,
                                                "Write it to /etc/apparmor.d and load it (as root)."),
                            uninstall: bool = Opt(("--uninstall",), False, "Unload and remove it (as root).")):
    """Print the AppArmor profile that lets this rootless create user namespaces (Ubuntu 23.10+)."""
    from rootless.base import apparmor
    from rootless.base.errors import UsageError
    if install and uninstall:
        raise UsageError("--install and --uninstall cannot be used together")
    entry = entry or _entry_point()
    if uninstall:
        gone = apparmor.uninstall_profile(entry)
        print(f"removed {gone}" if gone else f"no AppArmor profile for {entry}", file=sys.stderr)
    elif install:
        path = apparmor.install_profile(entry)
        print(f"loaded {path}: {entry} may now create user namespaces (check with: rootless info)", file=sys.stderr)
    else:
        print(apparmor.profile(entry)[1], end="")


def _entry_point() -> str:
    """The console script that runs this command (sudo resets PATH: its own path is the one to
    trust), else the ``rootless`` on PATH."""
    import os
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "rootless" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    from rootless.base import proc
    found = proc.which("rootless")
    if not found:
        from rootless.base.errors import UsageError
        raise UsageError("cannot tell where the rootless entry point is", "give its path: ... apparmor-profile PATH")
    return found


@command("system", "prune")
def system_prune(ctx: "Context",
                 all_: bool = Opt(("-a", "--all"), False, "Remove every unused image, not only dangling ones."),
                 volumes_: bool = Opt(("--volumes",), False, "Remove the anonymous volumes no container uses too."),
                 force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove stopped containers, unused networks, dangling images, the build cache and what killed
    commands left in the store."""
    from rootless.cli import render
    from rootless.engine import system
    if not force:
        print(system.prune_warning(all_, volumes_))
        print("Are you sure you want to continue? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    report = system.system_prune(ctx, all_, volumes_)
    for title, lines in report.sections:
        if lines:
            print(f"{title}:")
            print("\n".join(lines))
            print()
    print(f"Total reclaimed space: {render.human_size(report.freed)}")


@command("system", "reset")
def system_reset(ctx: "Context", force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove all images, containers and layers of the store."""
    from rootless.base.errors import UsageError
    from rootless.engine import system
    if not force:
        if not sys.stdin.isatty():
            raise UsageError("system reset needs confirmation", "use --force in scripts")
        answer = input(f"This removes everything under {ctx.paths.root}. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    system.system_reset(ctx)


@command("version")
def version(ctx: "Context"):
    """Show the version."""
    from rootless import __version__
    print(f"rootless version {__version__}")
