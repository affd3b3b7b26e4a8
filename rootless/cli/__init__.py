"""Presentation: the ``rootless`` command line (``main``: the one error boundary; ``fast``: the
typer-free parser; ``typer_app``: help and usage errors; ``params``/``commands``: the verbs),
tables and durations (``render``), Docker's ps/inspect shapes (``views``), the Go-template engine
(``gotemplate``) and pull/push progress (``progress``).

Imports everything below it and is the only user of typer. Parse, call one engine use case,
render: no policy and no side effect of its own.
"""
