"""A volume's first contents and ``:U``'s chown, through directory descriptors only.

A volume may be shared with a running container that changes it while this code works in it,
on host paths, before ``pivot_root``: that container can swap any directory made here for a
symlink to anywhere the user may write. So nothing here follows a link the volume holds: every
name is opened relative to an open directory with ``O_NOFOLLOW`` (``O_EXCL`` for new files),
owners, modes and times are set on the open descriptors, and an entry found swapped is left
alone. The source is the image's directory in a view of the container's root without its
mounts (``/proc``, ``/dev``, other volumes): what the image holds, never a live filesystem.
"""

from __future__ import annotations

import errno
import os
import stat

from rootless.base.errors import RootlessError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SWAPPED = (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EEXIST, errno.ENXIO)


def _open_dir(name: str, dir_fd: int | None = None) -> int | None:
    """The directory ``name`` (never through a symlink in its last component), or None."""
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _SWAPPED:
            return None
        raise


def fill(image_dir: str, volume: str) -> bool:
    """Copy the image's directory ``image_dir`` into the directory ``volume`` if the volume is
    empty and the image's directory is not (Docker's copy-up): owners, modes (setuid kept),
    times, symlinks as symlinks, FIFOs; no device nodes or sockets. True if it copied."""
    src = _open_dir(image_dir)
    if src is None:
        return False
    try:
        dst = _open_dir(volume)
        if dst is None:
            return False
        try:
            if os.listdir(dst) or not os.listdir(src):
                return False
            _copy_dir(src, dst)
            _own(dst, os.fstat(src))
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_dir(src: int, dst: int) -> None:
    """The tree below ``src`` into ``dst``, depth first without recursion and holding one
    descriptor per tree (a tree of any depth): down by name, back up by ``..``, checked to be
    the directory left (one swapped meanwhile in the volume stops the copy, in one line)."""
    src, dst = os.dup(src), os.dup(dst)
    levels: list[tuple[tuple[int, int], tuple[int, int], list[str], os.stat_result | None]] = [
        (_ident(src), _ident(dst), _names(src), None)]
    try:
        while levels:
            src_id, dst_id, names, st_dir = levels[-1]
            if not names:
                levels.pop()
                if st_dir is not None:
                    _own(dst, st_dir)
                if levels:
                    src = _up(src, levels[-1][0])
                    dst = _up(dst, levels[-1][1])
                continue
            name = names.pop()
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            try:
                if not stat.S_ISDIR(st.st_mode):
                    _copy_entry(name, st, src, dst)
                    continue
                try:
                    os.mkdir(name, 0o700, dir_fd=dst)
                except FileExistsError:
                    pass  # made meanwhile in the shared volume: used only if it is still a directory
                sub_dst = _open_dir(name, dst)
                if sub_dst is None:
                    continue
                sub_src = os.open(name, _DIR, dir_fd=src)
                os.close(src)
                os.close(dst)
                src, dst = sub_src, sub_dst
                levels.append((_ident(src), _ident(dst), _names(src), st))
            except OSError as e:
                if e.errno not in _SWAPPED:
                    raise  # a full disk, an I/O error: the start fails, saying so
    finally:
        os.close(src)
        os.close(dst)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _names(fd: int) -> list[str]:
    """A directory's names, in the order they are to be taken (``pop`` from the end)."""
    return sorted(os.listdir(fd), reverse=True)


def _up(fd: int, expected: tuple[int, int]) -> int:
    """The directory above ``fd`` (then closed), if it is still the one come down from; else an error."""
    try:
        parent = os.open("..", _DIR, dir_fd=fd)  # ENOENT: the directory was removed meanwhile
    except FileNotFoundError:
        parent = None
    if parent is None or _ident(parent) != expected:
        if parent is not None:
            os.close(parent)
        raise RootlessError("a directory of the volume was moved while the volume was being filled or chowned",
                            "start the container again (another container is changing the volume)")
    os.close(fd)
    return parent


def _copy_entry(name: str, st: os.stat_result, src: int, dst: int) -> None:
    """One entry that is not a directory."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
        try:
            fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                           dir_fd=dst)
            try:
                _copy_data(fin, fout, st.st_size)
                _copy_xattrs(fin, fout)
                _own(fout, st)
            finally:
                os.close(fout)
        finally:
            os.close(fin)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        _chown(name, st, dst)  # the link itself (fchownat with AT_SYMLINK_NOFOLLOW)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(name, 0o600, dir_fd=dst)
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                _own(fd, st)
        finally:
            os.close(fd)
    # device nodes and sockets: left out (a user namespace cannot make the first, the second is no file)


def _copy_data(fin: int, fout: int, size: int) -> None:
    left = size
    while left > 0:
        n = os.sendfile(fout, fin, None, min(left, 1 << 30))
        if n == 0:
            break  # the file shrank meanwhile
        left -= n


def _copy_xattrs(fin: int, fout: int) -> None:
    """What ``shutil.copy2`` copied: the extended attributes the user namespace may set."""
    try:
        names = os.listxattr(fin)
    except OSError:
        return
    for key in names:
        try:
            os.setxattr(fout, key, os.getxattr(fin, key))
        except OSError:
            pass


def _chown(name: str, st: os.stat_result, dir_fd: int) -> None:
    try:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        if e.errno != errno.EINVAL:  # an owner the user namespace does not map: stays the user's
            raise


def _own(fd: int, st: os.stat_result) -> None:
    """Owner, then mode (a chown clears setuid and setgid), then times, on an open descriptor."""
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def chown_tree(top: str, owner: tuple[int, int]) -> None:
    """``:U``: the directory ``top`` and everything in it become ``owner``'s, without following
    a symlink anywhere (a link's own owner changes); as :func:`_copy_dir`, without recursion."""
    fd = _open_dir(top)
    if fd is None:
        return
    try:
        os.fchown(fd, *owner)
        levels = [(_ident(fd), _names(fd))]
        while levels:
            names = levels[-1][1]
            if not names:
                levels.pop()
                if levels:
                    fd = _up(fd, levels[-1][0])
                continue
            name = names.pop()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                try:
                    os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    pass
                continue
            sub = _open_dir(name, fd)
            if sub is None:
                continue  # swapped for a link or removed meanwhile
            os.fchown(sub, *owner)
            os.close(fd)
            fd = sub
            levels.append((_ident(fd), _names(fd)))
    finally:
        os.close(fd)
