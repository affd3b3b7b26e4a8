"""Assemble a container's root filesystem from unpacked layers.

Three methods, best first: the kernel's overlayfs mounted inside the user
namespace (``userxattr``), ``fuse-overlayfs``, or a private copy of the layers.
The choice is probed once (by trying), cached in ``probe.json``, and can be
forced in the config file (``storage.overlay``).

``mount_rootfs``/``unmount_rootfs`` run as root of the user namespace, in the
container's (private) mount namespace.
"""

from __future__ import annotations

import os
import stat
import time

from layers import whiteout
from rootless.base import atomic, proc, syscalls
from rootless.base.errors import HostError, RootlessError
from rootless.base.paths import Paths
from rootless.base.valuetype import KeywordRecord, keyword_record, record

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

METHODS = ("kernel", "fuse", "copy")
PROBE_VERSION = 1


@record
class Probe(KeywordRecord):
    """What :func:`probe` found: the method chosen and why each overlay works or not."""
    method: str
    kernel_ok: bool
    kernel_detail: str
    fuse_ok: bool
    fuse_detail: str
    key: str = ""


@keyword_record
class RootfsPlan(KeywordRecord):
    """What to mount at ``merged``: data built by the engine, executed in the namespace."""
    method: str
    lowers: tuple[str, ...]  # the layer directories, top layer first
    upper: str
    work: str
    merged: str
    copy_dir: str
    # fuse-overlayfs's (uidmapping, gidmapping), or None (--userns=keep-id's, see rootless.base.idmap.fuse_shift)
    id_shift: tuple[str, str] | None = None
    # no durability until the layer is committed (a build step's): the kernel overlay's ``volatile``
    # (Linux 5.10+) and fuse-overlayfs's, which skip every fsync and syncfs of the writable layer
    volatile: bool = False


def _probe_key() -> str:
    fuse = proc.which("fuse-overlayfs") or ""
    return f"v{PROBE_VERSION} {os.uname().release} {fuse}"


def probe(paths: Paths, userns_call: Callable[..., Any], refresh: bool = False) -> Probe:
    """The best working method on this host and storage (cached)."""
    key = _probe_key()
    if not refresh:
        try:
            cached = atomic.read_json(paths.probe_file)
            if cached.get("key") == key:
                return Probe(**cached)
        except (OSError, ValueError, TypeError):
            pass
    os.makedirs(paths.tmp, exist_ok=True)
    base = os.path.join(paths.tmp, f"probe-{os.getpid()}-{time.monotonic_ns()}")
    for d in ("lower", "upper", "work", "merged", "fupper", "fwork"):
        os.makedirs(os.path.join(base, d))
    try:
        result = userns_call(_probe_in_ns, base)
    except RootlessError as e:
        result = {"kernel_ok": False, "kernel_detail": str(e), "fuse_ok": False, "fuse_detail": str(e)}
    finally:
        from layers.store import remove_trees
        try:
            userns_call(remove_trees, [base])
        except RootlessError:
            pass
    method = "kernel" if result["kernel_ok"] else "fuse" if result["fuse_ok"] else "copy"
    p = Probe(method=method, key=key, **result)
    try:
        atomic.write_json(paths.probe_file, p._asdict())
    except OSError:
        pass
    return p


def _probe_in_ns(base: str) -> dict:
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    j = lambda d: os.path.join(base, d)  # noqa: E731
    out: dict[str, object] = {}
    try:
        syscalls.mount("overlay", j("merged"), "overlay", 0,
                       f"lowerdir={j('lower')},upperdir={j('upper')},workdir={j('work')},userxattr")
        syscalls.umount2(j("merged"), syscalls.MNT_DETACH)
        out.update(kernel_ok=True, kernel_detail="overlay mounts in a user namespace (userxattr)")
    except OSError as e:
        out.update(kernel_ok=False, kernel_detail=f"overlay mount refused: {os.strerror(e.errno or 0)}")
    try:
        _fuse_mount(j("lower"), j("fupper"), j("fwork"), j("merged"))
        syscalls.umount2(j("merged"), syscalls.MNT_DETACH)
        out.update(fuse_ok=True, fuse_detail=f"{proc.which('fuse-overlayfs')} works with /dev/fuse")
    except (OSError, RootlessError) as e:
        out.update(fuse_ok=False, fuse_detail=str(e))
    return out


def _fuse_mount(lowerdir: str, upper: str | None, work: str | None, merged: str,
                id_shift: tuple[str | None, str | None] | None = None, volatile: bool = False) -> None:
    exe = proc.which("fuse-overlayfs")
    if not exe:
        raise HostError("fuse-overlayfs is not installed", "install the fuse-overlayfs package")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise HostError("/dev/fuse is not accessible", "ask an administrator to `chmod 0666 /dev/fuse`")
    opts = f"lowerdir={lowerdir}" + (f",upperdir={upper},workdir={work}" if upper else "")
    if id_shift:
        uids, gids = id_shift
        opts += (f",uidmapping={uids}" if uids else "") + (f",gidmapping={gids}" if gids else "")
    if volatile and upper:
        opts += ",volatile"  # fuse-overlayfs 1.1+: no fsync of the upper layer
    proc.run([exe, "-o", opts, merged], timeout=30)


def choose(configured: str, paths: Paths, userns_call: Callable[..., Any]) -> str:
    if configured in METHODS:
        return configured
    return probe(paths, userns_call).method


def distinct(lowers_top_first: Iterable[str]) -> tuple[str, ...]:
    """Each layer directory once, at its topmost place. Kernel overlayfs refuses a lower directory
    given twice ("too many levels of symbolic links"): two no-op RUNs, or the empty layer many
    images hold several times. Leaving out a lower occurrence changes nothing: the same layer
    above it provides, removes and hides all that it would."""
    return tuple(dict.fromkeys(lowers_top_first))


# ---- in the namespace ------------------------------------------------------------
def mount_rootfs(plan: RootfsPlan) -> None:
    plan = plan._replace(lowers=distinct(plan.lowers))
    if plan.method == "kernel":
        _clear_volatile_mark(plan.work)
        # Relative lower paths keep the option string short (it is limited to a page); a layer
        # of an additional image store is reached from the first layer's directory too.
        layers_dir = os.path.dirname(plan.lowers[0])
        cwd = os.getcwd()
        os.chdir(layers_dir)
        try:
            lower = ":".join(os.path.relpath(p, layers_dir) for p in plan.lowers)
            syscalls.mount("overlay", plan.merged, "overlay", 0,
                           f"lowerdir={lower},upperdir={plan.upper},workdir={plan.work},userxattr"
                           + (",volatile" if plan.volatile else ""))
        finally:
            os.chdir(cwd)
    elif plan.method == "fuse":
        _fuse_mount(":".join(plan.lowers), plan.upper, plan.work, plan.merged, plan.id_shift, plan.volatile)
    elif plan.method == "copy":
        if not os.path.isdir(plan.copy_dir):
            build_copy(plan.lowers, plan.copy_dir)
        syscalls.mount(plan.copy_dir, plan.merged, None, syscalls.MS_BIND | syscalls.MS_REC)
    else:
        raise RootlessError(f"unknown overlay method {plan.method!r}", "use kernel, fuse or copy")


def _clear_volatile_mark(work: str) -> None:
    """A ``volatile`` mount leaves ``work/incompat/volatile`` in its work directory, and the
    kernel refuses every later mount of that layer while it is there (a crash may have lost what
    was never synced). A layer mounted here again was unmounted cleanly (a ``--rm`` container
    ``restart`` starts again): nothing was lost, the mark goes."""
    mark = os.path.join(work, "work", "incompat", "volatile")
    try:
        for name in os.listdir(mark):  # the kernel's ``dirty`` file
            os.unlink(os.path.join(mark, name))
        os.rmdir(mark)
    except FileNotFoundError:
        pass


def mount_readonly(plan: RootfsPlan, target: str) -> None:
    """The container's files, read-only, at ``target``: its writable layer as the top lower layer."""
    lowers = distinct((plan.upper, *plan.lowers))
    if plan.method == "fuse":
        _fuse_mount(":".join(lowers), None, None, target)
        return
    if len(lowers) == 1:  # the same layer twice: overlayfs wants two lower directories without an upper one
        syscalls.mount(lowers[0], target, None, syscalls.MS_BIND)
        f = os.statvfs(target).f_flag  # a remount in a user namespace keeps the flags the kernel locked
        keep = f & (syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC | 1024 | 2048)
        keep |= (1 << 21) if f & 4096 else 0  # ST_RELATIME
        syscalls.mount(None, target, None, syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY | keep)
        return
    syscalls.mount("overlay", target, "overlay", syscalls.MS_RDONLY, f"lowerdir={':'.join(lowers)},userxattr")


def unmount_rootfs(plan: RootfsPlan) -> None:
    try:
        syscalls.umount2(plan.merged, syscalls.MNT_DETACH)
    except OSError:
        pass


def build_copy(lowers_top_first: tuple[str, ...], dest: str) -> None:
    """The ``copy`` method: apply the layers bottom-up into a private directory."""
    tmp = f"{dest}.tmp-{os.getpid()}"
    os.mkdir(tmp, 0o755)
    for layer in reversed(distinct(lowers_top_first)):
        _copy_meta(layer, tmp)
        _merge_dir(layer, tmp)
    os.rename(tmp, dest)


def _remove(path: str) -> None:
    from layers.store import remove_trees
    if os.path.isdir(path) and not os.path.islink(path):
        remove_trees([path])
    elif os.path.lexists(path):
        os.unlink(path)


# The extended attributes an image's files carry (as the unpacker keeps them), but not overlay's own.
_KEEP_XATTRS = ("user.", "security.capability")
_PRIVATE_XATTRS = ("user.overlay.", "trusted.overlay.", "user.fuseoverlayfs.", "user.containers.")


def _copy_meta(src: str, dst: str, st: os.stat_result | None = None) -> None:
    st = st or os.lstat(src)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        _copy_xattrs(src, dst)  # after the chown, which drops a file's capabilities
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(src: str, dst: str) -> None:
    """File capabilities and user.* attributes, as the layer has them (setcap'd ping keeps its caps)."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_KEEP_XATTRS) and not name.startswith(_PRIVATE_XATTRS):
            try:
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
            except OSError:
                pass


def _merge_dir(src: str, dst: str, links: dict | None = None) -> None:
    links = {} if links is None else links
    with os.scandir(src) as it:
        entries = list(it)
    for e in entries:
        s, d = e.path, os.path.join(dst, e.name)
        st = e.stat(follow_symlinks=False)
        if whiteout.is_whiteout_stat(st):
            _remove(d)
            continue
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(d) and (os.path.islink(d) or not os.path.isdir(d)):
                _remove(d)
            if os.path.isdir(d) and whiteout.is_opaque(s):
                _remove(d)
            if not os.path.isdir(d):
                os.mkdir(d, 0o700)
            _merge_dir(s, d, links)
            _copy_meta(s, d, st)
            continue
        _remove(d)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], d)
                continue
            _copy_file(s, d)
            links[key] = d
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(d)
        else:
            continue
        _copy_meta(s, d, st)


def _copy_file(src: str, dst: str) -> None:
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        size = os.fstat(fi.fileno()).st_size
        while size > 0:
            n = os.copy_file_range(fi.fileno(), fo.fileno(), size)
            if n == 0:
                break
            size -= n
