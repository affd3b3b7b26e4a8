"""Build commands: build and builder prune."""

import sys

from rootless.cli import dockerflags
from rootless.cli.params import Arg, Opt, command

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context


# BuildKit's --progress modes, which Docker's CI habits pass (--progress=plain)
PROGRESS = ("auto", "plain", "tty", "rawjson", "quiet")


@command("build")
def build(ctx: "Context",
          context: str = Arg(metavar="CONTEXT", help="a directory, or - for a Dockerfile or a tar on stdin"),
          tag: list[str] = Opt(("-t", "--tag"), [], "Name and optionally a tag (NAME[:TAG]); repeatable."),
          file: str = Opt(("-f", "--file"), None, "The Dockerfile (default: CONTEXT/Dockerfile; - for stdin)."),
          build_arg: list[str] = Opt(("--build-arg",), [],
                                     "A build argument, KEY=VALUE (KEY alone: from the environment)."),
          target: str = Opt(("--target",), None, "Build up to this stage."),
          no_cache: bool = Opt(("--no-cache",), False, "Do not use the build cache."),
          pull: bool = Opt(("--pull",), False, "Always pull the base images."),
          label: list[str] = Opt(("--label",), [], "Set a label on the image (KEY=VALUE)."),
          quiet: bool = Opt(("-q", "--quiet"), False, "Print only the image id."),
          network: str = Opt(("--network",), "slirp4netns",
                             "Network of the RUN steps: slirp4netns, host, none or a network's name."),
          platform: str = Opt(("--platform",), None, "Target platform (os/arch); only the host's is built."),
          add_host: list[str] = Opt(("--add-host",), [], "Add a line to the RUN steps' /etc/hosts (HOST:IP)."),
          cache_from: list[str] = Opt(("--cache-from",), [], "Images whose steps may serve as cache; repeatable."),
          iidfile: str = Opt(("--iidfile",), None, "Write the image ID to the file."),
          rm: bool = Opt(("--rm",), False, "Accepted: a step's container is always removed (Docker's default)."),
          force_rm: bool = Opt(("--force-rm",), False, "Accepted: a failed step's container is removed too."),
          compress: bool = Opt(("--compress",), False, "Accepted: the context is read in place, not sent."),
          disable_content_trust: bool = dockerflags.CONTENT_TRUST,
          progress: str = Opt(("--progress",), "auto", "auto, plain, tty or rawjson: the steps' output, plain here "
                                                       "either way; quiet: as -q.")):
    """Build an image from a Dockerfile."""
    from rootless.engine import build as build_ops
    dockerflags.check(disable_content_trust)
    from rootless.runtime.spec import parse_labels
    if progress not in PROGRESS:
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid progress mode {progress!r}", "use " + ", ".join(PROGRESS))
    quiet = quiet or progress == "quiet"

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
    with (build_ops.cancel_on_signals(),
          build_ops.context_from(context, file, sys.stdin.buffer) as (ctx_dir, dockerfile, text)):
        req = build_ops.BuildRequest(
            context=ctx_dir, dockerfile=dockerfile, dockerfile_text=text, tags=tuple(tag),
            build_args=build_ops.parse_build_args(build_arg), target=target, no_cache=no_cache, pull=pull,
            labels=parse_labels(label), quiet=quiet, network=network, platform=platform,
            add_hosts=tuple(add_host), cache_from=tuple(cache_from))
        image_id = build_ops.build(ctx, req, None if quiet else say)
    if iidfile:
        from rootless.base import atomic
        try:
            atomic.write_bytes(iidfile, image_id.encode(), sync=False)
        except OSError as e:
            from rootless.base.errors import RootlessError
            raise RootlessError(f"failed to write the image ID file {iidfile}: {e.strerror or e}",
                                "the image is built; give --iidfile a path in a directory you can write") from None
    print(image_id)  # with or without -q: the id alone on stdout


@command("builder", "prune")
def builder_prune(ctx: "Context", force: bool = Opt(("-f", "--force"), False, "Do not ask (there is no prompt)."),
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
