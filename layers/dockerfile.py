"""A Dockerfile as data: stages of checked instructions, parsed by the official grammar.

The syntax (continuations, comments, parser directives, JSON and shell forms,
heredocs) is moby/buildkit's own parser, through the ``dockerfile`` wheel;
this module checks what that parser leaves to the builder (known
instructions, their flags and argument counts, ``FROM`` first) and groups the
instructions into stages. Every error names ``FILE:LINE``. Variable
substitution happens later, when the builder knows the values
(:mod:`layers.shellwords`). Imports only ``rootless.base``.
"""

from __future__ import annotations

from collections import namedtuple

from rootless.base.errors import UsageError

# flag name -> takes a value; the flags Docker's builder accepts per instruction.
_FLAGS = {
    "FROM": {"platform": True},
    "RUN": {"mount": True, "network": True, "security": True},
    "COPY": {"from": True, "chown": True, "chmod": True, "link": False, "parents": False, "exclude": True},
    "ADD": {"chown": True, "chmod": True, "checksum": True, "keep-git-dir": True, "link": False, "exclude": True},
    "HEALTHCHECK": {"interval": True, "timeout": True, "start-period": True, "start-interval": True, "retries": True},
}
_NO_FLAGS = ("CMD", "ENTRYPOINT", "ENV", "ARG", "LABEL", "MAINTAINER", "EXPOSE", "VOLUME", "USER",
             "WORKDIR", "SHELL", "STOPSIGNAL", "ONBUILD")
KNOWN = frozenset(_FLAGS) | frozenset(_NO_FLAGS)
_DIRECTIVES = ("syntax", "escape", "check")


class DockerfileError(UsageError):
    """A Dockerfile that cannot be built as written."""


class Instruction(namedtuple("Instruction", "cmd args flags json heredocs original line sub")):
    """One instruction. ``args``: the parser's words (JSON form: the array's items); ``flags``:
    name -> value (True for a bare flag; a repeated flag gives a tuple); ``heredocs``: (name,
    content) pairs; ``line``: where it starts; ``sub``: the trigger of ``ONBUILD``."""

    __slots__ = ()

    def where(self, path: str) -> str:
        return f"{path}:{self.line}"


Stage = namedtuple("Stage", "index name base platform line instructions")
Dockerfile = namedtuple("Dockerfile", "path escape meta_args stages")


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """The stages of the Dockerfile ``text`` (``path`` names it in errors)."""
    commands = _commands(text, path)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    for c in commands:
        ins = _instruction(c, path)
        if ins.cmd == "FROM":
            base, name = _from_words(ins, path)
            current = []
            stages.append(Stage(len(stages), name, base, ins.flags.get("platform"), ins.line, current))
            for other in stages[:-1]:
                if name and other.name == name:
                    raise DockerfileError(f"{ins.where(path)}: duplicate stage name {name!r}")
        elif current is None:
            if ins.cmd != "ARG":
                raise DockerfileError(f"{ins.where(path)}: {ins.cmd} before the first FROM",
                                      "a Dockerfile starts with FROM (only ARG may come before it)")
            meta.append(ins)
        else:
            current.append(ins)
    if not stages:
        raise DockerfileError(f"{path}: no FROM instruction", "a Dockerfile needs at least one FROM")
    return Dockerfile(path, escape_of(text), tuple(meta), tuple(stages))


def parse_trigger(text: str, path: str, line: int) -> Instruction:
    """An ``ONBUILD`` trigger (stored as its text) as an instruction of the image built on it."""
    commands = _commands(text, path)
    if len(commands) != 1:
        raise DockerfileError(f"{path}:{line}: invalid ONBUILD trigger {text!r}")
    ins = _instruction(commands[0], path, line)
    if ins.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
        raise DockerfileError(f"{path}:{line}: {ins.cmd} isn't allowed as an ONBUILD trigger")
    return ins._replace(line=line)


def escape_of(text: str) -> str:
    """The ``# escape=`` parser directive's character (``\\`` without one)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            break
        key, eq, value = line[1:].partition("=")
        key = key.strip().lower()
        if not eq or key not in _DIRECTIVES:
            break  # a comment, or an unknown directive (a comment too): no directive after it
        if key == "escape":
            value = value.strip()
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token {value!r} does not match ` or \\")
            return value
    return "\\"


# ---- the parser's output, checked ---------------------------------------------------------
def _commands(text: str, path: str) -> tuple:
    import dockerfile
    # The Go parser reads a C string: a NUL would cut the file short and an unpaired surrogate
    # crashes it, so neither reaches it.
    if "\x00" in text:
        raise DockerfileError(f"{path}:{text.count(chr(10), 0, text.index(chr(0))) + 1}: a NUL byte",
                              "a Dockerfile is UTF-8 text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DockerfileError(f"{path}:{text.count(chr(10), 0, e.start) + 1}: not UTF-8 text",
                              "a Dockerfile is UTF-8 text") from None
    try:
        return dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        raise DockerfileError(f"{path}:{_failing_line(text)}: {e}") from None


def _failing_line(text: str) -> int:
    """The first line whose prefix no longer parses (the Go parser's errors carry no line)."""
    import dockerfile
    lines = text.splitlines(keepends=True)
    lo, hi = 1, len(lines)  # invariant: lines[:hi] fails
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            dockerfile.parse_string("".join(lines[:mid]))
            lo = mid + 1
        except dockerfile.GoParseError:
            hi = mid
    return hi


def _instruction(c, path: str, line: int | None = None) -> Instruction:
    """``line``: where the instruction is (an ONBUILD trigger is parsed apart, from line 1)."""
    line = c.start_line if line is None else line
    where = f"{path}:{line}"
    if not c.cmd:  # a lone continuation or escape character
        raise DockerfileError(f"{where}: a line with no instruction: {(c.original or '').strip()!r}")
    cmd = c.cmd.upper()  # instructions are not case-sensitive
    if cmd not in KNOWN:
        raise DockerfileError(f"{where}: unknown instruction: {c.cmd}")
    sub = None
    if cmd == "ONBUILD":
        trigger = c.original.split(None, 1)[1] if len(c.original.split(None, 1)) > 1 else ""
        if not trigger.strip():
            raise DockerfileError(f"{where}: ONBUILD requires at least one argument")
        sub = parse_trigger(trigger, path, line)
    flags = _flags(cmd, c.flags, where)
    args = tuple(c.value)
    _check_args(cmd, args, c.json, where)
    return Instruction(cmd, args, flags, c.json, tuple((h.name, h.content) for h in c.heredocs),
                       c.original, line, sub)


def _utf8(flag: str) -> str:
    """A flag as written: the parser hands flags over with their UTF-8 bytes read as Latin-1
    (``--interval=100µs`` arrives as ``--interval=100Âµs``)."""
    if flag.isascii():
        return flag
    try:
        return flag.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return flag


def _flags(cmd: str, raw: tuple, where: str) -> dict:
    allowed = _FLAGS.get(cmd, {})
    out: dict = {}
    for text in raw:
        name, eq, value = _utf8(text)[2:].partition("=")
        if name not in allowed:
            raise DockerfileError(f"{where}: unknown flag: --{name} (for {cmd})")
        if allowed[name] and not eq:
            raise DockerfileError(f"{where}: flag --{name} needs a value (--{name}=...)")
        val = value if allowed[name] else (value.lower() not in ("false", "0") if eq else True)
        if name in out:  # --mount may repeat
            prev = out[name]
            out[name] = (*prev, val) if isinstance(prev, tuple) else (prev, val)
        else:
            out[name] = val
    return out


_MIN_ARGS = {"FROM": 1, "RUN": 1, "COPY": 2, "ADD": 2, "ENV": 1, "ARG": 1, "LABEL": 1, "MAINTAINER": 1,
             "EXPOSE": 1, "VOLUME": 1, "USER": 1, "WORKDIR": 1, "SHELL": 1, "STOPSIGNAL": 1,
             "HEALTHCHECK": 1, "CMD": 0, "ENTRYPOINT": 0}


def _check_args(cmd: str, args: tuple, json: bool, where: str) -> None:
    words = [a for a in args if a != ""]
    if len(words) < _MIN_ARGS.get(cmd, 0):
        what = {"COPY": "at least two arguments", "ADD": "at least two arguments"}.get(cmd, "at least one argument")
        raise DockerfileError(f"{where}: {cmd} requires {what}")
    if cmd == "SHELL" and not json:
        raise DockerfileError(f"{where}: SHELL requires the arguments to be in JSON form")
    if cmd in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER") and len(words) != 1 and cmd != "MAINTAINER":
        raise DockerfileError(f"{where}: {cmd} requires exactly one argument")
    if cmd == "HEALTHCHECK" and words[0].upper() not in ("CMD", "NONE"):
        raise DockerfileError(f"{where}: unknown type for healthcheck command: {words[0]}", "use CMD or NONE")


def _from_words(ins: Instruction, path: str) -> tuple[str, str | None]:
    words = [a for a in ins.args if a]
    if len(words) == 1:
        return words[0], None
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not name or not (name[0].isalpha()) or not all(ch.isalnum() or ch in "._-" for ch in name):
            raise DockerfileError(f"{ins.where(path)}: invalid name for build stage: {words[2]!r}",
                                  "the name starts with a letter and has only letters, digits, '.', '_' and '-'")
        return words[0], name
    raise DockerfileError(f"{ins.where(path)}: FROM requires either one or three arguments (FROM IMAGE [AS NAME])")
