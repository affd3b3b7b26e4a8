"""Every storage and runtime path. No other module computes a path in the store.

Storage (persistent, ``$XDG_DATA_HOME/rootless`` unless overridden)::

    version               storage format version
    store.lock            guards images.json and layer creation/removal
    images.json           image records and tags
    idmap.json            the id mapping the layers were unpacked with
    probe.json            cached host probes (overlay method)
    blobs/sha256/HEX      compressed layers, configs, manifests
    layers/HEX/           unpacked layers, named by diff id
    containers/ID/        container.json, ctr.log, upper/, work/, rootfs/ (copy method)
    tmp/                  staging for atomic imports

Runtime (volatile, ``$XDG_RUNTIME_DIR/rootless/KEY`` or ``/tmp/rootless-run-UID/KEY``)::

    ID/                   per-running-container files (merged/, etc files)
"""

from __future__ import annotations

import os
import stat
from collections import namedtuple

from rootless.base.errors import RootlessError

STORAGE_VERSION = "1"


def default_root(configured: str | None = None) -> str:
    env = os.environ.get("ROOTLESS_ROOT")
    if env:
        return os.path.abspath(env)
    if configured:
        return os.path.abspath(configured)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "rootless")


def default_runroot(root: str) -> str:
    import zlib  # a short stable key per storage root (cheaper to import than hashlib)
    key = f"{zlib.crc32(root.encode()):08x}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return os.path.join(xdg, "rootless", key)
    return os.path.join(f"/tmp/rootless-run-{os.getuid()}", key)


class Paths(namedtuple("Paths", "root runroot")):
    """The storage root and the runtime root; every path below them comes from here."""

    __slots__ = ()

    # storage
    @property
    def version_file(self) -> str:
        return os.path.join(self.root, "version")

    @property
    def store_lock(self) -> str:
        return os.path.join(self.root, "store.lock")

    @property
    def images_file(self) -> str:
        return os.path.join(self.root, "images.json")

    @property
    def idmap_file(self) -> str:
        return os.path.join(self.root, "idmap.json")

    @property
    def probe_file(self) -> str:
        return os.path.join(self.root, "probe.json")

    @property
    def blobs(self) -> str:
        return os.path.join(self.root, "blobs", "sha256")

    def blob(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            raise RootlessError(f"invalid digest {digest!r}")
        return os.path.join(self.blobs, hexpart)

    @property
    def layers(self) -> str:
        return os.path.join(self.root, "layers")

    def layer(self, diff_id: str) -> str:
        return os.path.join(self.layers, diff_id.partition(":")[2])

    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    @property
    def containers_lock(self) -> str:
        return os.path.join(self.root, "containers.lock")

    def container(self, cid: str) -> str:
        return os.path.join(self.containers, cid)

    def container_record(self, cid: str) -> str:
        return os.path.join(self.containers, cid, "container.json")

    def container_log(self, cid: str) -> str:
        return os.path.join(self.containers, cid, "ctr.log")

    def container_lock(self, cid: str) -> str:
        return os.path.join(self.containers, cid, "lock")

    def upper(self, cid: str) -> str:
        return os.path.join(self.containers, cid, "upper")

    def work(self, cid: str) -> str:
        return os.path.join(self.containers, cid, "work")

    def copy_rootfs(self, cid: str) -> str:
        return os.path.join(self.containers, cid, "rootfs")

    @property
    def volumes(self) -> str:
        return os.path.join(self.root, "volumes")

    @property
    def volumes_lock(self) -> str:
        return os.path.join(self.root, "volumes.lock")

    def volume(self, name: str) -> str:
        return os.path.join(self.volumes, name)

    def volume_data(self, name: str) -> str:
        """What a container sees of the volume (Docker's layout: ``volumes/NAME/_data``)."""
        return os.path.join(self.volumes, name, "_data")

    def volume_record(self, name: str) -> str:
        return os.path.join(self.volumes, name, "volume.json")

    @property
    def tmp(self) -> str:
        return os.path.join(self.root, "tmp")

    # runtime
    def run_dir(self, cid: str) -> str:
        return os.path.join(self.runroot, cid)

    def merged(self, cid: str) -> str:
        return os.path.join(self.runroot, cid, "merged")

    def ensure(self) -> None:
        """Create the storage and runtime directories (0700) and the version file."""
        for d in (self.root, self.blobs, self.layers, self.containers, self.volumes, self.tmp):
            os.makedirs(d, mode=0o700, exist_ok=True)
        ensure_private_dir(self.runroot)
        if not os.path.exists(self.version_file):
            from rootless.base.atomic import write_bytes
            write_bytes(self.version_file, (STORAGE_VERSION + "\n").encode())
        else:
            with open(self.version_file) as f:
                found = f.read().strip()
            if found != STORAGE_VERSION:
                raise RootlessError(f"storage {self.root} has format version {found}, this rootless uses {STORAGE_VERSION}",
                                    "use another --root or wipe it with `rootless system reset`")


def ensure_private_dir(path: str) -> None:
    """Create ``path`` (and parents) and check that it is ours and 0700 (it may hold sockets)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    top = path
    # The first component we may have created under /tmp must be ours and private.
    if path.startswith("/tmp/rootless-run-"):
        top = "/".join(path.split("/")[:3])
    st = os.lstat(top)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RootlessError(f"runtime directory {top} is not a directory owned by you",
                            "remove it or set XDG_RUNTIME_DIR to a private directory")
    if st.st_mode & 0o077:
        os.chmod(top, 0o700)
