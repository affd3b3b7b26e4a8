"""The use cases, one module per noun: ``images`` (load, list, pull, push, ...), ``containers``
(create, start, stop, rm, commit, cp, ...), ``attach``, ``system`` (info, df, reset, unshare) with
``preflight`` (the host diagnosis), all on the ``context.Context`` that the CLI builds once.
Volumes, builds, cgroups and the API server's calls land here as modules of their own.

Imports the runtime, :mod:`layers`, :mod:`netstack` and :mod:`rootless.base`; never the CLI:
presentation it needs (the progress display) comes in through the Context. None prints results.
"""
