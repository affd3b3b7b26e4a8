"""The files of a container's log, as Docker's json-file rotates them: ``PATH`` is written,
``PATH.1`` ... ``PATH.{max_file - 1}`` are the older ones (the higher the number, the older)."""

from __future__ import annotations

import os


def files(path: str) -> list[str]:
    """A log's files, oldest first: the rotated ``PATH.N`` ... ``PATH.1``, then ``PATH``."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return [path]
    prefix = base + "."
    numbers = sorted((int(n[len(prefix):]) for n in names
                      if n.startswith(prefix) and n[len(prefix):].isascii() and n[len(prefix):].isdigit()),
                     reverse=True)
    return [f"{path}.{n}" for n in numbers] + [path]


def size_on_disk(path: str) -> int:
    """The bytes a container's log takes, rotated files included."""
    total = 0
    for f in files(path):
        try:
            total += os.lstat(f).st_size
        except OSError:
            pass
    return total


def rotate(path: str, max_file: int) -> None:
    """The full log ``path`` becomes ``PATH.1`` (older ones move up, ``PATH.{max_file - 1}``, the
    oldest, goes); with ``max_file`` 1 it is removed. The writer then starts a new file."""
    if max_file > 1:
        for i in range(max_file - 1, 1, -1):
            try:
                os.rename(f"{path}.{i - 1}", f"{path}.{i}")
            except FileNotFoundError:
                pass
        os.rename(path, f"{path}.1")
    else:
        os.unlink(path)
