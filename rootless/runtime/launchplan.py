"""What one start of a container needs on the namespace side, built by the engine
(``rootless.engine.containers``) and carried out by the keeper (:mod:`rootless.runtime.child`)."""

from __future__ import annotations

from rootless.base.valuetype import KeywordRecord, keyword_record

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from layers.overlay import RootfsPlan
    from rootless.base.paths import Paths
    from rootless.runtime.mountplan import Op
    from rootless.runtime.network import NetPlan
    from rootless.runtime.ocispec import OciProcess
    from rootless.runtime.spec import ContainerSpec


@keyword_record
class LaunchPlan(KeywordRecord):
    """Everything the namespace side needs, built by the engine."""
    spec: ContainerSpec
    rootfs: RootfsPlan
    mounts: tuple[Op, ...]
    run_dir: str
    paths: Paths  # the store, where the keeper records the container's state and writes its log
    net: NetPlan  # the network plan, with the published ports already bound
    remove_dirs: tuple[str, ...] = ()  # removed when the container ends (--rm)
    winsize: bytes | None = None
    single_uid: bool = False  # the user namespace maps one uid, no other user to switch to
    attached: bool = True  # a CLI waits and shows the output (else the keeper detaches from the terminal)
    stdin: bool = True  # an attached CLI gives its stdin (run -i, start -a -i); else stdin waits for `attach`
    # the outputs an attached CLI shows (``run -a stdout``: stdout only; both by default)
    outputs: tuple[str, ...] = ("stdout", "stderr")
    seccomp: bytes | None = None  # the container's seccomp program
    # the container lives only as long as its attached CLI (a build's RUN step): the CLI's
    # SIGINT/TERM/HUP kill it, and should the CLI die, the keeper kills it and removes it
    tied: bool = False
    # the attached CLI's signals go to the container (Docker's --sig-proxy; without -t): else the
    # CLI dies of them, and the container runs on
    sig_proxy: bool = True
    # keep-id: the user's uid and gid (the same inside), to whom the keeper gives the log it writes,
    # since root inside is another id there and the user could not read a file of its own
    log_owner: tuple[int, int] | None = None
    # a container of the OCI runtime face (``rootless oci``): its process settings, the wait for
    # ``start``; ``passthrough``: the container's stdin, stdout and stderr are the caller's own
    oci: OciProcess | None = None
    passthrough: bool = False
