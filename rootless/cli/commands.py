"""The commands: parse results in, one engine call, rendered output out.

No typer here (see :mod:`rootless.cli.params`); heavy modules are imported
inside each command so that start-up stays lean for every command.
"""

import sys

from rootless.cli.params import Arg, Opt, command, group

group("system", "Manage the store and the host.")
group("image", "Manage images.")
group("container", "Manage containers.")
group("volume", "Manage volumes.")
group("network", "Manage networks.")
group("builder", "Manage the build cache.")


# ---- images ------------------------------------------------------------------------------
@command("load")
def load(ctx, input: str = Opt(("-i", "--input"), ..., "docker-archive or OCI layout (tar or directory)")):
    """Load an image from a docker-archive or an OCI layout."""
    from rootless.engine import images as image_ops
    for line in image_ops.load(ctx, input):
        print(line)


@command("import")
def import_(ctx, tarball: str = Arg(help="rootfs tarball (plain or gzip)"),
            reference: str = Arg(None, metavar="[REPOSITORY[:TAG]]")):
    """Create an image from a rootfs tarball (one layer)."""
    from rootless.engine import images as image_ops
    print(image_ops.import_rootfs(ctx, tarball, reference))


@command("build")
def build(ctx, context: str = Arg(metavar="CONTEXT", help="a directory, or - for a Dockerfile or a tar on stdin"),
          tag: list[str] = Opt(("-t", "--tag"), [], "Name and optionally a tag (NAME[:TAG]); repeatable."),
          file: str = Opt(("-f", "--file"), None, "The Dockerfile (default: CONTEXT/Dockerfile; - for stdin)."),
          build_arg: list[str] = Opt(("--build-arg",), [], "A build argument, KEY=VALUE (KEY alone: from the environment)."),
          target: str = Opt(("--target",), None, "Build up to this stage."),
          no_cache: bool = Opt(("--no-cache",), False, "Do not use the build cache."),
          pull: bool = Opt(("--pull",), False, "Always pull the base images."),
          label: list[str] = Opt(("--label",), [], "Set a label on the image (KEY=VALUE)."),
          quiet: bool = Opt(("-q", "--quiet"), False, "Print only the image id."),
          network: str = Opt(("--network",), "slirp4netns", "Network of the RUN steps: slirp4netns, host or none."),
          platform: str = Opt(("--platform",), None, "Target platform (os/arch); only the host's is built.")):
    """Build an image from a Dockerfile."""
    from rootless.engine import build as build_ops
    from rootless.runtime.spec import parse_labels

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
    with build_ops.cancel_on_signals(), build_ops.context_from(context, file, sys.stdin.buffer) as (ctx_dir, dockerfile, text):
        req = build_ops.BuildRequest(
            context=ctx_dir, dockerfile=dockerfile, dockerfile_text=text, tags=tuple(tag),
            build_args=build_ops.parse_build_args(build_arg), target=target, no_cache=no_cache, pull=pull,
            labels=parse_labels(label), quiet=quiet, network=network, platform=platform)
        image_id = build_ops.build(ctx, req, None if quiet else say)
    print(image_id if quiet else image_id)


@command("builder", "prune")
def builder_prune(ctx, force: bool = Opt(("-f", "--force"), False, "Do not ask (there is no prompt)."),
                  all_: bool = Opt(("-a", "--all"), False, "Accepted: the whole cache is removed.")):
    """Remove the build cache (and the layers only it kept)."""
    from rootless.cli import render
    from rootless.engine import build as build_ops
    from rootless.engine import system
    entries, freed = build_ops.builder_prune(ctx)
    swept, swept_bytes = system.sweep(ctx, builds_only=True)  # what killed builds left
    print(f"Deleted build cache objects: {entries}")
    for line in swept:
        print(f"Deleted: {line}")
    print(f"Total reclaimed space: {render.human_size(freed + swept_bytes)}")


IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}


@command("images")
def images(ctx, quiet: bool = Opt(("-q", "--quiet"), False, "Only show image IDs."),
           all_: bool = Opt(("-a", "--all"), False, "Show all images (there are no intermediate ones)."),
           digests: bool = Opt(("--digests",), False, "Show digests."),
           filter_: list[str] = Opt(("-f", "--filter"), [], "dangling=, reference=, before=, since=, label="),
           format_: str = Opt(("--format",), None, "Go template, or table TEMPLATE."),
           no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate the ids.")):
    """List images."""
    from rootless.cli import render
    from rootless.engine import images as image_ops
    rows = image_ops.images(ctx, filter_)

    def short(i: str) -> str:
        return i if no_trunc else i[7:19]
    if quiet:
        ids = list(dict.fromkeys(short(r.id) for r in rows))
        if ids:
            print("\n".join(ids))
        return
    data = [{"Repository": r.repository, "Tag": r.tag, "Digest": r.digest, "ID": short(r.id),
             "CreatedSince": render.ago(r.created), "CreatedAt": r.created, "Size": render.human_size(r.size)}
            for r in rows]
    if format_:
        out = render.formatted(format_, data, IMAGE_HEADERS)
        if data or out:
            print(out)
        return
    cols = ["Repository", "Tag"] + (["Digest"] if digests else []) + ["ID", "CreatedSince", "Size"]
    print(render.table([IMAGE_HEADERS[c] for c in cols], [[d[c] for c in cols] for d in data]))


@command("history")
def history(ctx, image: str = Arg(metavar="IMAGE"),
            no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate."),
            quiet: bool = Opt(("-q", "--quiet"), False, "Only show image IDs."),
            human: bool = Opt(("-H", "--human"), True, "Human-readable sizes and dates.")):
    """Show the history of an image."""
    from rootless.cli import render
    from rootless.engine import images as image_ops
    rows = image_ops.history(ctx, image)
    ident = [r.id if no_trunc or r.id == "<missing>" else r.id[7:19] for r in rows]
    if quiet:
        print("\n".join(ident))
        return
    table = []
    for i, r in zip(ident, rows, strict=True):
        by = r.created_by if no_trunc or len(r.created_by) <= 45 else r.created_by[:44] + "…"
        table.append([i, render.ago(r.created) if human else r.created, by,
                      render.human_size(r.size) if human else str(r.size), r.comment])
    print(render.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table))


@command("save")
def save(ctx, images: list[str] = Arg(metavar="IMAGE..."),
         output: str = Opt(("-o", "--output"), None, "Write to FILE (default: stdout, not a terminal)."),
         format_: str = Opt(("--format",), "docker-archive", "docker-archive or oci-archive.")):
    """Save images to a tar archive (load reads it back)."""
    from rootless.engine import images as image_ops
    image_ops.save(ctx, images, output, format_)


@command("image", "prune")
def image_prune(ctx, all_: bool = Opt(("-a", "--all"), False, "Remove every image no container uses."),
                force: bool = Opt(("-f", "--force"), False, "Do not ask (there is no prompt).")):
    """Remove unused images (dangling ones; with -a every unused one)."""
    from rootless.cli import render
    from rootless.engine import images as image_ops
    from rootless.engine import system
    lines, reclaimed = image_ops.image_prune(ctx, all_)
    swept, swept_bytes = system.sweep(ctx, build_steps=False)  # what killed pulls, loads and commits left
    if lines:
        print("Deleted Images:")
        print("\n".join(lines))
        print()
    if swept:
        print("Deleted leftovers of killed commands:")
        print("\n".join(swept))
        print()
    print(f"Total reclaimed space: {render.human_size(reclaimed + swept_bytes)}")


@command("system", "df")
def system_df(ctx):
    """Show disk usage of images and containers."""
    from rootless.cli import render
    from rootless.engine import system
    rows = system.system_df(ctx)

    def pct(r) -> str:
        return f"{render.human_size(r.reclaimable)} ({100 * r.reclaimable // r.size if r.size else 0}%)"
    print(render.table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                       [[r.type, str(r.total), str(r.active), render.human_size(r.size), pct(r)] for r in rows]))


@command("rmi")
def rmi(ctx, images: list[str] = Arg(metavar="IMAGE..."),
        force: bool = Opt(("-f", "--force"), False, "Remove even if containers use it.")):
    """Remove images."""
    from rootless.engine import images as image_ops
    for line in image_ops.rmi(ctx, images, force):
        print(line)


@command("pull")
def pull(ctx, reference: str = Arg(metavar="NAME[:TAG|@DIGEST]"),
         platform: str = Opt(("--platform",), None, "os/arch[/variant] from a multi-platform image."),
         quiet: bool = Opt(("-q", "--quiet"), False, "No progress output."),
         all_tags: bool = Opt(("-a", "--all-tags"), False, "Every tag of the repository."),
         tls_verify: str = Opt(("--tls-verify",), "true", "false: plain HTTP or unverified TLS."),
         creds: str = Opt(("--creds",), None, "USER:PASSWORD for the registry.")):
    """Pull an image from a registry."""
    from rootless.engine import images as image_ops
    opts = _registry_options(tls_verify, creds, platform, quiet)
    if all_tags:
        print("\n".join(image_ops.pull_all_tags(ctx, reference, opts)))
    else:
        print(image_ops.pull(ctx, reference, opts))


def _registry_options(tls_verify: str, creds: str | None = None, platform: str | None = None, quiet: bool = False):
    from rootless.base.errors import UsageError
    from rootless.engine import images as image_ops
    if tls_verify not in ("true", "false"):
        raise UsageError(f"--tls-verify takes true or false, not {tls_verify!r}")
    return image_ops.RegistryOptions(tls_verify=tls_verify == "true", creds=creds, platform=platform, quiet=quiet)


@command("push")
def push(ctx, image: str = Arg(metavar="IMAGE"), destination: str = Arg(None, metavar="[DESTINATION]"),
         quiet: bool = Opt(("-q", "--quiet"), False, "No progress output."),
         all_tags: bool = Opt(("-a", "--all-tags"), False, "Every local tag of the repository."),
         tls_verify: str = Opt(("--tls-verify",), "true", "false: plain HTTP or unverified TLS."),
         creds: str = Opt(("--creds",), None, "USER:PASSWORD for the registry.")):
    """Push an image to a registry."""
    from rootless.base.errors import UsageError
    from rootless.engine import images as image_ops
    opts = _registry_options(tls_verify, creds, quiet=quiet)
    if all_tags:
        if destination:
            raise UsageError("--all-tags pushes each tag to its own name: give no destination")
        image_ops.push_all_tags(ctx, image, opts)
    else:
        image_ops.push(ctx, image, destination, opts)


@command("tag")
def tag(ctx, source: str = Arg(metavar="SOURCE_IMAGE"), target: str = Arg(metavar="TARGET_IMAGE[:TAG]")):
    """Give an image another name."""
    from rootless.engine import images as image_ops
    image_ops.tag(ctx, source, target)


@command("login")
def login(ctx, registry: str = Arg(metavar="REGISTRY"),
          username: str = Opt(("-u", "--username"), None, "User name."),
          password: str = Opt(("-p", "--password"), None, "Password (prefer --password-stdin)."),
          password_stdin: bool = Opt(("--password-stdin",), False, "Read the password from stdin."),
          tls_verify: str = Opt(("--tls-verify",), "true", "false: plain HTTP or unverified TLS.")):
    """Log in to a registry (the credentials are checked, then saved with mode 0600)."""
    from rootless.base.errors import UsageError
    from rootless.engine import images as image_ops
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not username:
        username = input("Username: ") if sys.stdin.isatty() else None
    if password is None and sys.stdin.isatty():
        import getpass
        password = getpass.getpass("Password: ")
    if not username or password is None:
        raise UsageError("login needs a user name and a password", "use -u USER --password-stdin")
    image_ops.login(ctx, registry, username, password, _registry_options(tls_verify))
    print("Login Succeeded!")


@command("logout")
def logout(ctx, registry: str = Arg(metavar="REGISTRY")):
    """Forget the credentials of a registry."""
    from rootless.base.errors import RootlessError
    from rootless.engine import images as image_ops
    if not image_ops.logout(ctx, registry):
        raise RootlessError(f"not logged in to {registry}", exit_code=1)
    print(f"Removed login credentials for {registry}")


# ---- containers ----------------------------------------------------------------------------
# The resource-limit flags, shared by `run`/`create` and `update`.
LIMIT = {
    "memory": Opt(("-m", "--memory"), None, "Memory limit (512m, 1g)."),
    "memory_reservation": Opt(("--memory-reservation",), None, "Memory soft limit."),
    "memory_swap": Opt(("--memory-swap",), None, "Memory plus swap limit (-1: unlimited swap)."),
    "cpus": Opt(("--cpus",), None, "Number of CPUs (1.5)."),
    "cpu_shares": Opt(("-c", "--cpu-shares"), None, "CPU shares (relative weight, 2-262144)."),
    "cpuset_cpus": Opt(("--cpuset-cpus",), None, "CPUs to run on (0-3, 0,1)."),
    "pids_limit": Opt(("--pids-limit",), None, "Process limit (-1: unlimited)."),
    "blkio_weight": Opt(("--blkio-weight",), None, "Block IO weight (10-1000)."),
}

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
        network: str = Opt(("--network", "--net"), "slirp4netns",
                           "slirp4netns[:OPTIONS] | none | host | container:NAME | a network's NAME"),
        network_alias: list[str] = Opt(("--network-alias", "--net-alias"), [],
                                       "Another name of the container on its user-defined network."),
        publish: list[str] = Opt(("-p", "--publish"), [], "Publish a port: [IP:][HOSTPORT:]PORT[/PROTO]."),
        publish_all: bool = Opt(("-P", "--publish-all"), False, "Publish every exposed port on a free port."),
        expose: list[str] = Opt(("--expose",), [], "Expose a port or a range (PORT[-END][/PROTO])."),
        link: list[str] = Opt(("--link",), [], "Link to another container (NAME[:ALIAS])."),
        add_host: list[str] = Opt(("--add-host",), [], "Add a line to /etc/hosts (HOST:IP)."),
        dns: list[str] = Opt(("--dns",), [], "Set a DNS server."),
        dns_search: list[str] = Opt(("--dns-search",), [], "Set a DNS search domain."),
        dns_option: list[str] = Opt(("--dns-option", "--dns-opt"), [], "Set a DNS option."),
        mac_address: str = Opt(("--mac-address",), None, "The container's MAC address (slirp4netns)."),
        log_driver: str = Opt(("--log-driver",), None, "Logging driver: json-file, k8s-file or none."),
        log_opt: list[str] = Opt(("--log-opt",), [], "Log driver options: max-size=SIZE, max-file=N."),
        volume: list[str] = Opt(("-v", "--volume"), [], "Mount a volume or a host path: [NAME|/HOST:]/DST[:ro|rw|U]."),
        mount: list[str] = Opt(("--mount",), [], "type=bind|volume|tmpfs,src=,dst=[,readonly][,tmpfs-size=]"),
        tmpfs: list[str] = Opt(("--tmpfs",), [], "Mount a tmpfs: /DST[:size=64m,mode=1777,...]."),
        volumes_from: list[str] = Opt(("--volumes-from",), [], "Mount every volume of a container: NAME[:ro|rw]."),
        read_only: bool = Opt(("--read-only",), False, "Mount the root filesystem read-only."),
        memory: str = LIMIT["memory"], memory_reservation: str = LIMIT["memory_reservation"],
        memory_swap: str = LIMIT["memory_swap"], cpus: str = LIMIT["cpus"], cpu_shares: str = LIMIT["cpu_shares"],
        cpuset_cpus: str = LIMIT["cpuset_cpus"], pids_limit: str = LIMIT["pids_limit"],
        blkio_weight: str = LIMIT["blkio_weight"],
        device_read_bps: list[str] = Opt(("--device-read-bps",), [], "Read rate limit of a device (/dev/sda:1mb)."),
        device_write_bps: list[str] = Opt(("--device-write-bps",), [], "Write rate limit of a device (/dev/sda:1mb)."),
        cap_add: list[str] = Opt(("--cap-add",), [], "Add a Linux capability (or ALL)."),
        cap_drop: list[str] = Opt(("--cap-drop",), [], "Drop a Linux capability (or ALL)."),
        privileged: bool = Opt(("--privileged",), False, "All capabilities, no masked paths, the host devices you may open."),
        security_opt: list[str] = Opt(("--security-opt",), [], "no-new-privileges, seccomp=unconfined, ..."),
        device: list[str] = Opt(("--device",), [], "Add a host device: /dev/HOST[:/dev/CONTAINER][:rwm]."),
        userns: str = Opt(("--userns",), "", "keep-id: your own uid and gid inside the container."),
        label: list[str] = Opt(("-l", "--label"), [], "Set a label on the container (KEY=VALUE)."),
        init: bool = Opt(("--init",), False, "Run an init that forwards signals and reaps zombies."),
        pull: str = Opt(("--pull",), "missing", "Pull the image: missing, always or never."),
        tls_verify: str = Opt(("--tls-verify",), "true", "false: pull over plain HTTP or unverified TLS."),
        platform: str = Opt(("--platform",), None, "os/arch[/variant]: the image for that platform."),
        detach: bool = Opt(("-d", "--detach"), False, "Run in the background and print the container ID."),
        detach_keys: str = Opt(("--detach-keys",), "ctrl-p,ctrl-q", "Keys that detach from a -it session.")):
    """Run a command in a new container."""
    from rootless.engine import attach, containers
    result = containers.run(ctx, _run_options(image, command, rm, interactive, tty, env, env_file, workdir, user,
                                              entrypoint, hostname, name, network, init, publish, publish_all,
                                              expose, link, add_host, dns, dns_search, dns_option, mac_address,
                                              pull, tls_verify, platform, log_driver, log_opt, volume, mount,
                                              tmpfs, volumes_from, read_only, memory, memory_reservation,
                                              memory_swap, cpus, cpu_shares, cpuset_cpus, pids_limit, blkio_weight,
                                              device_read_bps, device_write_bps, cap_add, cap_drop, privileged,
                                              security_opt, device, userns, label, network_alias),
                            detach, attach.parse_detach_keys(detach_keys))
    if detach:
        print(result)
        return 0
    return result


def _run_options(image, command, rm, interactive, tty, env, env_file, workdir, user, entrypoint, hostname, name,
                 network, init, publish=(), publish_all=False, expose=(), link=(), add_host=(), dns=(),
                 dns_search=(), dns_option=(), mac_address=None, pull="missing", tls_verify="true", platform=None,
                 log_driver=None, log_opt=(), volume=(), mount=(), tmpfs=(), volumes_from=(), read_only=False,
                 memory=None, memory_reservation=None, memory_swap=None, cpus=None, cpu_shares=None,
                 cpuset_cpus=None, pids_limit=None, blkio_weight=None, device_read_bps=(), device_write_bps=(),
                 cap_add=(), cap_drop=(), privileged=False, security_opt=(), device=(), userns="", label=(),
                 network_alias=()):
    from rootless.runtime.spec import RunOptions, parse_labels
    limit_flags = (memory, memory_reservation, memory_swap, cpus, cpu_shares, cpuset_cpus, pids_limit,
                   blkio_weight, tuple(device_read_bps), tuple(device_write_bps))
    limits = None
    if any(limit_flags):
        from rootless.runtime import cgroups
        limits = cgroups.parse(cgroups.LimitOptions(*limit_flags))
    _registry_options(tls_verify)  # checks the value
    if platform:
        from layers import manifest
        manifest.parse_platform(platform)
    return RunOptions(image=image, command=tuple(command or ()), entrypoint=entrypoint, env=tuple(env),
                      env_files=tuple(env_file), workdir=workdir, user=user, hostname=hostname, name=name,
                      network=network, init=init, rm=rm, interactive=interactive, tty=tty,
                      publish=tuple(publish), publish_all=publish_all, expose=tuple(expose), links=tuple(link),
                      add_hosts=tuple(add_host), dns=tuple(dns), dns_search=tuple(dns_search),
                      dns_options=tuple(dns_option), mac_address=mac_address, pull=pull,
                      tls_verify=tls_verify == "true", platform=platform, log_driver=log_driver,
                      log_opts=tuple(log_opt), volumes=tuple(volume), mounts=tuple(mount), tmpfs=tuple(tmpfs),
                      volumes_from=tuple(volumes_from), read_only=read_only, limits=limits,
                      cap_add=tuple(cap_add), cap_drop=tuple(cap_drop), privileged=privileged,
                      security_opts=tuple(security_opt), devices=tuple(device), userns=userns or "",
                      labels=parse_labels(label) if label else None, network_aliases=tuple(network_alias))


@command("create", interspersed=False, params_of=run, without=("detach", "detach_keys"))
def create(ctx, **kw):
    """Create a new container without starting it."""
    from rootless.engine import containers
    print(containers.create(ctx, _run_options(**kw))["id"])


@command("start")
def start(ctx, containers_: list[str] = Arg(metavar="CONTAINER..."),
          attach: bool = Opt(("-a", "--attach"), False, "Attach stdout/stderr and wait for the exit."),
          interactive: bool = Opt(("-i", "--interactive"), False, "Attach stdin.")):
    """Start one or more stopped containers."""
    from rootless.engine import containers
    if attach and len(containers_) > 1:
        from rootless.base.errors import UsageError
        raise UsageError("you cannot start and attach multiple containers at once")
    code = 0
    for ref in containers_:
        rec = containers.lookup(ctx, ref)
        if attach:
            code = containers.start(ctx, rec, attached=True, stdin=interactive)
        elif not containers.is_running(rec):
            containers.start(ctx, rec, attached=False)
            print(ref)
        else:
            print(ref)
    return code


def _each(ctx, refs: list[str], action) -> int:
    """Apply ``action`` to each container and print its reference; like Docker, an error for one
    container is reported and the others still get done; the exit code is then 1."""
    from rootless.base.errors import RootlessError
    from rootless.engine import containers
    code = 0
    for ref in refs:
        try:
            action(containers.lookup(ctx, ref))
            print(ref, flush=True)
        except RootlessError as e:
            print(f"rootless: error: {e.message}", file=sys.stderr)
            code = 1
    return code


@command("stop")
def stop(ctx, containers_: list[str] = Arg(metavar="CONTAINER..."),
         time_: int = Opt(("-t", "--time"), None, "Seconds to wait before killing (default 10).")):
    """Stop running containers: the stop signal, then SIGKILL after the grace period."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.stop(ctx, rec, time_))


@command("restart")
def restart(ctx, containers_: list[str] = Arg(metavar="CONTAINER..."),
            time_: int = Opt(("-t", "--time"), None, "Seconds to wait before killing (default 10).")):
    """Restart containers."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.restart(ctx, rec, time_))


@command("kill")
def kill(ctx, containers_: list[str] = Arg(metavar="CONTAINER..."),
         signal_: str = Opt(("-s", "--signal"), "KILL", "Signal to send (name or number).")):
    """Send a signal to running containers."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.kill(ctx, rec, signal_))


@command("rm")
def rm(ctx, containers_: list[str] = Arg(metavar="CONTAINER..."),
       force: bool = Opt(("-f", "--force"), False, "Kill and remove a running container."),
       volumes: bool = Opt(("-v", "--volumes"), False, "Remove anonymous volumes too.")):
    """Remove containers."""
    from rootless.engine import containers
    return _each(ctx, containers_, lambda rec: containers.remove(ctx, rec, force, volumes))


@command("wait")
def wait(ctx, containers_: list[str] = Arg(metavar="CONTAINER...")):
    """Block until containers stop, then print their exit codes."""
    from rootless.engine import containers
    for ref in containers_:
        rec = containers.wait(ctx, containers.lookup(ctx, ref))
        print(rec["state"].get("exit_code", 0))


@command("exec", interspersed=False)
def exec_(ctx, container: str = Arg(metavar="CONTAINER"), command: list[str] = Arg(metavar="COMMAND [ARG...]"),
          detach: bool = Opt(("-d", "--detach"), False, "Run the command in the background."),
          interactive: bool = Opt(("-i", "--interactive"), False, "Keep stdin open."),
          tty: bool = Opt(("-t", "--tty"), False, "Allocate a pseudo-terminal."),
          env: list[str] = Opt(("-e", "--env"), [], "Set environment variables."),
          user: str = Opt(("-u", "--user"), None, "name|uid[:group|gid]"),
          workdir: str = Opt(("-w", "--workdir"), None, "Working directory inside the container.")):
    """Run a command in a running container."""
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    return containers.exec_in(ctx, rec, command, env, user, workdir, tty, interactive, detach) or 0


@command("top")
def top(ctx, container: str = Arg(metavar="CONTAINER")):
    """Show the processes of a container (host pids)."""
    from rootless.cli import render, views
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    if not containers.is_running(rec):
        from rootless.base.errors import Conflict
        raise Conflict(f"container {rec['id'][:12]} is not running", exit_code=1)
    rows = views.top_rows(rec["state"]["pid"])
    print(render.table(["UID", "PID", "PPID", "STIME", "TIME", "CMD"], rows))


@command("stats")
def stats(ctx, containers_: list[str] = Arg(None, metavar="[CONTAINER...]"),
          all_: bool = Opt(("-a", "--all"), False, "Show every container (default: running ones)."),
          no_stream: bool = Opt(("--no-stream",), False, "Print one sample and exit."),
          format_: str = Opt(("--format",), None, "Go template, or table TEMPLATE."),
          no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate output.")):
    """Show containers' resource use (CPU, memory, network, block I/O, processes)."""
    from rootless.cli import render, views
    from rootless.engine import containers
    while True:
        recs = [containers.lookup(ctx, c) for c in containers_] if containers_ else containers.all_current(ctx)
        if not all_ and not containers_:
            recs = [r for r in recs if containers.is_running(r)]
        rows = [views.stats_row(r, trunc=not no_trunc) for r in containers.stats(ctx, recs)]
        if format_:
            out = render.formatted(format_, rows, views.STATS_HEADERS)
        else:
            out = render.table([views.STATS_HEADERS[k] for k in views.STATS_DEFAULT],
                               [[r[k] for k in views.STATS_DEFAULT] for r in rows])
        if not no_stream and sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(out, flush=True)
        if no_stream:
            return


@command("update")
def update(ctx, containers_: list[str] = Arg(metavar="CONTAINER..."),
           memory: str = LIMIT["memory"], memory_reservation: str = LIMIT["memory_reservation"],
           memory_swap: str = LIMIT["memory_swap"], cpus: str = LIMIT["cpus"], cpu_shares: str = LIMIT["cpu_shares"],
           cpuset_cpus: str = LIMIT["cpuset_cpus"], pids_limit: str = LIMIT["pids_limit"],
           blkio_weight: str = LIMIT["blkio_weight"]):
    """Change the resource limits of containers (running ones at once)."""
    from rootless.base.errors import UsageError
    from rootless.engine import containers
    from rootless.runtime import cgroups
    limits = cgroups.parse(cgroups.LimitOptions(memory, memory_reservation, memory_swap, cpus, cpu_shares,
                                                cpuset_cpus, pids_limit, blkio_weight))
    if not limits:
        raise UsageError("you must provide one or more flags when using this command")
    return _each(ctx, containers_, lambda rec: containers.update(ctx, rec, limits))


@command("port")
def port(ctx, container: str = Arg(metavar="CONTAINER"),
         private_port: str = Arg(None, metavar="[PRIVATE_PORT[/PROTO]]")):
    """List the port mappings of a container, or the host side of one port."""
    from rootless.base.errors import RootlessError
    from rootless.cli import views
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    lines = views.port_lines(rec, private_port)
    if private_port and not lines:
        port_ = private_port if "/" in private_port else f"{private_port}/tcp"
        raise RootlessError(f"no public port '{port_}' published for {container}", exit_code=1)
    if lines:
        print("\n".join(lines))


@command("commit")
def commit(ctx, container: str = Arg(metavar="CONTAINER"), reference: str = Arg(None, metavar="[REPOSITORY[:TAG]]"),
           message: str = Opt(("-m", "--message"), None, "Commit message."),
           author: str = Opt(("-a", "--author"), None, "Author."),
           change: list[str] = Opt(("-c", "--change"), [], "Dockerfile instruction (CMD, ENV, ...)."),
           pause: bool = Opt(("-p", "--pause"), True, "Accepted for compatibility: commits do not pause.")):
    """Create a new image from a container's changes."""
    from rootless.engine import containers
    print(containers.commit(ctx, containers.lookup(ctx, container), reference, author, message, change))


@command("export")
def export(ctx, container: str = Arg(metavar="CONTAINER"),
           output: str = Opt(("-o", "--output"), None, "Write to a file instead of stdout.")):
    """Export a container's filesystem as a tar archive."""
    import os as _os

    from rootless.base.errors import UsageError
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    if output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to write a tar archive to a terminal", "use -o FILE or redirect")
    if output is None:
        sys.stdout.flush()
        containers.export(ctx, rec, _os.dup(1))
        return
    tmp = f"{output}.tmp-{_os.getpid()}"
    fd = _os.open(tmp, _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC, 0o644)
    try:
        containers.export(ctx, rec, fd)
        _os.rename(tmp, output)
    finally:
        if _os.path.exists(tmp):
            _os.unlink(tmp)


@command("cp")
def cp(ctx, src: str = Arg(metavar="SRC"), dest: str = Arg(metavar="DEST"),
       follow_link: bool = Opt(("-L", "--follow-link"), False, "Follow a symbolic link named by SRC.")):
    """Copy files between a container and the host: CONTAINER:PATH HOST_PATH or the reverse (`-`: a tar on stdout or stdin)."""
    from rootless.base.errors import UsageError
    from rootless.engine import containers

    def split(arg: str):
        head, sep, path = arg.partition(":")
        return (head, path) if sep and "/" not in head and head else (None, arg)

    (sc, sp), (dc, dp) = split(src), split(dest)
    if (sc is None) == (dc is None):
        raise UsageError("copying between containers or between host paths is not supported",
                         "give exactly one side as CONTAINER:PATH")
    if sc is not None:
        containers.copy_out(ctx, containers.lookup(ctx, sc), sp, dp, follow_link)
    else:
        containers.copy_in(ctx, containers.lookup(ctx, dc), sp, dp)


@command("attach")
def attach(ctx, container: str = Arg(metavar="CONTAINER"),
           no_stdin: bool = Opt(("--no-stdin",), False, "Do not attach stdin."),
           detach_keys: str = Opt(("--detach-keys",), "ctrl-p,ctrl-q", "Keys that detach (the container keeps running)."),
           sig_proxy: bool = Opt(("--sig-proxy",), True, "Accepted: signals are proxied without a tty.")):
    """Attach to a running container's input and output."""
    from rootless.engine import attach as attachmod
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    return attachmod.attach(ctx, rec, not no_stdin and bool(rec["spec"].get("interactive")),
                            attachmod.parse_detach_keys(detach_keys)) or 0


@command("mount")
def mount(ctx, container: str = Arg(metavar="CONTAINER")):
    """Print a path to a container's root filesystem (chroot-like access from the host)."""
    from rootless.engine import containers
    print(containers.mount(ctx, containers.lookup(ctx, container)))


@command("unmount")
def unmount(ctx, container: str = Arg(metavar="CONTAINER")):
    """Release what `rootless mount` holds for a stopped container."""
    from rootless.engine import containers
    containers.unmount(ctx, containers.lookup(ctx, container))
    print(container)


@command("rename")
def rename(ctx, container: str = Arg(metavar="CONTAINER"), new_name: str = Arg(metavar="NEW_NAME")):
    """Rename a container."""
    from rootless.engine import containers
    containers.rename(ctx, containers.lookup(ctx, container), new_name)


@command("container", "prune")
def container_prune(ctx, force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove all stopped containers."""
    from rootless.engine import containers
    removed = containers.prune(ctx)
    if removed:
        print("Deleted Containers:\n" + "\n".join(removed))
    print(f"Total reclaimed space: {len(removed)} containers")


@command("ps")
def ps(ctx, all_: bool = Opt(("-a", "--all"), False, "Show all containers (default: running)."),
       quiet: bool = Opt(("-q", "--quiet"), False, "Only show container IDs."),
       last: int = Opt(("-n", "--last"), None, "Show the N last created containers (all states)."),
       latest: bool = Opt(("-l", "--latest"), False, "Show the latest created container."),
       filter_: list[str] = Opt(("-f", "--filter"), [], "status=, name=, id=, ancestor=, label="),
       format_: str = Opt(("--format",), None, "Go template, or table TEMPLATE."),
       no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate output.")):
    """List containers."""
    from rootless.cli import render, views
    from rootless.engine.containerlist import ListOptions, list_containers
    recs = list_containers(ctx, ListOptions(all=all_, limit=last, latest=latest, filters=tuple(filter_)))
    rows = [views.ps_row(r, trunc=not no_trunc) for r in recs]
    if quiet:
        if rows:
            print("\n".join(r["ID"] for r in rows))
        return
    if format_:
        out = render.formatted(format_, [views.template_data(r) for r in rows], views.PS_HEADERS)
        if rows or out:
            print(out)
        return
    print(render.table([views.PS_HEADERS[k] for k in views.PS_DEFAULT], [[r[k] for k in views.PS_DEFAULT] for r in rows]))


@command("inspect")
def inspect(ctx, objects: list[str] = Arg(metavar="NAME|ID..."),
            format_: str = Opt(("-f", "--format"), None, "Go template."),
            type_: str = Opt(("--type",), None, "container or image")):
    """Low-level information on containers (and images) as JSON."""
    from rootless.base.errors import ContainerNotFound, RootlessError
    from rootless.cli import render, views
    from rootless.engine import containers
    found, errors = [], []
    for ref in objects:
        try:
            if type_ in (None, "container"):
                try:
                    found.append(views.inspect(containers.lookup(ctx, ref), ctx.paths))
                    continue
                except ContainerNotFound:
                    if type_ == "container":
                        raise
            from rootless.engine import images as image_ops
            found.append(image_ops.image_inspect(ctx, ref))
        except RootlessError:
            errors.append(ref)
    if format_:
        out = render.formatted(format_, [views.template_data(f) for f in found], {})
        if found:
            print(out)  # one line per object, empty ones included (as Docker)
    else:
        import json
        print(json.dumps(found, indent=4))
    if errors:
        raise ContainerNotFound(f"no such object: {errors[0]}")


@command("logs")
def logs(ctx, container: str = Arg(metavar="CONTAINER"),
         follow: bool = Opt(("-f", "--follow"), False, "Follow the output until the container stops."),
         tail: str = Opt(("-n", "--tail"), "all", "Number of lines from the end (or all)."),
         timestamps: bool = Opt(("-t", "--timestamps"), False, "Show timestamps."),
         since: str = Opt(("--since",), None, "Since a timestamp or a relative time (10m, 1h30m)."),
         until: str = Opt(("--until",), None, "Until a timestamp or a relative time.")):
    """Show what a container wrote to stdout and stderr."""
    from rootless.base.errors import UsageError
    from rootless.cli import logview
    from rootless.engine import containers
    rec = containers.lookup(ctx, container)
    n = None if tail in ("all", "-1") else (int(tail) if tail.isdigit() else None)
    if n is None and tail not in ("all", "-1"):
        raise UsageError(f"invalid --tail value {tail!r}")
    entries = containers.log_entries(ctx, rec, follow, n, since, until)
    logview.render(entries, timestamps, sys.stdout.buffer, sys.stderr.buffer)
    hint = containers.daemon_hint(ctx, rec)
    if hint:
        print(f"rootless: hint: {hint}", file=sys.stderr)


@command("events")
def events(ctx, since: str = Opt(("--since",), None, "Show the events since a timestamp or a relative time (10m)."),
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


# ---- volumes ---------------------------------------------------------------------------------
@command("volume", "create")
def volume_create(ctx, name: str = Arg(None, metavar="[VOLUME]"),
                  label: list[str] = Opt(("--label",), [], "Set a label (KEY=VALUE)."),
                  driver: str = Opt(("-d", "--driver"), "local", "Only local.")):
    """Create a volume."""
    from rootless.base.errors import UsageError
    from rootless.engine import volumes
    if driver != "local":
        raise UsageError(f"volume driver {driver!r} is not supported", "volumes are local directories")
    print(volumes.create(ctx, name, label))


@command("volume", "ls")
def volume_ls(ctx, quiet: bool = Opt(("-q", "--quiet"), False, "Only show volume names."),
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
def volume_inspect(ctx, names_: list[str] = Arg(metavar="VOLUME..."),
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
def volume_rm(ctx, names_: list[str] = Arg(metavar="VOLUME..."),
              force: bool = Opt(("-f", "--force"), False, "Remove even if containers use it.")):
    """Remove volumes (not while a container uses one, unless -f)."""
    from rootless.engine import volumes
    for n in names_:
        volumes.rm(ctx, n, force)
        print(n)


@command("volume", "prune")
def volume_prune(ctx, all_: bool = Opt(("-a", "--all"), False, "Every unused volume, named ones too."),
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


# ---- networks --------------------------------------------------------------------------------
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


@command("network", "create")
def network_create(ctx, name: str = Arg(metavar="NETWORK"),
                   driver: str = Opt(("-d", "--driver"), "bridge", "Only bridge."),
                   label: list[str] = Opt(("--label",), [], "Set a label (KEY=VALUE)."),
                   internal: bool = Opt(("--internal",), False, "Members reach each other, not the outside."),
                   attachable: bool = Opt(("--attachable",), False, "Accepted (any container may join)."),
                   opt: list[str] = Opt(("-o", "--opt"), [], "Driver options (KEY=VALUE), kept and shown."),
                   ipv6: bool = Opt(("--ipv6",), False, "Refused: members have no addresses of their own."),
                   subnet: list[str] = Opt(("--subnet",), [], "Refused: members have no addresses of their own.")):
    """Create a network: its members reach each other by name (each has its own slirp4netns)."""
    from rootless.engine import networks
    print(networks.create(ctx, name, driver, label, internal, attachable, opt, ipv6, subnet))


@command("network", "ls")
def network_ls(ctx, quiet: bool = Opt(("-q", "--quiet"), False, "Only show network IDs."),
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
def network_inspect(ctx, names_: list[str] = Arg(metavar="NETWORK..."),
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
def network_rm(ctx, names_: list[str] = Arg(metavar="NETWORK..."),
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
def network_prune(ctx, force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
    """Remove the user-defined networks no container is on."""
    from rootless.engine import networks
    removed = networks.prune(ctx)
    if removed:
        print("Deleted Networks:\n" + "\n".join(removed))


@command("network", "connect")
def network_connect(ctx, network: str = Arg(metavar="NETWORK"), container: str = Arg(metavar="CONTAINER"),
                    alias: list[str] = Opt(("--alias",), [], "Another name of the container on the network.")):
    """Connect a container to a network (its members reach it by name; it reaches them from its next start)."""
    from rootless.engine import networks
    rec = networks.connect(ctx, network, container, alias)
    if rec["state"].get("status") == "running":
        ctx.warn(f"{rec['name']} is running: members that start from now on reach it by name, and it reaches "
                 "them from its own next start (rootless links containers when they start)")


@command("network", "disconnect")
def network_disconnect(ctx, network: str = Arg(metavar="NETWORK"), container: str = Arg(metavar="CONTAINER"),
                       force: bool = Opt(("-f", "--force"), False, "No error if the container is gone.")):
    """Disconnect a container from a network (from the next start of each member)."""
    from rootless.engine import networks
    networks.disconnect(ctx, network, container, force)


# ---- system ----------------------------------------------------------------------------------
@command("info")
def info(ctx, format: str = Opt(("-f", "--format"), None, "json")):
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
def system_check(ctx):
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
def unshare(ctx, command: list[str] = Arg(None, metavar="[COMMAND] [ARG...]")):
    """Run a command (default: your shell) as root of the user namespace, e.g. to remove files."""
    from rootless.engine import system
    return system.unshare(ctx, command or [])


@command("system", "service")
def system_service(ctx, uri: str = Arg(None, metavar="[URI]"),
                   time_: int = Opt(("-t", "--time"), 5, "Seconds without a connection before it exits (0: never).")):
    """Serve the Docker Engine API on a Unix socket (for the docker CLI, Compose, Testcontainers)."""
    from rootless.api import server
    if time_ < 0:
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid --time {time_}", "give seconds, or 0 to run until interrupted")
    server.serve(ctx, uri or None, float(time_))


@command("system", "prune")
def system_prune(ctx, all_: bool = Opt(("-a", "--all"), False, "Remove every unused image, not only dangling ones."),
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
def system_reset(ctx, force: bool = Opt(("-f", "--force"), False, "Do not ask for confirmation.")):
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
def version(ctx):
    """Show the version."""
    from rootless import __version__
    print(f"rootless version {__version__}")


# ---- Docker's `image` group: the same commands under their other names ----------------------------
def _alias(path: tuple[str, ...], target, interspersed: bool = True) -> None:
    def alias(ctx, **kw):
        return target(ctx, **kw)
    alias.__doc__ = target.__doc__
    command(*path, interspersed=interspersed, params_of=target)(alias)


for _path, _target in ((("image", "ls"), images), (("image", "rm"), rmi), (("image", "history"), history),
                       (("image", "pull"), pull), (("image", "push"), push), (("image", "tag"), tag),
                       (("image", "save"), save), (("image", "load"), load)):
    _alias(_path, _target)


@command("image", "inspect")
def image_inspect(ctx, images_: list[str] = Arg(metavar="IMAGE..."),
                  format_: str = Opt(("-f", "--format"), None, "Go template.")):
    """Low-level information on images as JSON."""
    import json

    from rootless.cli import render, views
    from rootless.engine import images as image_ops
    found = [image_ops.image_inspect(ctx, ref) for ref in images_]
    if format_:
        print(render.formatted(format_, [views.template_data(f) for f in found], {}))
    else:
        print(json.dumps(found, indent=4))
