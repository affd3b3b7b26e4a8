"""A container's files from the host: commit, export, cp (and the API's archive), mount and
unmount. Each takes the Context and a container's record; none prints."""

from __future__ import annotations

import os
import signal

from rootless.base.errors import NotFound, RootlessError, UsageError
from rootless.engine import images
from rootless.runtime import records, state
from rootless.runtime.records import is_running

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord


# ---- files: commit, export, cp ------------------------------------------------------------------
def commit(ctx: Context, rec: ContainerRecord, ref: str | None, author: str | None, message: str | None,
           changes: list[str]) -> str:
    """A new image: the container's image plus its writable layer (pause-free: a running container
    keeps running, and what it writes during the commit may or may not be in the layer)."""
    import json

    from layers import imageconfig, reference
    from layers.archive import MT_LAYER_TAR
    from layers.store import LayerRef
    from rootless.base.clock import now_iso
    from rootless.runtime import fsaccess
    spec = rec["spec"]
    base = ctx.store.resolve(spec["image_id"])
    base_config = ctx.store.config(base)
    container_config = imageconfig.apply_changes(
        imageconfig.container_config_from_spec(spec, base_config.get("config") or {}), changes)
    tags = []
    if ref:
        r = reference.parse(ref)
        tags = [f"{r.repository}:{r.tag or 'latest'}"]
    squash = rec.get("rootfs_method") == "copy"  # no writable layer apart: the whole tree becomes one
    src = ctx.paths.copy_rootfs(rec["id"]) if squash else ctx.paths.upper(rec["id"])
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    tmp = os.path.join(ctx.paths.tmp, f"commit-{rec['id'][:12]}-{os.getpid()}.tar")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            info = ctx.userns_call(fsaccess.tar_layer, src, fd, squash)
        finally:
            os.close(fd)
        with open(tmp, "rb") as f:
            blob, _size, _added = ctx.store.put_blob(f, expected=info["diff_id"], what="commit")
    finally:
        os.unlink(tmp)
    layer = LayerRef(info["diff_id"], blob, MT_LAYER_TAR, info["size"])
    ctx.store.unpack_layers([layer])
    base_for = dict(base_config, rootfs={"type": "layers", "diff_ids": []}, history=[]) if squash else base_config
    config = imageconfig.committed_config(
        base_for, container_config, info["diff_id"], author=author, comment=message, created=now_iso(),
        created_by=f"rootless commit {rec['name']}" + (f" ({message})" if message else ""))
    layers = ([] if squash else images.layer_refs(base)) + [layer]
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    ctx.store.put_blob_bytes(config_bytes)
    image, _ = ctx.store.register(config_bytes, layers, tags, parent=base["id"])
    return image["id"]


def diff(ctx: Context, rec: ContainerRecord) -> list[tuple[str, int]]:
    """``diff``: the container's changes to its image's files, as (path, kind) pairs (Docker's
    kinds: 0 changed, 1 added, 2 deleted), parents first. Nothing for a container never started."""
    from rootless.runtime import fsaccess
    from rootless.runtime.records import rootfs_plan
    plan = rootfs_plan(ctx, rec)
    whole = plan.method == "copy"
    top = plan.copy_dir if whole else plan.upper
    if not os.path.isdir(top):
        return []
    return [(path, kind) for path, kind in ctx.userns_call(fsaccess.changes, top, plan.lowers, whole)]


def export(ctx: Context, rec: ContainerRecord, out_fd: int) -> None:
    from rootless.runtime import fsaccess
    fsaccess.call(ctx, rec, fsaccess.export_tree, out_fd)


class PathNotFound(NotFound):
    """A path missing in a container (the API's 404)."""

    exit_code = 1


class ReadOnlyPath(RootlessError):
    """A destination on a read-only volume or mount (the API's 403)."""

    exit_code = 1


def _cp_mounts(ctx: Context, rec: ContainerRecord) -> tuple:
    """The container's volumes and binds, for ``cp`` to or from it while it is stopped (Docker
    mounts them; ``export`` leaves them out)."""
    from rootless.engine import volumes
    entries = (volumes.plan_entry(ctx, m) for m in rec["spec"].get("mounts", ()))
    return tuple(e for e in entries if e[0] != "tmpfs")  # a tmpfs (or tmpfs volume) holds nothing then


def copy_out(ctx: Context, rec: ContainerRecord, src: str, dest: str, follow_link: bool = False) -> None:
    """``cp CONTAINER:SRC DEST``: into DEST if it is a directory, else as DEST; a symlink SRC is
    copied as a link unless ``follow_link`` (``-L``); DEST ``-``: the tar on stdout."""
    import sys
    import tempfile

    from layers.store import remove_trees
    from layers.unpack import unpack_layer
    from rootless.runtime import fsaccess
    if dest == "-":
        sys.stdout.flush()
        copy_out_tar(ctx, rec, src, sys.stdout.fileno(), follow_link)
        return
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as f:
        fsaccess.call(ctx, rec, fsaccess.tar_tree, src, os.dup(f.fileno()), follow_link, mounts=_cp_mounts(ctx, rec))
        name = os.path.basename(src.rstrip("/")) or "."
        target_dir = dest if os.path.isdir(dest) else os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(target_dir):
            raise RootlessError(f"no such directory: {target_dir}", exit_code=1)
        if name == "." and os.path.isdir(dest):  # SRC/. (or /): its contents into DEST, as Docker does
            f.seek(0)
            unpack_layer(f.fileno(), dest, what="cp", archive=True)  # never through a link DEST holds
            return
        tmp = tempfile.mkdtemp(dir=target_dir, prefix=".rootless-cp-")
        try:
            f.seek(0)
            res = unpack_layer(f.fileno(), tmp, what="cp", archive=True)
            if name == ".":  # SRC/. to a new DEST: DEST is made with its contents
                os.replace(tmp, dest)
                return
            if not os.path.lexists(os.path.join(tmp, name)) and res.get("skipped_devices"):
                raise RootlessError(f"cannot copy {src}: it is a device node, which cannot be made outside the "
                                    "container", f"copy it as a tar instead: rootless cp CONTAINER:{src} -",
                                    exit_code=1)
            if not os.path.lexists(os.path.join(tmp, name)):  # gone while it was copied
                raise RootlessError(f"could not find the file {src} in container", exit_code=1)
            os.replace(os.path.join(tmp, name), os.path.join(dest, name) if os.path.isdir(dest) else dest)
        finally:
            remove_trees([tmp])


def copy_out_tar(ctx: Context, rec: ContainerRecord, src: str, out_fd: int, follow_link: bool = False) -> None:
    """A tar of ``src`` in the container written to ``out_fd`` (``cp CONTAINER:SRC -``, the API's GET
    archive); a device node goes in as its header, as in Docker."""
    from rootless.runtime import fsaccess
    fd = os.dup(out_fd)  # the helper's to close; ours too, so that a pipe sees its end
    try:
        fsaccess.call(ctx, rec, fsaccess.tar_tree, src, fd, follow_link, mounts=_cp_mounts(ctx, rec))
    finally:
        os.close(fd)


def stat_path(ctx: Context, rec: ContainerRecord, path: str) -> dict:
    """Docker's stat of ``path`` in the container (the API's ``X-Docker-Container-Path-Stat``)."""
    from rootless.runtime import fsaccess
    info = fsaccess.call(ctx, rec, fsaccess.stat_path, path, mounts=_cp_mounts(ctx, rec))
    if info is None:
        raise PathNotFound(f"Could not find the file {path} in container {rec['name']}")
    return info


def extract_archive(ctx: Context, rec: ContainerRecord, path: str, tar: int) -> None:
    """``cp - CONTAINER:DIR`` and the API's PUT archive: the tar in the file ``tar`` (an fd, read
    from its start) unpacked into the existing directory ``path`` in the container. The whole
    archive is checked before anything is written; the unpack itself runs in the container's
    root, never through a link. Docker's errors: a missing path (404), not a directory (400)."""
    import tarfile

    from layers import tarsafe
    from layers.unpack import open_decompressed
    from rootless.base.errors import InvalidImage
    from rootless.runtime import fsaccess
    os.lseek(tar, 0, os.SEEK_SET)
    try:  # read as the unpacker will: any compression it takes
        with os.fdopen(os.dup(tar), "rb") as f, tarfile.open(fileobj=open_decompressed(f), mode="r|") as tf:
            tarsafe.check_archive(tf, "the archive")
    except InvalidImage as e:
        raise UsageError(e.message, e.hint, exit_code=1) from None
    except Exception as e:  # noqa: BLE001 - tarfile, gzip, bz2, lzma and zstandard each have their own
        if not isinstance(e, (tarfile.TarError, EOFError, OSError, ValueError)) \
                and type(e).__name__ not in ("ZstdError", "LZMAError", "error"):
            raise
        raise UsageError(f"the archive cannot be read: {e}", "send a tar stream", exit_code=1) from None
    os.lseek(tar, 0, os.SEEK_SET)
    fd = os.dup(tar)
    try:
        res = fsaccess.call(ctx, rec, fsaccess.extract_at, path, fd, writable=True, mounts=_cp_mounts(ctx, rec))
    finally:
        os.close(fd)
    if res.get("missing"):
        raise PathNotFound(f"Could not find the file {path} in container {rec['name']}")
    if res.get("not_dir"):
        raise UsageError(f"extraction point is not a directory: {path}", "give a directory as the destination",
                         exit_code=1)
    if res.get("read_only"):
        raise ReadOnlyPath(f"cannot copy to {path}: it is on a read-only volume or mount")
    if res.get("refused"):
        raise UsageError(res["refused"], exit_code=1)


def copy_in(ctx: Context, rec: ContainerRecord, src: str, dest: str, archive: bool = False) -> None:
    """``cp SRC CONTAINER:DEST``: files become the container root's (Docker's rule), or keep their
    numeric owners with ``archive`` (``-a``); SRC ``-``: a tar read from stdin, unpacked into the
    directory DEST as it is (owners kept)."""
    import sys
    import tarfile
    import tempfile

    from rootless.runtime import fsaccess
    if src == "-":
        os.makedirs(ctx.paths.tmp, exist_ok=True)
        with tempfile.TemporaryFile(dir=ctx.paths.tmp) as f:
            try:
                while chunk := sys.stdin.buffer.read(1 << 20):
                    f.write(chunk)
                f.flush()
            except OSError as e:  # a full disk: one line naming the store
                from rootless.base.errors import from_oserror
                raise from_oserror(f"keep the archive from stdin in {ctx.paths.tmp}", e) from None
            extract_archive(ctx, rec, dest, f.fileno())
        return
    if not os.path.lexists(src):
        raise RootlessError(f"no such file or directory: {src}", exit_code=1)
    name = os.path.basename(os.path.abspath(src))

    def as_root(info):
        if not archive:
            info.uid = info.gid = 0
        info.uname = info.gname = ""  # by number, never by a name the container's passwd may give another
        return None if info.ischr() or info.isblk() else info

    os.makedirs(ctx.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(src, arcname=name, filter=as_root)
        f.flush()
        f.seek(0)
        fsaccess.call(ctx, rec, fsaccess.untar_into, dest, os.dup(f.fileno()), name, writable=True,
                      mounts=_cp_mounts(ctx, rec))


# ---- mount / unmount: the root filesystem for chroot-like access from the host --------------------
def mount(ctx: Context, rec: ContainerRecord) -> str:
    """A path to the container's merged root filesystem, readable from the host side.

    A running container's is seen through its keeper (``/proc/KEEPER/root``); a stopped one is
    mounted by a small holder process that keeps it until ``unmount``."""
    st = rec["state"]
    if is_running(rec):
        return f"/proc/{st['keeper']}/root{ctx.paths.merged(rec['id'])}"
    holder = st.get("mounted_by", 0)
    if records.alive(holder, st.get("mounted_by_start", "")):
        return f"/proc/{holder}/root{ctx.paths.merged(rec['id'])}"
    from rootless.base import userns
    from rootless.runtime import fsaccess
    plan = records.rootfs_plan(ctx, rec)
    os.makedirs(plan.merged, exist_ok=True)
    pid, ch = userns.fork_into_userns(ctx.mapping, lambda c: fsaccess.hold_mount(plan, c))
    try:
        ch.expect("mounted")
    except BaseException:
        userns.reap(pid)
        raise
    finally:
        ch.close()
    state.update_state(ctx.paths, rec["id"], mounted_by=pid, mounted_by_start=state.pid_start_time(pid))
    return f"/proc/{pid}/root{plan.merged}"


def unmount(ctx: Context, rec: ContainerRecord) -> None:
    st = rec["state"]
    holder = st.get("mounted_by", 0)
    if records.alive(holder, st.get("mounted_by_start", "")):
        os.kill(holder, signal.SIGTERM)
        records.wait_for_pid(holder, 10)
    state.update_state(ctx.paths, rec["id"], mounted_by=0, mounted_by_start="")
