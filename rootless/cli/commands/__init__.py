"""The commands, one module per noun as in ``engine/`` and ``api/``: containers, images, build,
volumes, networks, system. Each is a plain function whose parameter defaults are ``Opt``/``Arg``
declarations (:mod:`rootless.cli.params`): parse results in, one engine call, rendered output
out. This package's own module is the table of which module holds each command (pip's
``commands_dict``): looking a command up in ``params.COMMANDS`` imports its module alone, so that
start-up pays for one noun; iterating ``COMMANDS`` (typer, help) imports them all. It imports
nothing but ``params``; heavy modules are imported inside each command.
"""

from rootless.cli import params

params.group("system", "Manage the store and the host.")
params.group("image", "Manage images.")
params.group("container", "Manage containers.")
params.group("volume", "Manage volumes.")
params.group("network", "Manage networks.")
params.group("builder", "Manage the build cache.")

# Every command's path -> the module of this package that registers it (the order is the help's).
TABLE: dict[tuple[str, ...], str] = {
    ("load",): "images", ("import",): "images", ("build",): "build", ("builder", "prune"): "build",
    ("images",): "images", ("history",): "images", ("save",): "images", ("image", "prune"): "images",
    ("system", "df"): "system", ("rmi",): "images", ("pull",): "images", ("push",): "images",
    ("tag",): "images", ("bundle",): "images", ("login",): "images", ("logout",): "images", ("run",): "containers",
    ("create",): "containers", ("start",): "containers", ("stop",): "containers", ("restart",): "containers",
    ("kill",): "containers", ("rm",): "containers", ("wait",): "containers", ("exec",): "containers",
    ("top",): "containers", ("stats",): "containers", ("update",): "containers", ("port",): "containers",
    ("commit",): "containers", ("export",): "containers", ("cp",): "containers", ("attach",): "containers",
    ("mount",): "containers", ("unmount",): "containers", ("rename",): "containers",
    ("pause",): "containers", ("unpause",): "containers", ("diff",): "containers",
    ("container", "prune"): "containers", ("ps",): "containers", ("inspect",): "containers",
    ("logs",): "containers", ("events",): "system", ("volume", "create"): "volumes",
    ("volume", "ls"): "volumes", ("volume", "inspect"): "volumes", ("volume", "rm"): "volumes",
    ("volume", "prune"): "volumes", ("network", "create"): "networks", ("network", "ls"): "networks",
    ("network", "inspect"): "networks", ("network", "rm"): "networks", ("network", "prune"): "networks",
    ("network", "connect"): "networks", ("network", "disconnect"): "networks", ("info",): "system",
    ("system", "check"): "system", ("unshare",): "system", ("system", "service"): "system",
    ("system", "prune"): "system", ("system", "reset"): "system", ("version",): "system",
    ("system", "apparmor-profile"): "system",
    ("image", "ls"): "images", ("image", "rm"): "images", ("image", "history"): "images",
    ("image", "pull"): "images", ("image", "push"): "images", ("image", "tag"): "images",
    ("image", "save"): "images", ("image", "load"): "images", ("image", "inspect"): "images",
    **{("container", verb): "containers" for verb in (
        "ls", "list", "ps", "run", "create", "start", "stop", "restart", "kill", "rm", "wait", "exec", "top", "stats",
        "update", "port", "commit", "diff", "export", "cp", "attach", "rename", "pause", "unpause", "logs", "mount",
        "unmount", "inspect")},
}

params.COMMANDS.where.update({path: f"{__name__}.{module}" for path, module in TABLE.items()})
