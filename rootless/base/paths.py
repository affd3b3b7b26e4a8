"""Every storage and runtime path. No other module computes a path in the store.

Storage (persistent, ``$XDG_DATA_HOME/rootless`` unless overridden)::

    version               storage format version
    store.lock            guards images.json and layer creation/removal
    images.json           image records and tags
    idmap.json            the id mapping the layers were unpacked with
    probe.json            cached host probes (overlay method)
    blobs/sha256/HEX      compressed layers, configs, manifests (HEX.tarsplit: an uncompressed layer as its recipe)
    layers/HEX/           unpacked layers, named by diff id
    containers/ID/        container.json, ctr.log, upper/, work/, rootfs/ (copy method)
    networks/ID.json      user-defined networks (networks.lock guards them)
    tmp/                  staging for atomic imports

Runtime (volatile, ``$XDG_RUNTIME_DIR/rootless/KEY`` or ``/tmp/rootless-run-UID/KEY``; in a Slurm job
without ``XDG_RUNTIME_DIR``, ``${TMPDIR:-/tmp}/rootless-run-UID-jobJOBID/KEY``)::

    ID/                   per-running-container files (merged/, etc files)
    events.log            the event log (``rootless events``), events.log.1 the one before
    events.lock           writers hold it shared, the writer that rotates the log exclusively
"""

from __future__ import annotations

import os
import stat
from collections import namedtuple

from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # annotations only: typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping

STORAGE_VERSION = "1"


# Filesystems where overlay upper directories, user xattrs and chown to subordinate ids fail or
# locking is slow: a home on one of them does not hold the store by default.
NETWORK_FS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "fuse.sshfs", "ceph", "afs", "9p")
RELOCATED_MARK = "relocated-from"


def default_root(configured: str | None = None) -> str:
    """--root aside: ``$ROOTLESS_ROOT``, then the configured ``storage.root``, then
    ``$XDG_DATA_HOME/rootless`` unless that is on a network filesystem (then :func:`local_root`)."""
    env = os.environ.get("ROOTLESS_ROOT")
    if env:
        return os.path.abspath(env)
    if configured:
        return os.path.abspath(configured)
    home_root = data_home_root()
    local = local_root(home_root)
    return local[0] if local else home_root


def data_home_root() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(os.path.abspath(base), "rootless")


def local_root(home_root: str, mountinfo: str | None = None) -> tuple[str, str] | None:
    """Where the store goes instead of ``home_root`` when that is on a network filesystem (NFS,
    Lustre, GPFS, ...): ``/var/tmp/$USER/rootless``, else ``/tmp/$USER/rootless``, the first on a
    local filesystem. (that root, the home's filesystem type); None when the home is local or no
    local place is found."""
    if mountinfo is None:
        from rootless.base.atomic import read_text
        mountinfo = read_text("/proc/self/mountinfo") or ""
    fstype = mount_of(mountinfo, os.path.realpath(nearest_existing(home_root)))[1]
    if fstype not in NETWORK_FS:
        return None
    import pwd
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    for base in ("/var/tmp", "/tmp"):
        if os.access(base, os.W_OK | os.X_OK) and mount_of(mountinfo, os.path.realpath(base))[1] not in NETWORK_FS:
            return os.path.join(base, user, "rootless"), fstype
    return None


def mount_of(mountinfo_text: str, path: str) -> tuple[str, str]:
    """(mount point, filesystem type) holding ``path``: the longest mount-point prefix wins."""
    best, fstype = "", "unknown"
    for line in mountinfo_text.splitlines():
        pre, sep, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = _unescape(fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, tail[0]
    return best, fstype


def nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    return path


def _unescape(field: str) -> str:
    """Mount tables escape space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def default_runroot(root: str) -> str:
    import zlib  # a short stable key per storage root (cheaper to import than hashlib)
    key = f"{zlib.crc32(root.encode()):08x}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return os.path.join(xdg, "rootless", key)
    return os.path.join(private_runtime_dir(os.environ), key)


def private_runtime_dir(environ: Mapping[str, str]) -> str:
    """The runtime directory where no usable ``XDG_RUNTIME_DIR`` is (cron, ``su``, a batch job):
    ``/tmp/rootless-run-UID``. In a Slurm job (``SLURM_JOB_ID``) it is the job's own,
    ``rootless-run-UID-jobID`` under the job's node-local temp dir (``$TMPDIR``, else /tmp), which
    the epilog of docs/hpc.md removes when the job ends (a login session's ``XDG_RUNTIME_DIR`` that
    ``srun`` carries to a node where it does not exist is not usable)."""
    name, base = f"rootless-run-{os.getuid()}", "/tmp"
    job = environ.get("SLURM_JOB_ID", "")
    if job.isdigit():
        name += f"-job{job}"
        tmp = environ.get("TMPDIR", "")
        if os.path.isabs(tmp) and os.path.isdir(tmp) and os.access(tmp, os.W_OK | os.X_OK):
            base = os.path.normpath(tmp)
    return os.path.join(base, name)


class Paths(namedtuple("Paths", "root runroot")):
    """The storage root and the runtime root; every path below them comes from here."""

    __slots__ = ()

    # storage
    @property
    def version_file(self) -> str:
        return os.path.join(self.root, "version")

    @property
    def relocated_mark(self) -> str:
        """Says which store in the home (on a network filesystem) this one stands for."""
        return os.path.join(self.root, RELOCATED_MARK)

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
    def networks(self) -> str:
        return os.path.join(self.root, "networks")

    @property
    def networks_lock(self) -> str:
        return os.path.join(self.root, "networks.lock")

    def network_record(self, nid: str) -> str:
        """A user-defined network: ``networks/ID.json`` (its members are the containers whose
        records name it)."""
        return os.path.join(self.networks, f"{nid}.json")

    @property
    def tmp(self) -> str:
        return os.path.join(self.root, "tmp")

    # runtime
    def run_dir(self, cid: str) -> str:
        return os.path.join(self.runroot, cid)

    def merged(self, cid: str) -> str:
        return os.path.join(self.runroot, cid, "merged")

    def pending(self, cid: str) -> str:
        """Sockets of API clients (attach, wait) waiting for a container's next start: its keeper
        connects to each before the container runs (outside ``run_dir``, which each start remakes)."""
        return os.path.join(self.runroot, "pending", cid)

    @property
    def events_log(self) -> str:
        """The event log (``rootless.runtime.events``); rotated to ``events.log.1``."""
        return os.path.join(self.runroot, "events.log")

    @property
    def events_lock(self) -> str:
        return os.path.join(self.runroot, "events.lock")

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
                raise RootlessError(f"storage {self.root} has format version {found}, "
                                    f"this rootless uses {STORAGE_VERSION}",
                                    "use another --root or wipe it with `rootless system reset`")


def makedirs_private(path: str) -> None:
    """``os.makedirs`` whose every directory it makes is 0700 (``os.makedirs`` gives the parents
    it makes the umask's mode, 0755 as a rule)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        makedirs_private(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return
    os.chmod(path, 0o700)  # whatever the umask


def ensure_private_dir(path: str) -> None:
    """Create ``path`` (and parents, each 0700) and check that it is ours and 0700 (it may hold sockets)."""
    makedirs_private(path)
    top = path
    # The first component we may have created in a shared temp dir must be ours and private.
    parts = path.split("/")
    made = [i for i, part in enumerate(parts) if part.startswith("rootless-run-")]
    if made:
        top = "/".join(parts[:made[0] + 1])
    st = os.lstat(top)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RootlessError(f"runtime directory {top} is not a directory owned by you",
                            "remove it or set XDG_RUNTIME_DIR to a private directory")
    if st.st_mode & 0o077:
        os.chmod(top, 0o700)
