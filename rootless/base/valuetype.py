"""Value types whose fields are declared by name, each with its type and its default.

``@keyword_record`` turns a class body of annotated fields into an immutable namedtuple class
that takes its fields by keyword only::

    @keyword_record
    class RunOptions(KeywordRecord):
        image: str                         # no default: required (those come first)
        network: str = "slirp4netns"       # a field with its default

``@record`` is the same for a small value that may also be built by position.

Value types on the start-up path are namedtuples: importing dataclasses or typing costs ~8 ms
per command. The type checker sees the class as a frozen keyword-only dataclass
(``dataclass_transform``), and the namedtuple's own methods through :class:`KeywordRecord`.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

    _T = TypeVar("_T")

    class KeywordRecord:
        """What the namedtuple underneath gives, for the checker."""
        _fields: ClassVar[tuple[str, ...]]
        _field_defaults: ClassVar[dict[str, Any]]

        def _replace(self, **changes: Any) -> Self: ...
        def _asdict(self) -> dict[str, Any]: ...
        @classmethod
        def _make(cls, iterable: Any) -> Self: ...
        def __iter__(self) -> Iterator[Any]: ...
        def __len__(self) -> int: ...
        def __getitem__(self, index: int) -> Any: ...
else:
    KeywordRecord = object

    def dataclass_transform(**_kw):
        return lambda f: f


@dataclass_transform(kw_only_default=True, frozen_default=True)
def keyword_record(cls: type[_T]) -> type[_T]:
    """The namedtuple class of ``cls``'s annotated fields (in their order; those without a default
    first), keyword-only, with ``cls``'s docstring, methods and name. A method that calls
    ``super()`` belongs in a subclass."""
    return _record(cls, keywords_only=True)


@dataclass_transform(frozen_default=True)
def record(cls: type[_T]) -> type[_T]:
    """As :func:`keyword_record`, for a small value that may also be built by position (``Mount``,
    ``Op``): the declaration still gives each field its type and default."""
    return _record(cls, keywords_only=False)


def _record(cls: type[_T], keywords_only: bool) -> type[_T]:
    names = [n for n in cls.__dict__.get("__annotations__", {}) if not n.startswith("_")]
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    required = [n for n in names if n not in defaults]
    if names != required + list(defaults):
        raise TypeError(f"{cls.__name__}: the fields without a default come first")
    typename = cls.__name__
    base = namedtuple(typename, names, defaults=tuple(defaults.values()),  # type: ignore[misc]  # computed fields
                      module=cls.__module__)

    def __new__(klass: type, *args: object, **kw: Any) -> Any:
        if args:
            raise TypeError(f"{typename} takes its fields by name")
        return base.__new__(klass, **kw)

    def __reduce__(self: Any) -> tuple[Any, tuple[Any, ...]]:
        # pickle and copy rebuild from the values, bypassing the keywords-only __new__
        return self._make, (tuple(self),)

    body = {k: v for k, v in cls.__dict__.items()
            if k not in defaults and k not in ("__dict__", "__weakref__", "__annotations__")}
    if "__new__" in body:
        raise TypeError(f"{typename}: give __new__ in a subclass (its super() is the namedtuple's)")
    body["__slots__"] = ()
    if keywords_only:
        body.update({"__new__": __new__, "__reduce__": __reduce__})
    return type(typename, (base,), body)
