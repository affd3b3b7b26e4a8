"""rootless: Docker's verbs without a daemon and without root. The code is in layers, a folder
each, bottom to top, and a module imports only its own layer and those below it (every import,
lazy ones included, is checked by ``tests/unit/test_layering.py``): :mod:`rootless.base`;
:mod:`layers` (images) and :mod:`netstack` (networking) side by side on it; :mod:`rootless.runtime`
(namespaces, launcher, keeper, exec, records); :mod:`rootless.engine` (the use cases);
:mod:`rootless.cli` (presentation). This package itself holds only the version.
"""

__version__ = "0.1.0"
