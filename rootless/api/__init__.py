"""The Docker Engine API server (``rootless system service``): a presentation layer like the CLI,
over the same use cases (:mod:`rootless.engine`). It may import the engine and everything below
it; only :mod:`rootless.cli` imports it."""
