"""``rootless bundle IMAGE DIR``: an OCI bundle (``DIR/config.json`` and ``DIR/rootfs/``) from an
image of the store, pulled first when missing (as ``run`` does), for any OCI runtime.

The rootfs is the image's unpacked layers (the store's trees, own or of an additional store)
merged bottom-up with their whiteouts applied (``layers.overlay.build_copy``, the ``copy``
method's merge), as root of the user namespace: every file keeps the owner it has in the store,
the image's owner through the user's id map (uid 0 is the user, uid N the N-th subordinate id),
so a runtime with the same map (the config's ``linux.uidMappings``) shows them as in the image.
Device nodes are left out as the unpacker leaves them; setuid bits are kept.

Everything is written into a temporary sibling of DIR and renamed into place: a failure leaves
nothing. Files of subordinate ids need the user namespace to be removed: ``rootless unshare rm
-rf DIR``.
"""

from __future__ import annotations

import os
import time

from rootless.base.errors import Conflict, RootlessError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from rootless.engine.context import Context


def _check_dest(dest: str, force: bool) -> bool:
    """Whether ``dest`` exists (an empty directory, or anything with ``force``); refuses the rest."""
    parent = os.path.dirname(dest)
    if os.path.islink(dest):
        raise UsageError(f"cannot write the bundle {dest}: it is a symbolic link", "give the directory it points to")
    if os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK):
        raise RootlessError(f"cannot write the bundle {dest}: {parent} is not writable by you",
                            "give a directory in a place you can write")
    try:
        names = os.listdir(dest)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(dest)):
            raise UsageError(f"cannot write the bundle {dest}: {os.path.dirname(dest)} does not exist",
                             "create the parent directory first") from None
        return False
    except NotADirectoryError:
        raise UsageError(f"cannot write the bundle {dest}: it exists and is not a directory",
                         "give a directory path") from None
    except OSError as e:
        raise RootlessError(f"cannot write the bundle {dest}: {e.strerror}") from None
    if names and not force:
        raise Conflict(f"bundle directory {dest} exists and is not empty",
                       "give another directory, or --force to replace it")
    return True


def bundle(ctx: Context, image: str, directory: str, force: bool = False, network: str = "host",
           hostname: str = "", pull: str = "missing", command: Sequence[str] = ()) -> str:
    """Write the bundle; the directory written."""
    import resource

    from rootless.base import atomic
    from rootless.engine import images
    from rootless.runtime import bundlespec
    if network not in bundlespec.NETWORKS:
        raise UsageError(f"--network {network!r} is not supported for a bundle", "use host (the default) or none")
    dest = os.path.abspath(directory)
    if dest == "/":
        raise UsageError("cannot write a bundle over /", "give a directory of its own")
    exists = _check_dest(dest, force)
    rec = images.ensure_image(ctx, image, pull)
    image_config = ctx.store.config(rec)
    bundlespec.process_args(image_config.get("config") or {}, command)  # no command: said before any work
    ctx.store.unpack_layers(images.layer_refs(rec))
    lowers = tuple(ctx.store.layer_dir(lr["diff_id"]) for lr in reversed(rec["layers"]))
    parent, base = os.path.split(dest)
    tmp = os.path.join(parent, f".{base}.bundle-{os.getpid()}-{time.monotonic_ns()}")
    old = None
    try:
        etc = ctx.userns_call(_write_rootfs, lowers, tmp)
        user = _mapped_user(ctx, bundlespec.process_user(image_config.get("config") or {}, etc["passwd"],
                                                         etc["group"]), (image_config.get("config") or {}).get("User"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = bundlespec.NOFILE if hard == resource.RLIM_INFINITY else min(bundlespec.NOFILE, hard)
        digests = rec.get("repo_digests") or []
        cfg = bundlespec.config(image_config, ctx.mapping, user, ref_name=_ref_name(image, rec),
                                image_id=rec["id"], digest=digests[0].partition("@")[2] if digests else "",
                                hostname=hostname, network=network, nofile=nofile, command=command)
        atomic.write_json(os.path.join(tmp, "config.json"), cfg)
        if exists:
            old = os.path.join(parent, f".{base}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except BaseException:
            if old:
                os.rename(old, dest)
                old = None
            raise
    except BaseException:
        from layers.store import remove_trees
        if os.path.lexists(tmp):
            ctx.userns_call(remove_trees, [tmp])
        raise
    if old:
        from layers.store import remove_trees
        ctx.userns_call(remove_trees, [old])
    return dest


def _mapped_user(ctx: Context, user, spec: str | None):
    """The user as the id map can have it: in a single-uid map only root exists (the image's user
    becomes root, with a warning, as ``run`` does); with subordinate ids one beyond them is refused."""
    if ctx.mapping.mode == "single":
        if (user.uid, user.gid) != (0, 0):
            ctx.warn(f"user {spec!r} (uid {user.uid}) does not exist in a single-uid user namespace: the bundle "
                     "runs as root of the container instead (configure /etc/subuid to fix)")
        return user._replace(uid=0, gid=0, groups=(0,))
    for what, n, ranges in (("uid", user.uid, ctx.mapping.uids), ("gid", user.gid, ctx.mapping.gids)):
        mapped = sum(r.count for r in ranges)
        if n >= mapped:
            raise UsageError(f"the image's user {spec!r}: {what} {n} is not mapped in your user namespace "
                             f"(0 to {mapped - 1})", f"give your user a larger range in /etc/sub{what}")
    return user


def _ref_name(given: str, rec: dict) -> str:
    """The reference the bundle was made from, as a full name (``docker.io/library/busybox:latest``)
    when it names a tag of the image, else the image's first tag, else its id."""
    from layers import reference
    try:
        ref = str(reference.parse(given))
        if ref in rec.get("repo_tags", []):
            return ref
    except RootlessError:
        pass
    return (rec.get("repo_tags") or [rec["id"]])[0]


# ---- as root of the user namespace --------------------------------------------------
def _write_rootfs(lowers: tuple[str, ...], tmp: str) -> dict:
    """``tmp/rootfs`` from the layers (top first); the rootfs' /etc/passwd and /etc/group texts."""
    from layers.overlay import build_copy
    from rootless.base import atomic, inroot
    rootfs = os.path.join(tmp, "rootfs")
    try:
        os.mkdir(tmp, 0o700)
        build_copy(lowers, rootfs)
        os.chmod(tmp, 0o755)
    except OSError as e:  # a full disk, a layer unreadable: one line (the caller removes tmp)
        raise RootlessError(f"cannot write the bundle's rootfs: {e.filename or tmp}: {e.strerror}",
                            "make room there or give another directory") from None
    return {name: atomic.read_text(inroot.resolve(rootfs, f"/etc/{name}")) for name in ("passwd", "group")}
