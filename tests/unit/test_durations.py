"""One Go-duration grammar (``time.ParseDuration``) for every reader of a duration: the
HEALTHCHECK flags of a build and ``logs``/``events`` ``--since``/``--until``."""

from __future__ import annotations

import pytest

from layers.dockerfile import DockerfileError
from rootless.base.clock import parse_duration
from rootless.runtime import logs
from tests.unit.test_build_semantics import build

S = 10**9
NOW = 1_800_000_000 * S

# what Go's time.ParseDuration gives for each
GO = [
    ("0", 0),
    ("+0", 0),
    ("1ns", 1),
    ("100us", 100_000),
    ("100\u00b5s", 100_000),  # micro sign
    ("100\u03bcs", 100_000),  # Greek mu
    ("300ms", 300 * 10**6),
    (".5s", S // 2),
    ("1.s", S),
    ("1.5h", 5400 * S),
    ("+5s", 5 * S),
    ("1h2m3.5s", 3723 * S + S // 2),
    ("2h45m10s", (2 * 3600 + 45 * 60 + 10) * S),
    ("1m0.000000001s", 60 * S + 1),
    ("0.1234567891s", 123456789),  # digits below a nanosecond are dropped
    ("9223372036854775807ns", 2**63 - 1),
]
BAD = ["", "5", "s", ".s", "-.s", "+", "-", "1x", "1.5.5s", "1h 2m", "0s0", " 1s", "1S", "1sec",
       "\u0661s", "9223372036854775808ns", "2562048h"]


@pytest.mark.parametrize("text, ns", GO)
def test_go_grammar(text, ns):
    assert parse_duration(text) == ns
    if text not in ("0", "+0"):
        assert parse_duration("-" + text.lstrip("+")) == -ns


@pytest.mark.parametrize("text", BAD)
def test_go_grammar_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text, ns", [(t, n) for t, n in GO if t not in ("0", "+0")])
def test_healthcheck_takes_go_durations(tmp_path, text, ns):
    hc = build(tmp_path, f"FROM alpine\nHEALTHCHECK --interval={text} --timeout={text} CMD true\n")
    assert hc.config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": ns, "Timeout": ns}


def test_healthcheck_flag_keeps_its_utf8(tmp_path):
    hc = build(tmp_path, "FROM alpine\nHEALTHCHECK --timeout=1\u03bcs CMD echo \u00b5\n")
    assert hc.config["Healthcheck"] == {"Test": ["CMD-SHELL", "echo \u00b5"], "Timeout": 1000}


def test_healthcheck_zero_is_a_duration(tmp_path):
    hc = build(tmp_path, "FROM alpine\nHEALTHCHECK --start-period=0 CMD true\n")
    assert hc.config["Healthcheck"]["StartPeriod"] == 0


@pytest.mark.parametrize("text", [*(t for t in BAD if " " not in t), "-5s"])
def test_healthcheck_refuses(tmp_path, text):
    with pytest.raises(DockerfileError, match="invalid duration"):
        build(tmp_path, f"FROM alpine\nHEALTHCHECK --interval={text!s} CMD true\n")


@pytest.mark.parametrize("text, ns", [(t, n) for t, n in GO if t != "0"])
def test_since_takes_the_same_durations(text, ns):
    assert logs.parse_since(text, NOW) == NOW - ns
