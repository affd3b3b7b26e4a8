"""``base.valuetype.keyword_record``: fields by name, each default next to its field."""

from __future__ import annotations

import copy
import pickle

import pytest

from rootless.base.valuetype import KeywordRecord, keyword_record
from rootless.runtime.cgroups import LimitOptions
from rootless.runtime.spec import ContainerSpec, RunOptions


@keyword_record
class Pair(KeywordRecord):
    """A pair."""
    left: str
    right: int = 2

    def total(self) -> str:
        return f"{self.left}{self.right}"


def test_fields_by_name_with_their_defaults():
    p = Pair(left="a")
    assert (p.left, p.right, p.total(), Pair.__doc__) == ("a", 2, "a2", "A pair.")
    assert p == ("a", 2) and p._replace(right=3).right == 3 and p._asdict() == {"left": "a", "right": 2}
    with pytest.raises(TypeError, match="takes its fields by name"):
        Pair("a")  # type: ignore[misc]
    with pytest.raises(TypeError):
        Pair(left="a", wrong=1)  # type: ignore[call-arg]
    assert pickle.loads(pickle.dumps(p)) == p and copy.deepcopy(p) == p


def test_required_fields_come_first():
    with pytest.raises(TypeError, match="without a default come first"):
        @keyword_record
        class Bad(KeywordRecord):
            a: int = 1
            b: int


def test_the_project_s_records_take_keywords_only():
    for cls, required in ((RunOptions, {"image": "i"}), (LimitOptions, {}),
                          (ContainerSpec, dict(id="c", name="n", image_id="i", image_name="b", layers=(), argv=("x",),
                                               env=(), user="", workdir="/", hostname="h"))):
        with pytest.raises(TypeError, match="takes its fields by name"):
            cls("x", *list(required.values())[1:])
        rec = cls(**required)
        assert pickle.loads(pickle.dumps(rec)) == rec
    assert LimitOptions().device_read_bps == () and LimitOptions().memory is None
    assert ContainerSpec(id="c", name="n", image_id="i", image_name="b", layers=(), argv=("x",), env=(), user="",
                         workdir="/", hostname="h").labels == {}
