"""rootless: Docker's verbs without a daemon and without root.

The code is in layers, one folder each, bottom to top; a module imports only its own layer and
the layers below it (``tests/unit/test_layering.py`` checks every import, lazy ones included):

- :mod:`rootless.base`: errors, files, locks, processes, syscalls, config, id maps, user namespaces;
- :mod:`layers` (images) and :mod:`netstack` (networking), side by side on the base;
- :mod:`rootless.runtime`: a container's namespaces, launcher, keeper, exec and records;
- :mod:`rootless.engine`: the use cases, by noun (images, containers, system);
- :mod:`rootless.cli`: presentation (parsing, tables, Docker's JSON views, Go templates).

This package itself holds only the version, so any module may import it.
"""

__version__ = "0.1.0"
