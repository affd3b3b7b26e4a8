"""Container logs in Docker's json-file format (or podman's k8s-file): the one place the rest
of the tool gets them from.

Each line of a json-file log is one JSON object::

    {"log":"text\\n","stream":"stdout","time":"2026-11-27T23:54:31.123456789Z"}

The work is split by phase: :mod:`~rootless.runtime.logwrite` (the drivers' writers and their
settings), :mod:`~rootless.runtime.logrotate` (the files of a log and their rotation),
:mod:`~rootless.runtime.logread` (reading, ``--tail``/``--since``/``--until``; the bytes become
entries in :mod:`~rootless.runtime.logparse`),
:mod:`~rootless.runtime.logfollow` (``logs -f``) and :mod:`~rootless.runtime.logtime`
(entry times and Docker's time forms).
"""

from __future__ import annotations

# name -> the module that holds it; each is imported on first use, so a caller pays only for
# the phase it needs (``create`` checks the settings without loading the readers)
_WHERE = {
    "parse_duration": "rootless.base.clock",
    "follow": "rootless.runtime.logfollow", "follow_batches": "rootless.runtime.logfollow",
    "follow_blocks": "rootless.runtime.logfollow",
    "LogBlock": "rootless.runtime.logparse", "LogEntry": "rootless.runtime.logparse",
    "read": "rootless.runtime.logread", "read_blocks": "rootless.runtime.logread",
    "files": "rootless.runtime.logrotate", "size_on_disk": "rootless.runtime.logrotate",
    "format_time": "rootless.runtime.logtime", "parse_since": "rootless.runtime.logtime",
    "parse_time": "rootless.runtime.logtime",
    "PARTIAL_LIMIT": "rootless.runtime.logwrite", "STREAMS": "rootless.runtime.logwrite",
    "LogWriter": "rootless.runtime.logwrite", "NullWriter": "rootless.runtime.logwrite",
    "log_config": "rootless.runtime.logwrite", "open_writer": "rootless.runtime.logwrite",
}
__all__ = ["PARTIAL_LIMIT", "STREAMS", "LogBlock", "LogEntry", "LogWriter", "NullWriter", "files", "follow",
           "follow_batches", "follow_blocks", "format_time", "log_config", "open_writer", "parse_duration",
           "parse_since", "parse_time", "read", "read_blocks", "size_on_disk"]  # = _WHERE's keys

TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and readers see: the same names, imported at once
    from rootless.base.clock import parse_duration
    from rootless.runtime.logfollow import follow, follow_batches, follow_blocks
    from rootless.runtime.logparse import LogBlock, LogEntry
    from rootless.runtime.logread import read, read_blocks
    from rootless.runtime.logrotate import files, size_on_disk
    from rootless.runtime.logtime import format_time, parse_since, parse_time
    from rootless.runtime.logwrite import (
        PARTIAL_LIMIT,
        STREAMS,
        LogWriter,
        NullWriter,
        log_config,
        open_writer,
    )


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(where, fromlist=[name]), name)
    globals()[name] = value  # looked up once
    return value
