"""The API's status for an error comes from the error's class (``http_status``), one taxonomy for
both faces: 404 for a NotFound, 409 for a Conflict, 400 for a UsageError or an unreadable
request, 500 for anything else."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import layers
import netstack
import rootless
from rootless.api import http
from rootless.api.routes import status_of
from rootless.base import errors


def _all_error_classes() -> list[type[BaseException]]:
    """Every RootlessError subclass the project declares (each module imported), and BadRequest."""
    for pkg in (rootless, layers, netstack):
        for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(mod.name)
    seen, todo = [], [errors.RootlessError, http.BadRequest]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _docker_status(cls: type[BaseException]) -> int:
    """The statuses Docker answers (and this server always has): what a name ending in NotFound
    says is missing, a conflict, a bad request, else a server error."""
    if cls.__name__.endswith("NotFound"):
        return 404
    if issubclass(cls, errors.Conflict):
        return 409
    if issubclass(cls, (errors.UsageError, http.BadRequest)):
        return 400
    return 500


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_class_keeps_its_status(cls):
    e = cls.__new__(cls)  # no __init__: some take more than a message
    assert status_of(e) == _docker_status(cls)
    if cls.__name__.endswith("NotFound"):
        assert issubclass(cls, errors.NotFound), f"{cls.__qualname__}: derive it from base.errors.NotFound"


def test_the_class_decides_not_the_name():
    class Gone(errors.NotFound):
        pass

    class Taken(errors.Conflict):
        pass

    class LooksNotFound(errors.RootlessError):  # a name alone no longer makes a 404
        pass

    assert [status_of(Gone("x")), status_of(Taken("x")), status_of(LooksNotFound("x"))] == [404, 409, 500]
    assert status_of(errors.ImageNotFound("x")) == 404 and errors.ImageNotFound("x").exit_code == 125
    assert errors.ContainerNotFound("x").exit_code == 1 and errors.CommandNotFound("x").exit_code == 127


def test_other_exceptions_are_server_errors():
    assert status_of(OSError(5, "I/O error")) == 500
    assert status_of(ValueError("x")) == 500
