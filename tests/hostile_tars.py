"""Hostile archives for ``cp`` into a container and the API's PUT archive (issue 22), shared by the
unit tests of the unpacker and the end-to-end tests: each aims at files of the user outside the
destination (a "home" given by the test), through symbolic links, hard links, ``..`` or an
absolute name, and each names what the unpack must do with it."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

# What a safe unpack does with each archive: "refused" (nothing written) or "contained" (the
# archive is unpacked, but the later member replaces the earlier link instead of going through it).
REFUSED, CONTAINED = "refused", "contained"


def _entry(name: str, kind: bytes, data: bytes = b"", linkname: str = "", mode: int = 0o644) -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, linkname, 1767225600
    info.uid = info.gid = 0
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def tar_of(*members: tuple) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def home_with_victims(home: Path) -> dict[str, tuple]:
    """A stand-in for the user's home: ``victim.txt`` (0644), ``victim-dir`` (0700) and
    ``secret.txt`` (0600); what :func:`snapshot` should keep finding there."""
    home.mkdir(exist_ok=True)
    (home / "victim.txt").write_text("original\n")
    os.chmod(home / "victim.txt", 0o644)
    (home / "victim-dir").mkdir(exist_ok=True)
    os.chmod(home / "victim-dir", 0o700)
    (home / "secret.txt").write_text("secret\n")
    os.chmod(home / "secret.txt", 0o600)
    return snapshot(home)


def snapshot(home: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(home.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(home))] = (st.st_mode, st.st_size, p.read_bytes() if p.is_file() else b"")
    return out


def hostile(home: Path) -> dict[str, tuple[bytes, str, str]]:
    """name -> (tar bytes, expected outcome, a member's name that must not be in the destination
    when refused / must be a plain file when contained)."""
    victim, vdir, secret = home / "victim.txt", home / "victim-dir", home / "secret.txt"
    return {
        "symlink-then-file": (tar_of(_entry("link", tarfile.SYMTYPE, linkname=str(victim), mode=0o777),
                                     _entry("link", tarfile.REGTYPE, b"pwned\n")), CONTAINED, "link"),
        "dir-through-symlink": (tar_of(_entry("d", tarfile.SYMTYPE, linkname=str(vdir), mode=0o777),
                                       _entry("d", tarfile.DIRTYPE, mode=0o777)), CONTAINED, "d"),
        "file-through-symlink": (tar_of(_entry("home", tarfile.SYMTYPE, linkname=str(home), mode=0o777),
                                        _entry("home/victim.txt", tarfile.REGTYPE, b"pwned\n")), REFUSED, "home"),
        "hardlink-through-symlink": (tar_of(_entry("home", tarfile.SYMTYPE, linkname=str(home), mode=0o777),
                                            _entry("stolen", tarfile.LNKTYPE, linkname="home/secret.txt")),
                                     REFUSED, "stolen"),
        "hardlink-outside": (tar_of(_entry("stolen", tarfile.LNKTYPE, linkname="../../../../../" + str(secret))),
                             REFUSED, "stolen"),
        "hardlink-absolute": (tar_of(_entry("stolen", tarfile.LNKTYPE, linkname=str(secret))), REFUSED, "stolen"),
        "hardlink-not-in-archive": (tar_of(_entry("stolen", tarfile.LNKTYPE, linkname="etc/passwd")),
                                    REFUSED, "stolen"),
        "dotdot": (tar_of(_entry("ok", tarfile.REGTYPE, b"fine\n"),
                          _entry("../../../../../../../../" + str(victim), tarfile.REGTYPE, b"pwned\n")),
                   REFUSED, "ok"),
        "absolute": (tar_of(_entry("ok", tarfile.REGTYPE, b"fine\n"),
                            _entry(str(victim), tarfile.REGTYPE, b"pwned\n")), REFUSED, "ok"),
    }


SPARSE_SIZE = 1 << 30  # apparent size
SPARSE_OFFSET = 512 << 20  # where its one data block is
SPARSE_DATA = b"data in the middle\n" * 200


def sparse_tar(workdir: Path, fmt: str = "gnu") -> bytes:
    """A tar (GNU tar, ``--sparse``) holding ``sparse``: 1 GiB apparent, one data block."""
    workdir.mkdir(exist_ok=True)
    src = workdir / "sparse"
    with open(src, "wb") as f:
        f.truncate(SPARSE_SIZE)
        f.seek(SPARSE_OFFSET)
        f.write(SPARSE_DATA)
    out = workdir / f"sparse-{fmt}.tar"
    subprocess.run(["tar", "--sparse", f"--format={fmt}", "-cf", str(out), "-C", str(workdir), "sparse"],
                   check=True)
    src.unlink()
    return out.read_bytes()
