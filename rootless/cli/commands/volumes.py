"""The ``volume`` group: create, ls, inspect, rm, prune."""

from rootless.cli.params import Arg, Opt, command

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context


@command("volume", "create")
def volume_create(ctx: "Context", name: str = Arg(None, metavar="[VOLUME]"),
                  label: list[str] = Opt(("--label",), [], "Set a label (KEY=VALUE)."),
                  driver: str = Opt(("-d", "--driver"), "local", "Only local."),
                  opt: list[str] = Opt(("-o", "--opt"), [],
                                       "A local driver option, KEY=VALUE: type=none o=bind device=/dir "
                                       "(a host directory) or type=tmpfs device=tmpfs o=size=64m.")):
    """Create a volume."""
    from rootless.base.errors import UsageError
    from rootless.engine import volumes
    if driver != "local":
        raise UsageError(f"volume driver {driver!r} is not supported", "volumes are local directories")
    from rootless.runtime.spec import parse_labels
    print(volumes.create(ctx, name, label, parse_labels(opt, "--opt", need_value=True)))


@command("volume", "ls")
def volume_ls(ctx: "Context", quiet: bool = Opt(("-q", "--quiet"), False, "Only show volume names."),
              filter_: list[str] = Opt(("-f", "--filter"), [], "dangling=true|false, name=NAME, label=KEY[=VALUE]"),
              format: str = Opt(("--format",), None, "Go template: {{.Name}}, {{.Driver}}, {{.Mountpoint}}")):
    """List volumes."""
    from rootless.cli import render
    from rootless.engine import volumes
    recs = volumes.ls(ctx, filter_)
    if quiet:
        if recs:
            print("\n".join(r["name"] for r in recs))
        return
    rows = [{"Driver": "local", "Name": r["name"], "Mountpoint": ctx.paths.volume_data(r["name"]), "Scope": "local",
             "Labels": ",".join(f"{k}={v}" for k, v in (r.get("labels") or {}).items()),
             "CreatedAt": r.get("created", "")} for r in recs]
    if format:
        print(render.formatted(format, rows, {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
                                              "Scope": "SCOPE", "Labels": "LABELS", "CreatedAt": "CREATED"}))
        return
    print(render.table(["DRIVER", "VOLUME NAME"], [["local", r["Name"]] for r in rows]))


@command("volume", "inspect")
def volume_inspect(ctx: "Context", names_: list[str] = Arg(metavar="VOLUME..."),
                   format: str = Opt(("-f", "--format"), None, "Go template")):
    """Show volumes as JSON."""
    import json

    from rootless.cli import render
    from rootless.engine import volumes
    found = [volumes.inspect(ctx, n) for n in names_]
    if format:
        print(render.formatted(format, found, {}))
    else:
        print(json.dumps(found, indent=4))


@command("volume", "rm")
def volume_rm(ctx: "Context", names_: list[str] = Arg(metavar="VOLUME..."),
              force: bool = Opt(("-f", "--force"), False, "Remove even if containers use it.")):
    """Remove volumes (not while a container uses one, unless -f)."""
    from rootless.engine import volumes
    for n in names_:
        volumes.rm(ctx, n, force)
        print(n)


@command("volume", "prune")
def volume_prune(ctx: "Context", all_: bool = Opt(("-a", "--all"), False, "Every unused volume, named ones too."),
                 force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove unused anonymous volumes (-a: every unused volume)."""
    from rootless.engine import volumes
    failed: list[str] = []
    removed = volumes.prune(ctx, all_, failed)
    if removed:
        print("Deleted Volumes:\n" + "\n".join(removed))
    if failed:
        from rootless.base.errors import RootlessError
        raise RootlessError(f"{len(failed)} volume(s) could not be removed (said above)", exit_code=1)
