"""Container ids and generated names (``adjective_scientist``, like Docker's)."""

from __future__ import annotations

import os
import re

_ADJECTIVES = (
    "brave", "calm", "clever", "cool", "eager", "elegant", "fervent", "focused", "gallant", "gentle",
    "happy", "jolly", "keen", "kind", "lucid", "modest", "nifty", "patient", "quirky", "relaxed",
    "serene", "sharp", "stoic", "sweet", "tender", "upbeat", "vibrant", "wizardly", "youthful", "zealous",
)
_SCIENTISTS = (
    "agnesi", "babbage", "bohr", "curie", "darwin", "einstein", "euler", "faraday", "fermi", "gauss",
    "hopper", "hypatia", "kepler", "khayyam", "lamarr", "lovelace", "maxwell", "meitner", "noether",
    "pascal", "ramanujan", "ritchie", "shannon", "tesla", "thompson", "torvalds", "turing", "wozniak",
    "yonath", "zuse",
)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def check(name: str) -> None:
    if not NAME_RE.match(name):
        from rootless.base.errors import UsageError
        raise UsageError(f"invalid container name {name!r}", "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def new_id() -> str:
    return os.urandom(32).hex()


def _pick(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(4), "little") % len(words)]


def generate(taken: set[str]) -> str:
    for attempt in range(100):
        name = f"{_pick(_ADJECTIVES)}_{_pick(_SCIENTISTS)}"
        if attempt > 10:
            name += str(int.from_bytes(os.urandom(2), "little") % 10000)
        if name not in taken:
            return name
    return "c_" + new_id()[:12]
