"""The parent side of a foreground container: start it, relay its terminal, forward signals.

The dialogue with the in-namespace side (:mod:`rootless.runtime.child`) is:
``userns`` -> (maps written) ``mapped`` -> ``tty`` (the pty master, with -t) ->
``pid`` (the container's pid) -> EOF when the keeper exits; an ``error``
message at any point carries the failure and its exit code.
"""

from __future__ import annotations

import os

from rootless.base import userns
from rootless.base.errors import RootlessError
from rootless.base.idmap import IdMapping
from rootless.runtime import child
from rootless.runtime.foreground import ENDED, Session
from rootless.runtime.launchplan import LaunchPlan
from rootless.runtime.terminal import DETACH_KEYS, Forwarder, hold_std_fds

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from rootless.runtime import Context


def run(ctx: Context, plan: LaunchPlan, mapping: IdMapping, detach_keys: bytes = DETACH_KEYS) -> int | None:
    """Start the container; attached: wait and return its exit code; detached: return None once
    it runs. A failure to start raises RootlessError (with the container's exit code for 126/127).
    The warnings of the keeper and the container's setup go to ``ctx.warn``."""
    attached = plan.attached
    hold_std_fds()  # the keeper relays fd 0 as the CLI's stdin: it must be that
    fwd = Forwarder(plan.tied)
    if attached:
        fwd.take(plan.sig_proxy or plan.spec.tty)  # --sig-proxy only without -t, as Docker's
    session = None
    code: int | None = None
    placement = None
    joining = plan.net is not None and bool(plan.net.join_fds)
    # every container where a cgroup v2 subtree is delegated (cgroups.placement); without cgroup v2
    # at /sys/fs/cgroup (v1, hybrid) one stat, not even the import, for a container without limits
    if plan.spec.limits or (not joining and os.path.exists("/sys/fs/cgroup/cgroup.controllers")):
        from rootless.runtime import cgroups
        placement = cgroups.placement(plan.spec.id, plan.spec.limits)

    def on_pid(pid: int) -> bool:
        if placement is not None:
            placement.settle(pid)  # the keeper and its helpers leave its cgroup
        return False

    def on_running() -> bool:
        return not attached  # detached: done once its command runs

    try:
        try:
            if plan.net is not None and plan.net.join_fds:  # container: network: its user namespace too
                if placement is not None:
                    from rootless.base.errors import UsageError
                    raise UsageError("resource limits with --network container: are not supported yet",
                                     "set the limits on the other container")
                keeper, ch = userns.fork_joining(plan.net.join_fds[0], mapping, lambda c: child.sandbox(plan, c))
            else:
                adopt, begin = (placement.adopt, placement.begin) if placement is not None else (None, None)
                warm = _warm_fork(plan, mapping) if ctx.warm_forker else None
                if warm is not None:  # a detached keeper, forked by the warm forker: it shares its pages
                    keeper, ch = userns.adopt(warm[0], warm[1], mapping, adopt, begin)
                else:
                    from rootless.runtime import sharednet
                    keeper, ch = userns.fork_into_userns(mapping, lambda c: child.sandbox(plan, c), adopt, begin,
                                                         prelude=sharednet.prelude(plan.net, mapping))
                if placement is not None and placement.scope is not None:  # for pause, OOMKilled, stats, update
                    from rootless.runtime import state
                    state.update_state(plan.paths, plan.spec.id, cgroup=placement.scope, oom_killed=False)
        finally:
            if plan.net is not None:
                from rootless.runtime import network
                network.close(plan.net)  # the keeper holds the ports now; a failed start frees them
        # The keeper shows the output and relays stdin without -t; with -t the CLI types into the pty.
        session = Session(ch, fwd, interactive=plan.spec.interactive and plan.stdin, detach_keys=detach_keys,
                          eof_to_pty=True, warn=ctx.warn)
        try:
            if session.run(attached and plan.spec.tty and plan.spec.interactive and plan.stdin, on_pid,
                           on_running) != ENDED:
                return None
            code = session.code
        finally:
            ch.close()
            if session.error is not None or (attached and not session.detached and not session.finished):
                code = userns.reap(keeper)
    finally:
        fwd.restore()
        if session is not None:
            session.close()
    if fwd.cancelled:  # a tied container killed by the CLI's signal: now the CLI's own handler acts
        import signal
        signal.raise_signal(fwd.cancelled)
    if session.error is not None:
        error = session.error
        raise RootlessError(error["message"], error.get("hint"), error.get("exit_code"))
    return code


def _warm_fork(plan: LaunchPlan, mapping: IdMapping):
    """A detached keeper's pid and channel from the warm forker (``runtime.forker``), or None: this
    CLI forks it. An attached one stays the CLI's child (its signals, its terminal, a tied build step's)."""
    if plan.attached or plan.tied or plan.oci is not None or plan.passthrough:
        return None
    from rootless.runtime import forker
    return forker.fork_keeper(mapping, plan)
