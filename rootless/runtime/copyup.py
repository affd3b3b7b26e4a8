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
    for name in os.listdir(src):
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            _copy_entry(name, st, src, dst)
        except OSError as e:
            if e.errno not in _SWAPPED:
                raise  # a full disk, an I/O error: the start fails, saying so


def _copy_entry(name: str, st: os.stat_result, src: int, dst: int) -> None:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        try:
            os.mkdir(name, 0o700, dir_fd=dst)
        except FileExistsError:
            pass  # made meanwhile in the shared volume: used only if it is still a directory
        sub_dst = _open_dir(name, dst)
        if sub_dst is None:
            return
        try:
            sub_src = os.open(name, _DIR, dir_fd=src)
            try:
                _copy_dir(sub_src, sub_dst)
            finally:
                os.close(sub_src)
            _own(sub_dst, st)
        finally:
            os.close(sub_dst)
    elif stat.S_ISREG(mode):
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
    a symlink anywhere (a link's own owner changes)."""
    fd = _open_dir(top)
    if fd is None:
        return
    try:
        os.fchown(fd, *owner)
        _chown_dir(fd, owner)
    finally:
        os.close(fd)


def _chown_dir(fd: int, owner: tuple[int, int]) -> None:
    for name in os.listdir(fd):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            sub = _open_dir(name, fd)
            if sub is None:
                continue  # swapped for a link or removed meanwhile
            try:
                os.fchown(sub, *owner)
                _chown_dir(sub, owner)
            finally:
                os.close(sub)
        else:
            try:
                os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
