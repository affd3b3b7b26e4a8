"""Presentation: the ``rootless`` command line (``main``: the one error boundary; ``fast``: the
typer-free parser; ``typer_app``: help and usage errors; ``params``/``commands``: the verbs), tables
and durations (``render``), Docker's ps/inspect shapes (``views``), what ``info`` and ``logs``
print (``infoview``, ``logview``, ``eventview``), the Go-template engine (the ``gotemplate``
package) and pull/push progress (``progress``). It imports everything below it and is the only
user of typer: parse, call one engine use case, render, with no policy and no side effect of its
own.
"""
