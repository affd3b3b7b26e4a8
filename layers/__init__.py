"""Images: the content-addressed store, safe unpacking, overlay mounts and archives.

Imports only the base modules of :mod:`rootless` (errors, proc, atomic, locking,
paths); never the runtime.
"""
