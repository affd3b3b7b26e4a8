"""The build cache: what a build step made, keyed by everything the step depends on.

A key is the digest of the parent step's key (a chain that starts at the base
image's id) and the step's own inputs: its instruction after substitution, the
build arguments it sees and, for ``COPY``/``ADD``, the digest of the files it
copies. An entry is one small JSON file, ``build-cache/KEY.json``, written
atomically, so concurrent builds share the cache without a lock: two builds of
the same step both write a valid entry and the last rename wins. An entry whose
layer is gone from the store (``rmi``, ``builder prune``) is a miss. Imports
only ``rootless.base``.
"""

from __future__ import annotations

import json
import os

from rootless.base import atomic

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Protocol

    class LayerStore(Protocol):
        """What the cache asks of the store (layers.store.ImageStore): is a layer still there."""

        def has_blob(self, digest: str) -> bool: ...

        def layer_present(self, diff_id: str) -> bool: ...


ENTRY_VERSION = 1


def key(parent: str, parts: object) -> str:
    import hashlib
    text = json.dumps([parent, parts], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _path(root: str, k: str) -> str:
    return os.path.join(root, "build-cache", k.partition(":")[2] + ".json")


def content_path(root: str, diff_id: str) -> str:
    """Where the content digest of the layer ``diff_id`` is kept (its names, modes, owners and
    contents, not its times: what a later stage that starts ``FROM`` this one is keyed on)."""
    return os.path.join(root, "build-cache", "content", diff_id.partition(":")[2])


def get(root: str, k: str, store: LayerStore) -> dict | None:
    """The entry of ``k``, if its layer (when it has one) is still in ``store``."""
    try:
        entry = atomic.read_json(_path(root, k))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("version") != ENTRY_VERSION:
        return None
    layer = entry.get("layer")
    if layer and not (store.has_blob(layer["blob"]) and store.layer_present(layer["diff_id"])):
        return None
    return entry


def put(root: str, k: str, layer: dict | None, history: dict) -> dict:
    entry = {"version": ENTRY_VERSION, "layer": layer, "history": history}
    os.makedirs(os.path.join(root, "build-cache"), 0o700, exist_ok=True)
    atomic.write_json(_path(root, k), entry)
    return entry


def entries(root: str) -> list[str]:
    """The paths of every entry (for ``builder prune`` and ``system df``)."""
    d = os.path.join(root, "build-cache")
    try:
        return [os.path.join(d, n) for n in os.listdir(d) if n.endswith(".json")]
    except FileNotFoundError:
        return []


def layers_of(paths: list[str]) -> list[dict]:
    out = []
    for p in paths:
        try:
            layer = atomic.read_json(p).get("layer")
        except (OSError, ValueError, AttributeError):
            continue
        if layer:
            out.append(layer)
    return out
