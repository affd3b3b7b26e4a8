"""A use case's status lines ("Unable to find image ... locally", "Trying to pull ...") go through
the Context: to the face's ``notes`` when it gives one (the API can report them, the CLI can
silence them), else to stderr exactly as the CLI prints them."""

from __future__ import annotations

import pytest

from layers.registry import RegistryError
from rootless.base.errors import ImageNotFound
from rootless.engine import images
from rootless.engine.context import Context


class MissingStore:
    def __init__(self):
        self.pulled = False

    def resolve(self, name):
        if not self.pulled:
            raise ImageNotFound(f"No such image: {name}")
        return {"id": "sha256:" + "0" * 64}


def _context(tmp_path, monkeypatch, notes) -> Context:
    ctx = Context(root=str(tmp_path), notes=notes)
    store = ctx.__dict__["store"] = MissingStore()

    def pull(ctx, name, opts):
        store.pulled = True
        return name
    monkeypatch.setattr(images, "pull", pull)
    return ctx


def test_a_missing_image_is_a_note_of_the_context(tmp_path, monkeypatch, capsys):
    seen: list[str] = []
    ctx = _context(tmp_path, monkeypatch, seen.append)
    images.ensure_image(ctx, "alpine:3", "missing")
    assert seen == ["Unable to find image 'alpine:3' locally"]
    assert capsys.readouterr().err == ""


def test_the_note_names_the_image_as_docker_does(tmp_path, monkeypatch):
    """Docker's CLI line: the familiar name with its tag (``alpine`` is ``alpine:latest``)."""
    seen: list[str] = []
    ctx = _context(tmp_path, monkeypatch, seen.append)
    images.ensure_image(ctx, "alpine", "missing")
    images.ensure_image(_context(tmp_path, monkeypatch, seen.append), "docker.io/library/busybox", "missing")
    assert seen == ["Unable to find image 'alpine:latest' locally", "Unable to find image 'busybox:latest' locally"]


def test_without_notes_the_line_goes_to_stderr(tmp_path, monkeypatch, capsys):
    ctx = _context(tmp_path, monkeypatch, None)
    images.ensure_image(ctx, "alpine:3", "missing")
    assert capsys.readouterr().err == "Unable to find image 'alpine:3' locally\n"


def test_quiet_gives_no_note(tmp_path, monkeypatch, capsys):
    seen: list[str] = []
    ctx = _context(tmp_path, monkeypatch, seen.append)
    images.ensure_image(ctx, "alpine:3", "missing", images.RegistryOptions(quiet=True))
    assert seen == [] and capsys.readouterr().err == ""


def test_each_registry_tried_is_a_note(tmp_path, capsys):
    seen: list[str] = []
    ctx = Context(root=str(tmp_path), notes=seen.append)

    def fn(ref):
        if ref == "a.example/x":
            raise RegistryError("a.example: not found")
        return ref
    assert images._first_registry(ctx, ["a.example/x", "b.example/x"], fn, images.RegistryOptions(), "x") \
        == "b.example/x"
    assert seen == ["Trying to pull a.example/x...", "Trying to pull b.example/x..."]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_registries_tried_on_stderr_unless_quiet(tmp_path, capsys, quiet):
    ctx = Context(root=str(tmp_path))
    with pytest.raises(RegistryError):
        images._first_registry(ctx, ["a/x", "b/x"], lambda ref: (_ for _ in ()).throw(RegistryError(ref)),
                               images.RegistryOptions(quiet=quiet), "x")
    assert capsys.readouterr().err == ("" if quiet else "Trying to pull a/x...\nTrying to pull b/x...\n")
