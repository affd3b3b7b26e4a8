"""The build context: the directory a build may read, and nothing outside it.

``COPY``/``ADD`` sources are paths (or Go-style globs) relative to the context
root. A source that climbs out (``../x``), or a symlink on the way to it whose
target leaves the context, is an error, as are files that ``.dockerignore``
excludes. A directory source brings its non-excluded entries; symlinks inside
it are copied as symlinks, never followed. :func:`digest` sums the contents and
metadata of what a step copies, for the build cache. :meth:`BuildContext.read_text`
reads the Dockerfile and ``.dockerignore`` by the same rules. Imports only
``rootless.base`` and the pure :mod:`layers.dockerignore`.
"""

from __future__ import annotations

import os
import stat
from collections import namedtuple

from layers import dockerignore
from rootless.base import inroot
from rootless.base.errors import UsageError

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator

_MAGIC = set("*?[")

# ``path``: on the host; ``name``: what it is called in the destination; ``entries``: the
# relative paths below a directory source that are copied ("" is the source itself).
Source = namedtuple("Source", "path name is_dir entries")


class ContextError(UsageError):
    pass


class BuildContext:
    def __init__(self, root: str, ignore_text: str = ""):
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ContextError(f"the build context {root} is not a directory")
        self.matcher = dockerignore.Matcher(dockerignore.read_patterns(ignore_text))

    @classmethod
    def open(cls, root: str) -> BuildContext:
        ctx = cls(root)
        text = ctx.read_text(".dockerignore", ".dockerignore")
        if text:
            ctx.matcher = dockerignore.Matcher(dockerignore.read_patterns(text))
        return ctx

    def read_text(self, rel: str, what: str) -> str | None:
        """The text of the context's file ``rel`` (None when there is none), symlinks followed
        inside the context like a ``COPY`` source's: one that leaves it is an error, and no byte
        of a file outside the context is ever read."""
        real = self._follow(_clean(rel, what), what)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ContextError(f"cannot read {what} {rel!r} of the build context: {e.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ContextError(f"{what} {rel!r} of the build context is not a regular file")
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
        except OSError as e:
            raise ContextError(f"cannot read {what} {rel!r} of the build context: {e.strerror}") from None
        finally:
            os.close(fd)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise ContextError(f"{what} {rel!r} of the build context is not UTF-8 text") from None

    # ---- sources ------------------------------------------------------------------------
    def sources(self, pattern: str, what: str) -> list[Source]:
        """What a ``COPY``/``ADD`` source names: one path, or every match of a glob."""
        rel = _clean(pattern, what)
        if not any(c in _MAGIC for c in rel):
            return [self._source(rel, os.path.basename(rel) or ".", what)]
        found = [self._source(m, os.path.basename(m), what) for m in self._glob(rel)]
        if not found:
            raise ContextError(f"{what}: no source files were specified: {pattern!r} "
                               "matches nothing in the build context")
        return found

    def _source(self, rel: str, name: str, what: str) -> Source:
        if rel and self.matcher.excluded(rel):
            raise ContextError(f"{what}: {rel!r}: not found: excluded by .dockerignore")
        real = self._follow(rel, what)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise ContextError(f"{what}: {rel or '.'!r}: no such file or directory in the build context") from None
        if not stat.S_ISDIR(st.st_mode):
            return Source(real, name, False, ("",))
        below = os.path.relpath(real, self.root)
        below = "" if below == "." else below
        entries = tuple(_strip(e, below) for e in self._walk(below))
        return Source(real, name, True, ("",) + entries)

    def _walk(self, below: str) -> Iterator[str]:
        """The non-excluded entries under the context directory ``below`` (relative to the root)."""
        top = os.path.join(self.root, below)
        for dirpath, dirnames, filenames in os.walk(top):
            reldir = os.path.relpath(dirpath, self.root)
            reldir = "" if reldir == "." else reldir
            keep = []
            for d in sorted(dirnames):
                rel = f"{reldir}/{d}" if reldir else d
                if os.path.islink(os.path.join(dirpath, d)):
                    filenames.append(d)  # a link is copied as a link
                    continue
                if not self.matcher.excluded(rel):
                    keep.append(d)
                    yield rel
                elif self.matcher.may_include_below(rel):
                    keep.append(d)  # an exception may bring something back: look, but not at it
            dirnames[:] = keep
            for f in sorted(filenames):
                rel = f"{reldir}/{f}" if reldir else f
                if not self.matcher.excluded(rel):
                    yield rel

    def _follow(self, rel: str, what: str) -> str:
        """The host path of ``rel``, symlinks followed inside the context; an escape is an error."""
        try:
            return inroot.resolve(self.root, rel, confined=True)
        except inroot.Escape as e:
            if e.link is None:
                raise ContextError(f"{what}: {rel!r}: a symlink points outside the build context") from None
            raise ContextError(f"{what}: {rel!r}: the symlink {e.link} -> {e.target} "
                               "points outside the build context") from None
        except inroot.LinkLoop:
            raise ContextError(f"{what}: {rel!r}: too many levels of symbolic links") from None

    def _glob(self, pattern: str) -> list[str]:
        import fnmatch
        parts = pattern.split("/")
        matches = [""]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = []
            for base in matches:
                d = os.path.join(self.root, base)
                if not any(c in _MAGIC for c in part):
                    cand = [part] if os.path.lexists(os.path.join(d, part)) else []
                else:
                    try:
                        names = sorted(os.listdir(d))
                    except OSError:
                        names = []
                    cand = [n for n in names if fnmatch.fnmatchcase(n, _go_class(part))]
                for n in cand:
                    rel = f"{base}/{n}" if base else n
                    if self.matcher.excluded(rel) and (last or not self.matcher.may_include_below(rel)):
                        continue
                    if last or os.path.isdir(os.path.join(self.root, rel)):
                        nxt.append(rel)
            matches = nxt
        return matches


def _clean(pattern: str, what: str) -> str:
    norm = os.path.normpath("/" + pattern).lstrip("/")
    raw = [p for p in pattern.split("/") if p and p != "."]
    depth = 0
    for p in raw:
        depth = depth - 1 if p == ".." else depth + 1
        if depth < 0:
            raise ContextError(f"{what}: forbidden path outside the build context: {pattern}",
                               "a build reads only files inside its context directory")
    return "" if norm == "." else norm


def _strip(rel: str, below: str) -> str:
    return rel[len(below) + 1:] if below else rel


def _go_class(part: str) -> str:
    """Go's ``[^...]`` is fnmatch's ``[!...]``."""
    return part.replace("[^", "[!")


def digest(sources: list[Source]) -> str:
    """A digest of what the sources copy: names, types, modes, link targets and contents."""
    import hashlib
    h = hashlib.sha256()
    for src in sources:
        h.update(f"\0src\0{src.name}\0".encode())
        for rel in src.entries:
            path = os.path.join(src.path, rel) if rel else src.path
            st = os.lstat(path) if rel else os.stat(path)
            h.update(f"{rel}\0{st.st_mode:o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    h.update(hashlib.file_digest(f, "sha256").digest())
            h.update(b"\0")
    return "sha256:" + h.hexdigest()
