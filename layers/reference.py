"""Image references, normalised as Docker does.

``busybox`` -> ``docker.io/library/busybox:latest``; ``user/app`` ->
``docker.io/user/app:latest``; ``host:5000/a/b:tag``; ``name@sha256:...``.
"""

from __future__ import annotations

import re
from collections import namedtuple

from rootless.base.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?$"
                        r"|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


class Reference(namedtuple("Reference", "registry path tag digest", defaults=(None, None))):
    """A normalised image reference: registry, repository path, tag and/or digest."""

    __slots__ = ()

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def familiar_repository(self) -> str:
        """The repository as Docker shows it (``busybox``, ``user/app``, ``host:5000/x``)."""
        if self.registry == DEFAULT_REGISTRY:
            return self.path.removeprefix("library/")
        return self.repository

    @property
    def familiar(self) -> str:
        """The whole reference as Docker shows it (``busybox:latest``, ``host:5000/x@sha256:...``)."""
        return self.familiar_repository + (f":{self.tag}" if self.tag else "") + \
            (f"@{self.digest}" if self.digest else "")


def parse(ref: str) -> Reference:
    """Parse and normalise ``ref``; raises UsageError for an invalid reference."""
    orig = ref
    if not ref or ref != ref.strip():
        raise UsageError(f"invalid reference format: {orig!r}")
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"invalid reference format: {orig!r} (bad digest)")
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1:]
        if not _TAG_RE.match(tag):
            raise UsageError(f"invalid reference format: {orig!r} (bad tag)")
    first, _, rest = ref.partition("/")
    if rest and _is_domain(first):
        registry, path = first, rest
        if not _DOMAIN_RE.match(registry):
            raise UsageError(f"invalid reference format: {orig!r} (bad registry)")
    else:
        registry, path = DEFAULT_REGISTRY, ref
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not _PATH_RE.match(path):
        raise UsageError(f"invalid reference format: {orig!r}",
                         "repository names must be lowercase letters, digits and separators")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def _is_domain(first: str) -> bool:
    """Whether a reference's first component names a registry (as Docker decides)."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def is_short(text: str) -> bool:
    """A name without a registry (``busybox``, ``user/app:1``): looked for in the search list."""
    first, sep, _ = text.partition("/")
    return not (sep and _is_domain(first))


def candidates(text: str, search: tuple[str, ...] | list[str] = (DEFAULT_REGISTRY,)) -> list[Reference]:
    """The references ``text`` may mean, in order: one per registry of ``search`` for a short name
    (``busybox`` -> ``docker.io/library/busybox:latest``, ``host:5000/busybox:latest``), else itself."""
    if not is_short(text):
        return [parse(text)]
    first = parse(text)  # the name's own errors, as Docker words them
    out = [parse(f"{r}/{text}") if r != DEFAULT_REGISTRY else first for r in search]
    return list(dict.fromkeys(out)) or [first]
