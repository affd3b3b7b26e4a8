"""The namespace runtime, what happens to one container between "start" and "exited": the frozen
``spec`` and mount plan (``mountplan``, ``rootfs``, ``users``), the CLI's side of a start
(``launchplan``, ``launcher``, ``terminal``) and the in-namespace side read top to bottom (``child``: the keeper,
then PID 1), the keeper's I/O loop (``keeper``), its logs (``logs``) and exit watch
(``exitwatch``), a container's network for one start (``network``), entering a running container
(``execute``) and reaching its files (``fsaccess``, and ``buildfs`` for a build's file steps), a
volume's first contents (``copyup``), the records (``state``, ``names``) and what they mean now
(``records``: a dead keeper reconciled), the event log (``events``), healthchecks (``health``, and
the keeper's ``healthmonitor``). It imports :mod:`rootless.base`,
:mod:`layers` and :mod:`netstack`, never the engine or the CLI; functions that need the store
get the engine's Context as a plain argument.
"""

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from layers.store import ImageStore
    from netstack.slirp import Features
    from rootless.base.idmap import IdMapping
    from rootless.base.paths import Paths

    class Context(Protocol):
        """What the runtime uses of the engine's Context (``rootless.engine.context.Context``),
        which it gets as an argument and never imports."""

        @property
        def paths(self) -> Paths: ...
        @property
        def store(self) -> ImageStore: ...  # where a layer's tree is (own or additional store)
        @property
        def mapping(self) -> IdMapping: ...  # the store's id map
        def warn(self, message: str) -> None: ...
        def note(self, line: str) -> None: ...
        def userns_call(self, fn: Callable[..., Any], *args: Any) -> Any: ...
        def slirp_features(self) -> Features: ...
        warm_forker: bool  # detached keepers may be forked by ``runtime.forker``
