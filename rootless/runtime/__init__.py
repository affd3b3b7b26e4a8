"""The namespace runtime, what happens to one container between "start" and "exited": the frozen
``spec`` and mount plan (``mountplan``, ``rootfs``, ``users``), the CLI's side of a start
(``launcher``, ``terminal``) and the in-namespace side read top to bottom (``child``: the keeper,
then PID 1), the keeper's I/O loop (``keeper``), its logs (``logs``) and exit watch
(``exitwatch``), a container's network for one start (``network``), entering a running container
(``execute``) and reaching its files (``fsaccess``, and ``buildfs`` for a build's file steps), a
volume's first contents (``copyup``), the records (``state``, ``names``) and what they mean now
(``records``: a dead keeper reconciled), the event log (``events``). It imports :mod:`rootless.base`,
:mod:`layers` and :mod:`netstack`, never the engine or the CLI; functions that need the store
get the engine's Context as a plain argument.
"""
