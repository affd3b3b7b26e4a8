"""One validator for every tar member the tool reads (layers, archives, rootfs tarballs)."""

from __future__ import annotations

import posixpath
import tarfile

from rootless.base.errors import InvalidImage

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable


def clean_name(name: str, what: str) -> str:
    """A member name as a relative path with no ``..``; raises for hostile names.

    ``./a/b`` and ``a//b/`` become ``a/b``; the archive root (``.`` or ``./``) becomes ``""``.
    """
    if "\x00" in name:
        raise InvalidImage(f"{what}: member name contains a NUL byte")
    if name.startswith("/"):
        raise InvalidImage(f"{what}: absolute path {name!r} in archive", "the archive is hostile or broken")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidImage(f"{what}: path {name!r} escapes the archive root", "the archive is hostile or broken")
    return "/".join(parts)


def is_device(m: tarfile.TarInfo) -> bool:
    """A character or block device member (what an unpack leaves out, but for whiteouts)."""
    return m.ischr() or m.isblk()


def is_whiteout_device(m: tarfile.TarInfo) -> bool:
    """A character device 0/0: overlay's on-disk form of a whiteout (no real device has it)."""
    return m.ischr() and m.devmajor == 0 and m.devminor == 0


def check_member(m: tarfile.TarInfo, what: str) -> str:
    """Validate one layer member; its cleaned name.

    Device nodes pass (their names are checked like any other): the unpacker skips them, as a
    user namespace cannot create them, but for the overlay whiteout form (:func:`is_whiteout_device`).
    """
    name = clean_name(m.name, what)
    if is_device(m):
        return name
    if m.islnk():
        target = clean_name(m.linkname, what)
        if not target:
            raise InvalidImage(f"{what}: hardlink {name!r} points to the archive root")
    elif m.issym() and (not m.linkname or "\x00" in m.linkname):
        raise InvalidImage(f"{what}: symbolic link {name!r} has an empty or broken target",
                           "the archive is hostile or broken")
    elif not (m.isreg() or m.isdir() or m.issym() or m.isfifo()):
        raise InvalidImage(f"{what}: unsupported member type {m.type!r} for {name!r}")
    return name


def safe_join(root: str, rel: str) -> str:
    """Join a cleaned relative name onto ``root`` (no symlinks followed here)."""
    return posixpath.join(root, rel) if rel else root


def check_archive(members: Iterable[tarfile.TarInfo], what: str) -> None:
    """Check a whole plain archive (``cp``, the API's PUT archive) before anything of it is
    written: every name (:func:`check_member`), no member below a symlink the archive made, and
    hard links only to the archive's own earlier members (not through a symlink). ``members``:
    the archive's TarInfos in order."""
    kinds: dict[str, str] = {}
    for m in members:
        name = check_member(m, what)
        _not_through_link(name, kinds, what)
        if m.islnk():
            target = clean_name(m.linkname, what)
            _not_through_link(target, kinds, what)
            if kinds.get(target) in (None, "dir") or target == name:
                raise InvalidImage(f"{what}: hard link {name!r} to {m.linkname!r}, which the archive did not make",
                                   "an archive's hard links may only name its own earlier members")
        if name:
            kinds[name] = "dir" if m.isdir() else "link" if m.issym() else "file"


def _not_through_link(name: str, kinds: dict[str, str], what: str) -> None:
    parts = name.split("/")
    for i in range(1, len(parts)):
        if kinds.get("/".join(parts[:i])) == "link":
            raise InvalidImage(f"{what}: {name!r} goes through the symbolic link {'/'.join(parts[:i])!r}",
                               "an archive may not write through its own links")
