"""The use cases, one module per noun, on the ``context.Context`` that the CLI builds once:
``images`` (load, list, pull, push, ...), ``containers`` (create, start, stop, rm, logs, commit,
cp, ...), ``attach``, ``volumes``, ``networks`` (user-defined networks, made of links), ``build``
(the builder's executor), ``system`` (info, df, check, reset, unshare) with ``preflight`` (the
host diagnosis), ``events`` (the event stream); cgroups and the API server's calls land here as
modules of their own. It imports the runtime, :mod:`layers`, :mod:`netstack` and
:mod:`rootless.base`, never the CLI: presentation it needs (the progress display) comes in
through the Context, and no use case prints its results.
"""
