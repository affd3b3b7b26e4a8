"""Image commands: images, pull, push, tag, rmi, save, load, import, history, login, logout, image prune and
Docker's ``image`` group (the same commands under their other names)."""

import sys

from rootless.cli import dockerflags
from rootless.cli.params import Arg, Opt, alias, command

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context


@command("load")
def load(ctx: "Context", input: str = Opt(("-i", "--input"), None, "docker-archive or OCI layout (tar or directory; "
                                                                    "default: stdin)"),
         quiet: bool = Opt(("-q", "--quiet"), False, "Accepted: no progress is shown either way.")):
    """Load an image from a docker-archive or an OCI layout (a file, or stdin)."""
    from rootless.engine import images as image_ops
    if input in (None, "-"):
        if sys.stdin.isatty():
            from rootless.base.errors import UsageError
            raise UsageError("requested load from stdin, but stdin is empty", "give -i FILE, or pipe an archive in")
        lines = image_ops.load_stream(ctx, sys.stdin.buffer)
    else:
        lines = image_ops.load(ctx, input)
    for line in lines:
        print(line)


@command("import")
def import_(ctx: "Context", tarball: str = Arg(help="rootfs tarball (plain or gzip)"),
            reference: str = Arg(None, metavar="[REPOSITORY[:TAG]]"),
            change: list[str] = Opt(("-c", "--change"), [], "Dockerfile instruction (CMD, ENV, ...).")):
    """Create an image from a rootfs tarball (one layer)."""
    from rootless.engine import images as image_ops
    print(image_ops.import_rootfs(ctx, tarball, reference, change))


IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}


@command("images")
def images(ctx: "Context", repository: str = Arg(None, metavar="[REPOSITORY[:TAG]]"),
           quiet: bool = Opt(("-q", "--quiet"), False, "Only show image IDs."),
           all_: bool = Opt(("-a", "--all"), False, "Show all images (there are no intermediate ones)."),
           digests: bool = Opt(("--digests",), False, "Show digests."),
           filter_: list[str] = Opt(("-f", "--filter"), [], "dangling=, reference=, before=, since=, label="),
           format_: str = Opt(("--format",), None, "Go template, or table TEMPLATE."),
           no_trunc: bool = Opt(("--no-trunc",), False, "Do not truncate the ids.")):
    """List images."""
    from rootless.cli import render
    from rootless.engine import images as image_ops
    rows = image_ops.images(ctx, filter_ + ([f"reference={repository}"] if repository else []))

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
def history(ctx: "Context", image: str = Arg(metavar="IMAGE"),
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
def save(ctx: "Context", images: list[str] = Arg(metavar="IMAGE..."),
         output: str = Opt(("-o", "--output"), None, "Write to FILE (default: stdout, not a terminal)."),
         format_: str = Opt(("--format",), "docker-archive", "docker-archive or oci-archive.")):
    """Save images to a tar archive (load reads it back)."""
    from rootless.engine import images as image_ops
    image_ops.save(ctx, images, output, format_)


@command("image", "prune")
def image_prune(ctx: "Context", all_: bool = Opt(("-a", "--all"), False, "Remove every image no container uses."),
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


@command("rmi")
def rmi(ctx: "Context", images: list[str] = Arg(metavar="IMAGE..."),
        force: bool = Opt(("-f", "--force"), False, "Remove even if containers use it.")):
    """Remove images."""
    from rootless.engine import images as image_ops
    for line in image_ops.rmi(ctx, images, force):
        print(line)


@command("pull")
def pull(ctx: "Context", reference: str = Arg(metavar="NAME[:TAG|@DIGEST]"),
         platform: str = Opt(("--platform",), None, "os/arch[/variant] from a multi-platform image."),
         quiet: bool = Opt(("-q", "--quiet"), False, "No progress output."),
         all_tags: bool = Opt(("-a", "--all-tags"), False, "Every tag of the repository."),
         tls_verify: str = Opt(("--tls-verify",), "true", "false: plain HTTP or unverified TLS."),
         creds: str = Opt(("--creds",), None, "USER:PASSWORD for the registry."),
         store: str = Opt(("--store",), None, "Pull into this image store, for others to read (shared)."),
         disable_content_trust: bool = dockerflags.CONTENT_TRUST):
    """Pull an image from a registry."""
    from rootless.engine import images as image_ops
    dockerflags.check(disable_content_trust)
    opts = image_ops.registry_options(tls_verify, creds, platform, quiet)
    if store:
        ctx.root = store  # that store is the root of this command (as --root); then made readable
        ctx.shared_stores = ()  # a store being filled reads no other
    if all_tags:
        print("\n".join(image_ops.pull_all_tags(ctx, reference, opts)))
    else:
        print(image_ops.pull(ctx, reference, opts))
    if store:
        image_ops.share_store(ctx)


@command("bundle", interspersed=False)
def bundle(ctx: "Context", image: str = Arg(metavar="IMAGE"), directory: str = Arg(metavar="DIR"),
           command: list[str] = Arg(None, metavar="[COMMAND] [ARG...]"),
           force: bool = Opt(("--force",), False, "Replace DIR if it exists and is not empty."),
           network: str = Opt(("--network",), "host", "host (no network namespace) or none."),
           hostname: str = Opt(("--hostname",), "", "The container's host name (default: the node's, inherited)."),
           pull: str = Opt(("--pull",), "missing", "Pull the image: missing, always or never.")):
    """Write an OCI bundle (DIR/config.json and DIR/rootfs) from an image, for any OCI runtime;
    COMMAND replaces the image's Cmd. Remove it with `rootless unshare rm -rf DIR` (its files
    belong to your subordinate ids)."""
    from rootless.engine import bundle as bundle_ops
    print(bundle_ops.bundle(ctx, image, directory, force=force, network=network, hostname=hostname, pull=pull,
                            command=command or ()))


@command("push")
def push(ctx: "Context", image: str = Arg(metavar="IMAGE"), destination: str = Arg(None, metavar="[DESTINATION]"),
         quiet: bool = Opt(("-q", "--quiet"), False, "No progress output."),
         all_tags: bool = Opt(("-a", "--all-tags"), False, "Every local tag of the repository."),
         tls_verify: str = Opt(("--tls-verify",), "true", "false: plain HTTP or unverified TLS."),
         creds: str = Opt(("--creds",), None, "USER:PASSWORD for the registry."),
         disable_content_trust: bool = dockerflags.CONTENT_TRUST):
    """Push an image to a registry."""
    from rootless.base.errors import UsageError
    from rootless.engine import images as image_ops
    dockerflags.check(disable_content_trust)
    opts = image_ops.registry_options(tls_verify, creds, quiet=quiet)
    if all_tags:
        if destination:
            raise UsageError("--all-tags pushes each tag to its own name: give no destination")
        image_ops.push_all_tags(ctx, image, opts)
    else:
        image_ops.push(ctx, image, destination, opts)


@command("tag")
def tag(ctx: "Context", source: str = Arg(metavar="SOURCE_IMAGE"), target: str = Arg(metavar="TARGET_IMAGE[:TAG]")):
    """Give an image another name."""
    from rootless.engine import images as image_ops
    image_ops.tag(ctx, source, target)


@command("login")
def login(ctx: "Context", registry: str = Arg(metavar="REGISTRY"),
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
    image_ops.login(ctx, registry, username, password, image_ops.registry_options(tls_verify))
    print("Login Succeeded!")


@command("logout")
def logout(ctx: "Context", registry: str = Arg(metavar="REGISTRY")):
    """Forget the credentials of a registry."""
    from rootless.base.errors import RootlessError
    from rootless.engine import images as image_ops
    if not image_ops.logout(ctx, registry):
        raise RootlessError(f"not logged in to {registry}", exit_code=1)
    print(f"Removed login credentials for {registry}")


for _path, _target in ((("image", "ls"), images), (("image", "rm"), rmi), (("image", "history"), history),
                       (("image", "pull"), pull), (("image", "push"), push), (("image", "tag"), tag),
                       (("image", "save"), save), (("image", "load"), load)):
    alias(_path, _target)


@command("image", "inspect")
def image_inspect(ctx: "Context", images_: list[str] = Arg(metavar="IMAGE..."),
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
