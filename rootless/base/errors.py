"""The exception tree and Docker's exit codes.

Library code raises these; only the CLI's error boundary prints them, as an
``error:`` line and an optional ``hint:`` line, and exits with ``exit_code``; the API server
answers with ``http_status`` (Docker's: 404 for a :class:`NotFound`, 409 for a
:class:`Conflict`, 400 for a :class:`UsageError`, 500 for anything else).
"""

from __future__ import annotations

import errno as _errno

EXIT_TOOL = 125  # the tool itself failed (Docker: daemon error)
EXIT_NOT_EXECUTABLE = 126  # the command exists but cannot be executed
EXIT_NOT_FOUND = 127  # the command was not found


class RootlessError(Exception):
    """An expected failure: a one-line message, a hint, an exit code."""

    exit_code = EXIT_TOOL
    http_status = 500  # the Docker Engine API's status for it

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(RootlessError):
    """Bad flags or arguments."""

    http_status = 400


class NotFound(RootlessError):
    """Something named that does not exist: an image, container, volume, network, exec, a path
    in a container, a command."""

    http_status = 404


class ImageNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    exit_code = 1  # Docker's CLI exits 1 for a missing container (125 is for `run`)


class VolumeNotFound(NotFound):
    exit_code = 1  # as for a container


class NetworkNotFound(NotFound):
    exit_code = 1  # as for a container (``run --network`` says it with 125)


class Conflict(RootlessError):
    """A name or object already in use."""

    http_status = 409


class InvalidImage(RootlessError):
    """A malformed, truncated or hostile archive, manifest or layer."""


class HostError(RootlessError):
    """The host lacks something the tool needs (a helper, a kernel feature)."""


class CommandNotFound(NotFound):
    exit_code = EXIT_NOT_FOUND


class CommandNotExecutable(RootlessError):
    exit_code = EXIT_NOT_EXECUTABLE


# errno -> what usually fixes it, for failures of kernel calls.
ERRNO_HINTS = {
    _errno.EPERM: "the kernel refused: check `rootless info` (user namespaces, AppArmor, sysctls)",
    _errno.EACCES: "permission denied: check ownership of the storage directory and `rootless info`",
    _errno.ENOSPC: "no space (or no more namespaces: see /proc/sys/user/max_user_namespaces)",
    _errno.EUSERS: "too many nested user namespaces",
    _errno.ENODEV: "the kernel lacks this filesystem type",
}


NO_SPACE = (_errno.ENOSPC, _errno.EDQUOT)  # a full filesystem, or the user's quota on it


class NoSpace(RootlessError):
    """A full disk met in a helper (user namespace, keeper): only its message could travel back;
    the CLI's boundary and the API say it as :func:`no_space`."""


def no_space(store: str, exc: OSError | None = None) -> RootlessError:
    """The one line for a full disk (ENOSPC, EDQUOT): it names the store, or the file outside
    the store that could not be written, and how to make room."""
    name = getattr(exc, "filename", None)
    if isinstance(name, (str, bytes)) and name:
        name = name.decode(errors="replace") if isinstance(name, bytes) else name
        inside = name == store or name.startswith(store.rstrip("/") + "/")
        if not inside and name.startswith("/") and not name.startswith("/proc/self/fd/"):
            return RootlessError(f"no space left on the device of {name}: free some space there "
                                 "or write somewhere else")
    what = "disk quota exceeded" if exc is not None and exc.errno == _errno.EDQUOT else "no space left"
    return RootlessError(f"{what} on the device of the store {store}: free some space (rootless system prune, "
                         "rootless image prune) or set ROOTLESS_ROOT elsewhere")


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, NoSpace) or (isinstance(exc, OSError) and exc.errno in NO_SPACE)


def from_oserror(step: str, exc: OSError) -> RootlessError:
    """A RootlessError for a failed kernel call, naming the step and a fix."""
    msg = f"{step}: {exc.strerror or exc}"
    return RootlessError(msg, ERRNO_HINTS.get(exc.errno or 0))
