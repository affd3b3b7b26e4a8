"""The parent side of a foreground container: start it, relay its terminal, forward signals.

The dialogue with the in-namespace side (:mod:`rootless.runtime.child`) is:
``userns`` -> (maps written) ``mapped`` -> ``tty`` (the pty master, with -t) ->
``pid`` (the container's pid) -> EOF when the keeper exits; an ``error``
message at any point carries the failure and its exit code.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import sys

from rootless.base import timing, userns
from rootless.base.errors import RootlessError
from rootless.base.idmap import IdMapping
from rootless.runtime import child
from rootless.runtime.terminal import (
    DETACH_KEYS,
    DetachKeys,
    Forwarder,
    RawTerminal,
    follow_window_size,
    hold_std_fds,
    read_stdin,
)


def run(plan: child.LaunchPlan, mapping: IdMapping, detach_keys: bytes = DETACH_KEYS) -> int | None:
    """Start the container; attached: wait and return its exit code; detached: return None once
    it runs. A failure to start raises RootlessError (with the container's exit code for 126/127)."""
    attached = plan.attached
    hold_std_fds()  # the keeper relays fd 0 as the CLI's stdin: it must be that
    fwd = Forwarder(plan.tied)
    if attached:
        fwd.install()
    master = -1
    error: dict | None = None
    code: int | None = None
    detached = False  # by the detach keys: the keeper goes on without us
    finished = False  # the keeper said the container's end is recorded: it tidies up alone
    placement = None
    if plan.spec.limits:
        from rootless.runtime import cgroups
        placement = cgroups.Placement(cgroups.detect(), plan.spec.id, plan.spec.limits)
    try:
        try:
            if plan.net is not None and plan.net.join_fds:  # container: network: its user namespace too
                if placement is not None:
                    from rootless.base.errors import UsageError
                    raise UsageError("resource limits with --network container: are not supported yet",
                                     "set the limits on the other container")
                keeper, ch = userns.fork_joining(plan.net.join_fds[0], mapping, lambda c: child.sandbox(plan, c))
            else:
                keeper, ch = userns.fork_into_userns(mapping, lambda c: child.sandbox(plan, c),
                                                     placement.adopt if placement is not None else None)
                if placement is not None:  # for OOMKilled, stats and update
                    from rootless.runtime import state
                    state.update_state(plan.paths, plan.spec.id, cgroup=placement.scope, oom_killed=False)
        finally:
            if plan.net is not None:
                from rootless.runtime import network
                network.close(plan.net)  # the keeper holds the ports now; a failed start frees them
        try:
            sel = selectors.DefaultSelector()
            sel.register(ch.fileno(), selectors.EVENT_READ, "channel")
            detach = DetachKeys(detach_keys)
            with RawTerminal(attached and plan.spec.tty and plan.spec.interactive and plan.stdin) as raw:
                while sel.get_map():
                    for key, _ in sel.select():
                        if key.fd not in sel.get_map():  # unregistered by an earlier event of this round
                            continue
                        if key.data == "stdin":
                            data = read_stdin()
                            if data is None:  # EOF
                                sel.unregister(0)
                                with contextlib.suppress(OSError):
                                    os.write(master, b"\x04")  # EOF for the line discipline
                            elif detach.feed(data, master):
                                ch.send("detach")
                                detached = True
                                return None
                            continue
                        msg, fds = ch.recv()
                        if msg is None:  # the keeper has exited
                            sel.unregister(ch.fileno())
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(0)
                        elif msg["type"] == "tty" and fds:
                            master = fds[0]
                            _start_input_relay(sel, master, plan.spec.interactive and plan.stdin, raw)
                        elif msg["type"] == "pid":
                            fwd.started(msg["pid"])
                            if placement is not None:
                                placement.settle(msg["pid"])  # the keeper and its helpers leave its cgroup
                            if not attached:
                                return None
                        elif msg["type"] == "finished":  # the container's end is recorded
                            code = msg["code"]
                            finished = True
                            sel.unregister(ch.fileno())
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(0)
                        elif msg["type"] == "error":
                            error = msg
                        elif msg["type"] == "mark":
                            timing.mark(msg["name"], msg["t"])
                        elif msg["type"] == "warning":
                            print(f"rootless: warning: {msg['message']}", file=sys.stderr, flush=True)
        finally:
            ch.close()
            if error is not None or (attached and not detached and not finished):
                code = userns.reap(keeper)
    finally:
        fwd.restore()
        if master >= 0:
            os.close(master)
    if fwd.cancelled:  # a tied container killed by the CLI's signal: now the CLI's own handler acts
        import signal
        signal.raise_signal(fwd.cancelled)
    if error is not None:
        raise RootlessError(error["message"], error.get("hint"), error.get("exit_code"))
    return code


def _start_input_relay(sel: selectors.BaseSelector, master: int, interactive: bool, raw: RawTerminal) -> None:
    if interactive:
        sel.register(0, selectors.EVENT_READ, "stdin")
    if raw.active:
        follow_window_size(master)
