"""The ``network`` group: create, ls, inspect, rm, prune, connect, disconnect."""

import sys

from rootless.cli.params import Arg, Opt, command

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


@command("network", "create")
def network_create(ctx: "Context", name: str = Arg(metavar="NETWORK"),
                   driver: str = Opt(("-d", "--driver"), "bridge", "Only bridge."),
                   label: list[str] = Opt(("--label",), [], "Set a label (KEY=VALUE)."),
                   internal: bool = Opt(("--internal",), False, "Members reach each other, not the outside."),
                   attachable: bool = Opt(("--attachable",), False, "Accepted (any container may join)."),
                   opt: list[str] = Opt(("-o", "--opt"), [], "Driver options (KEY=VALUE), kept and shown."),
                   ipv6: bool = Opt(("--ipv6",), False, "Enable IPv6 (slirp4netns' IPv6 in each member)."),
                   subnet: list[str] = Opt(("--subnet",), [], "Subnet in CIDR format (checked and kept)."),
                   gateway: list[str] = Opt(("--gateway",), [], "Gateway of a subnet (checked and kept)."),
                   ip_range: list[str] = Opt(("--ip-range",), [], "Range of a subnet (checked and kept).")):
    """Create a network: its members reach each other by name (each has its own slirp4netns)."""
    from rootless.engine import netipam, networks
    pools = netipam.cli_pools(subnet, gateway, ip_range)
    print(networks.create(ctx, name, driver, label, internal, attachable, opt, ipv6, pools, ipam_options={}))


@command("network", "ls")
def network_ls(ctx: "Context", quiet: bool = Opt(("-q", "--quiet"), False, "Only show network IDs."),
               filter_: list[str] = Opt(("-f", "--filter"), [], "name=, id=, label=, driver=, type=, dangling="),
               format_: str = Opt(("--format",), None, "Go template: {{.ID}}, {{.Name}}, {{.Driver}}, ..."),
               no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate the IDs.")):
    """List networks."""
    from rootless.cli import render
    from rootless.engine import networks
    rows = [{"ID": n["id"] if no_trunc else n["id"][:12], "Name": n["name"], "Driver": n["driver"], "Scope": "local",
             "IPv6": "false", "Internal": str(bool(n.get("internal"))).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in (n.get("labels") or {}).items()),
             "CreatedAt": n.get("created", "")} for n in networks.ls(ctx, filter_)]
    if quiet:
        if rows:
            print("\n".join(r["ID"] for r in rows))
        return
    if format_:
        out = render.formatted(format_, rows, NETWORK_HEADERS)
        if rows or out:
            print(out)
        return
    cols = ("ID", "Name", "Driver", "Scope")
    print(render.table([NETWORK_HEADERS[c] for c in cols], [[r[c] for c in cols] for r in rows]))


@command("network", "inspect")
def network_inspect(ctx: "Context", names_: list[str] = Arg(metavar="NETWORK..."),
                    format_: str = Opt(("-f", "--format"), None, "Go template."),
                    verbose: bool = Opt(("-v", "--verbose"), False, "Accepted (nothing more to show).")):
    """Show networks as JSON."""
    import json

    from rootless.base.errors import NetworkNotFound
    from rootless.cli import render, views
    from rootless.engine import networks
    found, missing = [], []
    for ref in names_:
        try:
            found.append(networks.inspect(ctx, ref))
        except NetworkNotFound:
            missing.append(ref)
    if format_:
        if found:
            print(render.formatted(format_, [views.template_data(f) for f in found], {}))
    else:
        print(json.dumps(found, indent=4))
    if missing:
        raise NetworkNotFound(f"no such network: {missing[0]}")


@command("network", "rm")
def network_rm(ctx: "Context", names_: list[str] = Arg(metavar="NETWORK..."),
               force: bool = Opt(("-f", "--force"), False, "No error for a network that does not exist.")):
    """Remove networks (not a predefined one, nor one a container is on)."""
    from rootless.base.errors import NetworkNotFound, RootlessError
    from rootless.engine import networks
    code = 0
    for ref in names_:
        try:
            networks.rm(ctx, ref)
            print(ref, flush=True)
        except NetworkNotFound:
            if not force:
                print(f"rootless: error: network {ref} not found", file=sys.stderr)
                code = 1
        except RootlessError as e:  # the others are still removed, as in Docker
            print(f"rootless: error: {e.message}", file=sys.stderr)
            if e.hint:
                print(f"rootless: hint: {e.hint}", file=sys.stderr)
            code = 1
    return code


@command("network", "prune")
def network_prune(ctx: "Context", force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove the user-defined networks no container is on."""
    from rootless.engine import networks
    removed = networks.prune(ctx)
    if removed:
        print("Deleted Networks:\n" + "\n".join(removed))


@command("network", "connect")
def network_connect(ctx: "Context", network: str = Arg(metavar="NETWORK"), container: str = Arg(metavar="CONTAINER"),
                    alias: list[str] = Opt(("--alias",), [], "Another name of the container on the network."),
                    ip: str = Opt(("--ip",), "", "IPv4 address in the network's subnets (checked and kept)."),
                    ip6: str = Opt(("--ip6",), "", "IPv6 address in the network's subnets (checked and kept)."),
                    link: list[str] = Opt(("--link",), [], "Link to another container (NAME:ALIAS), kept."),
                    link_local_ip: list[str] = Opt(("--link-local-ip",), [], "A link-local address, kept."),
                    driver_opt: list[str] = Opt(("--driver-opt",), [], "Driver options (KEY=VALUE), kept.")):
    """Connect a container to a network (its members reach it by name at once, through their DNS server)."""
    from rootless.engine import networks
    ipam = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6), ("LinkLocalIPs", link_local_ip)) if v}
    endpoint = {"IPAMConfig": ipam, "Links": link,
                "DriverOpts": dict(o.partition("=")[::2] for o in driver_opt)}
    rec = networks.connect(ctx, network, container, alias, endpoint)
    if rec["state"].get("status") == "running" and len(rec["spec"].get("networks") or ()) == 1:
        ctx.warn(f"{rec['name']} is running: its members reach it by name now, and it reaches them from its "
                 "own next start (it was started on no user-defined network, so without their DNS server)")


@command("network", "disconnect")
def network_disconnect(ctx: "Context", network: str = Arg(metavar="NETWORK"), container: str = Arg(metavar="CONTAINER"),
                       force: bool = Opt(("-f", "--force"), False, "No error if the container is gone.")):
    """Disconnect a container from a network (its names there stop resolving at once)."""
    from rootless.engine import networks
    networks.disconnect(ctx, network, container, force)
