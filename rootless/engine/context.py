"""The Context: paths, settings and probed features for one command, built once by the CLI
(or, later, the API server) and passed to every use case. No module-level state."""

from __future__ import annotations

import os
import stat
import sys
from functools import cached_property

from rootless.base import config as configmod
from rootless.base.errors import RootlessError
from rootless.base.paths import Paths, data_home_root, default_root, default_runroot


class Context:
    """Paths, settings and probed features for one command (no module-level state)."""

    def __init__(self, root: str | None = None, debug: bool = False, progress=None, notes=None, warnings=None,
                 warm_forker: bool = False):
        self.root = root
        # detached keepers are forked by the warm forker (``rootless.runtime.forker``): the CLI's, not
        # the API server's (its own keepers share its pages) nor a test's in-process calls
        self.warm_forker = warm_forker
        self.debug = debug
        # ``progress(quiet)``: a pull's or push's progress display (see rootless.cli.progress), or None.
        self.progress = progress
        # ``notes(line)``: where a use case's status lines go (see note), or None: stderr.
        self.notes = notes
        # ``warnings(message)``: where warnings go (the API collects them for a response), or None: stderr.
        self.warnings = warnings
        self.warned: set[str] = set()

    @cached_property
    def config(self) -> configmod.Config:
        return configmod.load()

    @cached_property
    def paths(self) -> Paths:
        # --root, then ROOTLESS_ROOT, then storage.root, then $XDG_DATA_HOME/rootless
        root = os.path.abspath(self.root) if self.root else default_root(self.config.root)
        p = Paths(root, default_runroot(root))
        try:
            if not self.root and root != data_home_root() and not os.environ.get("ROOTLESS_ROOT") \
                    and not self.config.root:
                self._relocated(p)
            p.ensure()
        except OSError as e:
            from rootless.base.errors import is_no_space, no_space
            if is_no_space(e):
                raise no_space(root) from None
            where = e.filename or root
            raise RootlessError(f"cannot keep the store in {root}: {where}: {e.strerror}",
                                "use a directory you can write (--root, ROOTLESS_ROOT or storage.root)") from None
        return p

    def _relocated(self, p: Paths) -> None:
        """The home is on a network filesystem: the store is on a local one (its parent private
        to this user), said once, when it is made."""
        parent = os.path.dirname(p.root)
        os.makedirs(parent, 0o700, exist_ok=True)
        st = os.lstat(parent)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RootlessError(f"{parent} is not a private directory of yours: the store cannot go there",
                                f"remove it, or set storage.root in {configmod.config_path()} to a local directory")
        if os.path.exists(p.relocated_mark):
            return
        from rootless.base.atomic import write_bytes
        from rootless.base.paths import local_root
        home = data_home_root()
        fstype = (local_root(home) or ("", "a network filesystem"))[1]
        os.makedirs(p.root, 0o700, exist_ok=True)
        write_bytes(p.relocated_mark, f"{home} ({fstype})\n".encode())
        self.warn(f"{home} is on {fstype}, where overlay and user xattrs fail: the store is in {p.root} "
                  f"instead (set storage.root in {configmod.config_path()} to choose)")

    @cached_property
    def mapping(self):
        from rootless.base import idmap
        return idmap.plan(self.config.idmap)

    def note(self, line: str) -> None:
        """A status line of a use case (Docker's "Unable to find image 'x' locally"): to the face's
        ``notes`` (which may collect or drop it), else to stderr as the CLI shows it."""
        if self.notes is not None:
            self.notes(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        """A warning, said once: to the face's ``warnings`` (which may collect or drop it), else to
        stderr as the CLI shows it."""
        if message not in self.warned:
            self.warned.add(message)
            if self.warnings is not None:
                self.warnings(message)
            else:
                print(f"rootless: warning: {message}", file=sys.stderr)

    def collecting_warnings(self) -> _Collected:
        """``with ctx.collecting_warnings() as found:`` the warnings said meanwhile go into the list
        ``found`` (once each), not to stderr: an API response's ``Warnings``."""
        return _Collected(self)

    def userns_call(self, fn, *args):
        from rootless.base import userns
        if self.mapping.warning:
            self.warn(self.mapping.warning)
        return userns.call(self.mapping, fn, *args)

    @cached_property
    def store(self):
        from layers.store import ImageStore
        return ImageStore(self.paths, self.userns_call, self.mapping.key, self.userns_worker, self.config.search,
                          self.shared_stores)

    @cached_property
    def shared_stores(self) -> tuple[Paths, ...]:
        """The read-only additional image stores (``storage.additional_stores`` or
        ``$ROOTLESS_ADDITIONAL_STORES``) that can be used: a missing or unreadable one is a
        warning and left out; one unpacked with another id map than the user's is refused (its
        files would show under other owners). Nothing is made or locked in them."""
        roots = [r for r in configmod.additional_stores(self.config) if r != self.paths.root]
        if not roots:
            return ()
        from rootless.base import atomic
        out = []
        for root in roots:
            p = Paths(root, "")
            if not os.access(p.images_file, os.R_OK) or not os.path.isdir(p.layers):
                why = "missing" if not os.path.exists(root) else "not an image store, or unreadable"
                self.warn(f"additional image store {root} is {why}: not used "
                          "(fill it with `rootless pull --store DIR IMAGE`, or drop it from storage.additional_stores)")
                continue
            try:
                recorded = atomic.read_json(p.idmap_file).get("key")
            except (OSError, ValueError, AttributeError):
                recorded = None  # nothing unpacked there yet
            if recorded is not None and recorded != self.mapping.key:
                raise RootlessError(
                    f"additional image store {root} was unpacked with another id map ({recorded}) than yours "
                    f"({self.mapping.key})",
                    "fill it with the same subordinate ranges as on every node that uses it (or in single-uid mode, "
                    "userns.idmap = \"single\", by the user who uses it), or drop it from storage.additional_stores")
            out.append(p)
        return tuple(out)

    def userns_worker(self, handler, what: str = "helper"):
        from rootless.base import userns
        if self.mapping.warning:
            self.warn(self.mapping.warning)
        return userns.Worker(self.mapping, handler, what)

    def slirp_features(self):
        """slirp4netns's path, version and options (probed once per binary, cached in the runroot)."""
        from netstack import slirp
        from rootless.base import proc
        from rootless.base.errors import HostError
        exe = proc.which("slirp4netns")
        if not exe:
            raise HostError("slirp4netns not found: the default network needs it",
                            "install it (apt-get install slirp4netns), or use --network none")
        return slirp.probe(exe, os.path.join(self.paths.runroot, "slirp4netns.json"))

    def overlay_method(self) -> str:
        from layers import overlay
        return overlay.choose(self.config.overlay, self.paths, self.userns_call)


class _Collected:
    """The warnings a block says, collected (see Context.collecting_warnings)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.found: list[str] = []

    def __enter__(self) -> list[str]:
        self.saved = self.ctx.warnings, self.ctx.warned
        self.ctx.warnings, self.ctx.warned = self.found.append, set()
        return self.found

    def __exit__(self, *exc: object) -> None:
        self.ctx.warnings, self.ctx.warned = self.saved
