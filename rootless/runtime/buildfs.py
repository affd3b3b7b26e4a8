"""A build's file steps (``COPY``, ``ADD``, ``WORKDIR``) on a stage's root filesystem.

Runs as root of the user namespace, in a helper with its own mount namespace:
the stage's layers and a fresh writable layer are mounted (the same overlay as
a container's), the operations the builder planned are applied inside that
root (every container path through :func:`rootless.runtime.rootfs.resolve`, so
a symlink in the image, like Debian's ``/bin -> usr/bin``, is followed within
the root), and the writable layer becomes a layer tar on a descriptor opened
by the caller. Host paths (the build context) stay visible: nothing is pivoted.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import stat
import tarfile  # noqa: F401 - imported before entering the namespace

from layers import commit as _commit  # noqa: F401 - the same
from layers import overlay
from layers import unpack as _unpack  # noqa: F401 - the same
from rootless.base import syscalls
from rootless.base.errors import RootlessError
from rootless.runtime import rootfs, users


def files_step(plan, ops: list[dict], src_plans: dict, views: dict, out_fd: int) -> dict:
    """Apply ``ops`` to the root ``plan`` mounts at ``views["root"]``; write the writable layer to
    ``out_fd`` as a layer tar. ``src_plans``: op index -> a read-only RootfsPlan (``COPY --from``),
    mounted at ``views[index]``. Returns the layer's diff id and size, and whether the writable
    layer was settled into the tar's unpacking (:func:`layers.commit.settle_upper`), or
    ``{"empty": True}``."""
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    root = views["root"]
    overlay.mount_rootfs(plan._replace(merged=root))
    mounted = [root]
    try:
        for i, src in src_plans.items():
            overlay.mount_readonly(src, views[i])
            mounted.append(views[i])
        owner_cache: dict = {}
        for i, op in enumerate(ops):
            _apply(root, op, views.get(i), owner_cache)
    finally:
        for m in reversed(mounted):
            try:
                syscalls.umount2(m, syscalls.MNT_DETACH)
            except OSError:
                pass
    if not os.listdir(plan.upper) and all(op["op"] == "mkdir" for op in ops):
        os.close(out_fd)
        return {"empty": True}
    from layers.commit import layer_from_upper, settle_upper
    with os.fdopen(out_fd, "wb") as out:
        info = layer_from_upper(plan.upper, out)
    # the kernel overlay's writable layer, settled, is the stored layer itself (see engine.build)
    info["settled"] = plan.method == "kernel" and settle_upper(plan.upper)
    return info


def _apply(root: str, op: dict, src_root: str | None, owners: dict) -> None:
    kind = op["op"]
    if kind == "mkdir":
        _mkdirs(root, op["dest"], (0, 0))
        return
    ids = _owner(root, op.get("chown"), owners)
    if kind == "copy":
        if op["is_dir"]:
            dest = _mkdirs(root, op["dest"], ids or (0, 0))
            done = {""}
            for rel in op["entries"][1:]:
                # an excluded directory's re-included entry ("!build/keep") still needs its parents
                todo = []
                parent = os.path.dirname(rel)
                while parent not in done:
                    todo.append(parent)
                    parent = os.path.dirname(parent)
                for p in [*reversed(todo), rel]:
                    _copy_entry(os.path.join(op["path"], p), os.path.join(dest, p), ids or (0, 0), op["chmod"])
                    done.add(p)
        else:
            _copy_entry(op["path"], _target(root, op, op["name"]), ids or (0, 0), op["chmod"])
    elif kind == "copy_from":
        assert src_root is not None  # files_step gives every COPY --from its view
        _copy_from(root, src_root, op, ids)
    elif kind in ("inline", "url"):
        target = _target(root, op, op["name"])
        _replace_path(target)
        with open(target, "w" if kind == "inline" else "wb") as f:
            if kind == "inline":
                f.write(op["content"])
            else:
                with open(op["path"], "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
        mode = op["chmod"] if op["chmod"] is not None else (0o644 if kind == "inline" else 0o600)
        os.chmod(target, mode)
        _chown(target, ids or (0, 0))
        if kind == "url" and op.get("mtime"):
            os.utime(target, (op["mtime"], op["mtime"]))
    elif kind == "extract":
        dest = _mkdirs(root, op["dest"], ids or (0, 0))
        from layers.unpack import unpack_layer
        unpack_layer(op["path"], dest, what=f"ADD {os.path.basename(op['path'])}", archive=True)  # any compression
    else:  # pragma: no cover - the builder makes only the kinds above
        raise RootlessError(f"unknown build file operation {kind!r}")


def _target(root: str, op: dict, name: str) -> str:
    """Where a single source goes: into ``dest`` when it is (or must be) a directory, else ``dest``."""
    dest = rootfs.resolve(root, op["dest"])
    if op["dest_dir"] or os.path.isdir(dest):
        _mkdirs(root, op["dest"], (0, 0))
        return os.path.join(rootfs.resolve(root, op["dest"]), name)
    parent = os.path.dirname(op["dest"].rstrip("/")) or "/"
    _mkdirs(root, parent, (0, 0))
    return os.path.join(rootfs.resolve(root, parent), os.path.basename(op["dest"].rstrip("/")))


def _mkdirs(root: str, path: str, ids: tuple[int, int]) -> str:
    """``mkdir -p`` inside the root; new directories are 0755 and owned by ``ids``."""
    done = "/"
    for part in [p for p in path.split("/") if p]:
        done = os.path.join(done, part)
        host = rootfs.resolve(root, done)
        if not os.path.isdir(host):
            if os.path.lexists(host):
                raise RootlessError(f"cannot create directory {done}: a file of that name exists in the image")
            os.mkdir(host, 0o755)
            os.chmod(host, 0o755)
            _chown(host, ids)
    return rootfs.resolve(root, path)


def _replace_path(target: str) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise RootlessError(f"cannot copy to {target}: it is a directory in the image")
    os.unlink(target)


def _copy_entry(src: str, dst: str, ids: tuple[int, int] | None, chmod: int | None) -> None:
    """One file, directory or symlink; ``ids`` None keeps the source's owner."""
    st = os.lstat(src)
    mode = stat.S_IMODE(st.st_mode) if chmod is None else chmod
    owner = ids if ids is not None else (st.st_uid, st.st_gid)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst) or os.path.islink(dst):
            _replace_path(dst)
            os.mkdir(dst, 0o700)
        os.chmod(dst, mode)
        _chown(dst, owner)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    _replace_path(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        _chown(dst, owner)
        return
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    else:
        return  # sockets and device nodes are not copied
    _chown(dst, owner)
    os.chmod(dst, mode)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_from(root: str, src_root: str, op: dict, ids) -> None:
    """``COPY --from``: paths (globs too) inside the other root; owners kept unless --chown."""
    found = []
    for pattern in op["paths"]:
        matches = _glob_in(src_root, pattern)
        if not matches:
            raise RootlessError(f"COPY --from: {pattern}: no such file or directory in the source image")
        found += matches
    for host, name in found:
        if os.path.isdir(host) and not os.path.islink(host):
            dest = _mkdirs(root, op["dest"], ids or (0, 0))
            _copy_tree(host, dest, ids, op["chmod"])
        else:
            _copy_entry(host, _target(root, op, name), ids, op["chmod"])


def _copy_tree(src: str, dest: str, ids, chmod) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        for d in sorted(dirnames):
            s = os.path.join(dirpath, d)
            _copy_entry(s, os.path.normpath(os.path.join(dest, rel, d)), ids, chmod)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for f in sorted(filenames):
            _copy_entry(os.path.join(dirpath, f), os.path.normpath(os.path.join(dest, rel, f)), ids, chmod)


def _glob_in(root: str, pattern: str) -> list[tuple[str, str]]:
    """(host path, name) of what ``pattern`` names inside ``root``; the last part may be a glob."""
    parts = [p for p in pattern.split("/") if p and p != "."]
    if not parts:
        return [(root, ".")]
    head = "/" + "/".join(parts[:-1])
    last = parts[-1]
    base = rootfs.resolve(root, head)
    if not any(c in last for c in "*?["):
        path = rootfs.resolve(root, pattern.rstrip("/")) if pattern.endswith("/") else os.path.join(base, last)
        if last == ".." or not os.path.lexists(path):
            return []
        if os.path.islink(path):  # the source itself is followed, within the root
            path = rootfs.resolve(root, "/" + "/".join(parts))
        return [(path, last)] if os.path.lexists(path) else []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    return [(os.path.join(base, n), n) for n in names if fnmatch.fnmatchcase(n, last.replace("[^", "[!"))]


def _owner(root: str, spec: str | None, cache: dict) -> tuple[int, int] | None:
    """``--chown USER[:GROUP]`` as ids, names looked up in the image (Docker: no group given means
    the gid is the uid's number)."""
    if spec is None:
        return None
    if spec in cache:
        return cache[spec]
    user_part, _, group_part = spec.partition(":")

    def read(name: str) -> str:  # never blocks on a FIFO the image put there
        from rootless.base.atomic import read_text
        return read_text(rootfs.resolve(root, f"/etc/{name}"))
    passwd, group = read("passwd"), read("group")
    uid = users.resolve(user_part, passwd, group).uid
    gid = users.resolve(f"0:{group_part}", passwd, group).gid if group_part else uid
    cache[spec] = (uid, gid)
    return uid, gid


def _chown(path: str, ids: tuple[int, int]) -> None:
    try:
        os.chown(path, *ids, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise RootlessError(f"cannot give {path.rsplit('/', 1)[-1]} the owner {ids[0]}:{ids[1]}: "
                                "that id is not mapped into the user namespace",
                                "add a subordinate id range for your user to /etc/subuid and /etc/subgid") from None
        raise


# ---- content digests (the build cache keys on what a step reads, not on how it was made) ----------
def digest_selection(plan, view: str, paths: list[str]) -> str:
    """The content digest of what ``COPY --from`` would take from the read-only root ``plan``
    (mounted at ``view``): each match of ``paths`` (globs too), walked, by names, types, modes,
    owners, link targets, extended attributes and contents; times do not count (as BuildKit's
    checksums). A pattern that matches nothing counts as such (the copy then fails as ever)."""
    import hashlib
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    overlay.mount_readonly(plan, view)
    h = hashlib.sha256()
    try:
        for pattern in paths:
            h.update(b"\0pattern\0" + pattern.encode("utf-8", "surrogateescape"))
            matches = _glob_in(view, pattern)
            if not matches:
                h.update(b"\0missing")
            for host, name in matches:
                _digest_walk(h, host, name)
    finally:
        try:
            syscalls.umount2(view, syscalls.MNT_DETACH)
        except OSError:
            pass
    return "sha256:" + h.hexdigest()


def digest_tree(path: str) -> str:
    """The content digest of an unpacked layer (whiteouts and opaque directories count as what
    they are); times do not count."""
    import hashlib
    h = hashlib.sha256()
    _digest_walk(h, path, ".")
    return "sha256:" + h.hexdigest()


def _digest_walk(h, top: str, name: str) -> None:
    _digest_entry(h, top, name)
    if not os.path.isdir(top) or os.path.islink(top):
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel = os.path.relpath(dirpath, top)
        for n in dirnames + sorted(filenames):
            _digest_entry(h, os.path.join(dirpath, n), os.path.normpath(os.path.join(name, rel, n)))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _digest_entry(h, path: str, name: str) -> None:
    import hashlib
    st = os.lstat(path)
    fields = [name.encode("utf-8", "surrogateescape"), b"%o" % st.st_mode, b"%d:%d" % (st.st_uid, st.st_gid)]
    if stat.S_ISLNK(st.st_mode):
        fields.append(os.fsencode(os.readlink(path)))
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        fields.append(b"%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    elif stat.S_ISREG(st.st_mode):
        fh = hashlib.sha256()
        with open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                fh.update(chunk)
        fields.append(fh.hexdigest().encode())
    try:
        attrs = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        attrs = []
    for a in attrs:
        try:
            fields.append(a.encode() + b"=" + os.getxattr(path, a, follow_symlinks=False))
        except OSError:
            continue
    for field in fields:
        h.update(b"%d:" % len(field) + field)
    h.update(b"\n")
