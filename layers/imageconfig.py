"""Image configs for ``commit`` and ``import``: ``-c`` changes and the committed image's config.

``parse_change`` reads one change in the Dockerfile syntax Docker accepts for
``commit -c`` and ``import -c`` (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
VOLUME, WORKDIR, STOPSIGNAL; no variable expansion). ``apply_changes`` applies
them to the ``config`` part of an image config. Everything here is pure.
"""

from __future__ import annotations

import copy
import posixpath

from rootless.base.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")
_PROTOCOLS = ("tcp", "udp", "sctp")
_SHELL = ["/bin/sh", "-c"]


# ---- one change ----------------------------------------------------------------
def parse_change(text: str) -> tuple[str, Any]:
    """One change: (INSTRUCTION, value).

    Values: CMD/ENTRYPOINT/VOLUME a list of str; ENV/LABEL a dict (in order);
    EXPOSE a list of "PORT/PROTO"; USER, WORKDIR (as written, maybe relative),
    STOPSIGNAL a str; ONBUILD the trigger instruction as written (its name upper-cased).
    """
    text = text.replace("\\\n", " ").strip()
    if not text:
        raise UsageError("empty change", f"write a Dockerfile instruction: {', '.join(SUPPORTED)}")
    head, *tail = text.split(None, 1)
    instr = head.upper()
    rest = tail[0].strip() if tail else ""
    if instr not in SUPPORTED:
        raise UsageError(f"{head} is not a valid change command; supported: {', '.join(SUPPORTED)}")
    if not rest:
        raise UsageError(f"{instr} requires at least one argument (change {text!r})")
    return instr, _PARSERS[instr](instr, rest)


def _json_array(instr: str, rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    import json
    try:
        value = json.loads(rest)
    except json.JSONDecodeError as e:
        raise UsageError(f"{instr}: malformed JSON array {rest!r} ({e.msg} at column {e.colno})",
                         f'write {instr} ["a", "b"] with double quotes, or {instr} a b (no brackets)') from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{instr}: {rest!r} is not a JSON array of strings")
    return value


def _command(instr: str, rest: str) -> list[str]:
    value = _json_array(instr, rest)
    return value if value is not None else _SHELL + [rest]


def _words(instr: str, s: str, split: bool = True) -> list[tuple[str, int]]:
    """Shell-like words with quotes and backslashes removed; each with the index of its
    first unquoted ``=`` (-1 if none). ``split=False``: one word, whitespace kept."""
    words: list[tuple[str, int]] = []
    cur: list[str] = []
    eq = -1
    started = False
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace() and split:
            if started:
                words.append(("".join(cur), eq))
                cur, eq, started = [], -1, False
            i += 1
            continue
        started = True
        if c == "\\":
            cur.append(s[i + 1] if i + 1 < n else c)
            i += 2
            continue
        if c in "\"'":
            j = i + 1
            while True:
                if j >= n:
                    raise UsageError(f"{instr}: unterminated {c} quote in {s!r}")
                d = s[j]
                if d == c:
                    break
                if c == '"' and d == "\\" and j + 1 < n and s[j + 1] in '"\\$`':
                    cur.append(s[j + 1])
                    j += 2
                    continue
                cur.append(d)
                j += 1
            i = j + 1
            continue
        if c == "=" and eq < 0:
            eq = len(cur)
        cur.append(c)
        i += 1
    if started:
        words.append(("".join(cur), eq))
    return words


def _name_values(instr: str, rest: str) -> dict[str, str]:
    """``K=V K2="v 2"`` or the legacy ``K V...`` (one pair, the value is the rest)."""
    words = _words(instr, rest)
    out: dict[str, str] = {}
    if words[0][1] < 0:  # legacy form
        key, *tail = rest.split(None, 1)
        value = tail[0] if tail else ""
        key_words = _words(instr, key)
        if len(key_words) != 1:
            raise UsageError(f"{instr}: cannot read a name in {rest!r}")
        value = value.strip()
        if not value:
            raise UsageError(f"{instr} {key_words[0][0]} needs a value: write {instr} {key_words[0][0]}=VALUE")
        out[key_words[0][0]] = _words(instr, value, split=False)[0][0]
    else:
        for word, eq in words:
            if eq < 0:
                raise UsageError(f"{instr}: can't find = in {word!r}; write name=value")
            out[word[:eq]] = word[eq + 1:]
    for key in out:
        if not key:
            raise UsageError(f"{instr}: empty name in {rest!r}")
        if instr == "ENV" and ("=" in key or any(ch.isspace() for ch in key)):
            raise UsageError(f"ENV: invalid variable name {key!r}")
    return out


def _expose(instr: str, rest: str) -> list[str]:
    out: list[str] = []
    for word, _ in _words(instr, rest):
        spec, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in _PROTOCOLS:
            raise UsageError(f"EXPOSE: invalid protocol {proto!r} in {word!r} (tcp, udp or sctp)")
        lo, dash, hi = spec.partition("-")
        try:
            start, end = int(lo), int(hi if dash else lo)
        except ValueError:
            raise UsageError(f"EXPOSE: invalid port {word!r}", "write PORT, PORT/udp or START-END") from None
        if not (0 < start <= end <= 65535):
            raise UsageError(f"EXPOSE: invalid port range {word!r} (ports are 1-65535)")
        out += [f"{p}/{proto}" for p in range(start, end + 1)]
    return out


def _one_word(instr: str, rest: str) -> str:
    value = [w for w, _ in _words(instr, rest)]
    if len(value) != 1 or not value[0]:
        raise UsageError(f"{instr} requires exactly one argument, not {rest!r}")
    return value[0]


def _user(instr: str, rest: str) -> str:
    user = _one_word(instr, rest)
    name, _, group = user.partition(":")
    if not name or (":" in user and not group):
        raise UsageError(f"USER: invalid user {user!r}; write USER name[:group] or uid[:gid]")
    return user


def _volume(instr: str, rest: str) -> list[str]:
    value = _json_array(instr, rest)
    if value is None:
        value = [w for w, _ in _words(instr, rest)]
    if not value or not all(v.strip() for v in value):
        raise UsageError(f"VOLUME: empty path in {rest!r}")
    return value


def _stop_signal(instr: str, rest: str) -> str:
    import signal
    sig = _one_word(instr, rest)
    if sig.isdigit():
        if not 0 < int(sig) < signal.NSIG:
            raise UsageError(f"STOPSIGNAL: invalid signal number {sig}")
        return sig
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    base, plus, offset = name.partition("+")
    valid = (base in ("SIGRTMIN", "SIGRTMAX") and (not plus or offset.isdigit())) or \
        (not plus and isinstance(getattr(signal, name, None), signal.Signals))
    if not valid:
        raise UsageError(f"STOPSIGNAL: unknown signal {sig!r}", "write a name like SIGTERM or a number like 15")
    return name


def _onbuild(instr: str, rest: str) -> str:
    trigger, *tail = rest.split(None, 1)
    name = trigger.upper()
    if name in ("ONBUILD", "FROM", "MAINTAINER"):
        raise UsageError(f"ONBUILD: {name} isn't allowed as an ONBUILD trigger")
    return " ".join([name, *tail])


_PARSERS = {
    "CMD": _command, "ENTRYPOINT": _command, "ENV": _name_values, "LABEL": _name_values,
    "EXPOSE": _expose, "USER": _user, "VOLUME": _volume, "WORKDIR": _one_word, "STOPSIGNAL": _stop_signal,
    "ONBUILD": _onbuild,
}


# ---- a config with changes ------------------------------------------------------
def _clean_dir(path: str) -> str:
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def apply_changes(config: dict, changes: list[str]) -> dict:
    """A new image ``config`` (Env, Cmd, Entrypoint, ...) with ``changes`` applied in order.

    All changes are parsed first: a bad one changes nothing. As in Docker, an
    ENTRYPOINT clears the inherited Cmd unless the same changes set a CMD.
    """
    parsed = [parse_change(c) for c in changes]
    out = copy.deepcopy(config or {})
    has_cmd = any(instr == "CMD" for instr, _ in parsed)
    for instr, value in parsed:
        if instr == "CMD":
            out["Cmd"] = list(value)
        elif instr == "ENTRYPOINT":
            out["Entrypoint"] = list(value)
            if not has_cmd:
                out.pop("Cmd", None)
        elif instr == "ENV":
            out["Env"] = merge_env(out.get("Env") or [], value)
        elif instr == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            ports.update({p: {} for p in value})
            out["ExposedPorts"] = ports
        elif instr == "LABEL":
            out["Labels"] = {**(out.get("Labels") or {}), **value}
        elif instr == "USER":
            out["User"] = value
        elif instr == "VOLUME":
            vols = dict(out.get("Volumes") or {})
            vols.update({v: {} for v in value})
            out["Volumes"] = vols
        elif instr == "WORKDIR":
            out["WorkingDir"] = _clean_dir(posixpath.join(out.get("WorkingDir") or "/", value))
        elif instr == "STOPSIGNAL":
            out["StopSignal"] = value
        elif instr == "ONBUILD":
            out["OnBuild"] = [*(out.get("OnBuild") or []), value]
    return out


def merge_env(env: list[str], updates: dict[str, str]) -> list[str]:
    """``KEY=VALUE`` items: an updated key keeps its place, new keys are appended."""
    out = list(env)
    index = {item.partition("=")[0]: i for i, item in enumerate(out)}
    for key, value in updates.items():
        if key in index:
            out[index[key]] = f"{key}={value}"
        else:
            index[key] = len(out)
            out.append(f"{key}={value}")
    return out


# ---- the committed image --------------------------------------------------------
def committed_config(base_image_config: dict, container_config: dict, new_diff_id: str, *,
                     author: str | None, comment: str | None, created: str, created_by: str) -> dict:
    """The new image config: the base's layers and history plus one layer and one entry."""
    base = base_image_config or {}
    rootfs = base.get("rootfs") or {}
    entry: dict = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    out: dict = {"architecture": base.get("architecture", ""), "os": base.get("os", "linux")}
    for key in ("variant", "os.version", "os.features"):
        if key in base:
            out[key] = copy.deepcopy(base[key])
    out["created"] = created
    if author:
        out["author"] = author
    out["config"] = copy.deepcopy(container_config)
    out["rootfs"] = {"type": "layers", "diff_ids": list(rootfs.get("diff_ids") or []) + [new_diff_id]}
    out["history"] = copy.deepcopy(list(base.get("history") or [])) + [entry]
    return out


def container_config_from_spec(spec_json: dict, base_config: dict) -> dict:
    """The ``config`` of an image committed from a container (``ContainerSpec.to_json()``).

    ``base_config`` is the base image's ``config`` (a whole image config is accepted too).
    Fields the container cannot change (ExposedPorts, Volumes, ...) are kept; its Healthcheck is
    the container's when it has one.
    """
    if isinstance((base_config or {}).get("rootfs"), dict):
        base_config = base_config.get("config") or {}
    out = copy.deepcopy(base_config or {})
    argv = list(spec_json.get("argv") or [])
    entrypoint = spec_json.get("entrypoint")
    if entrypoint is None:  # a record without it: infer from the base image
        entrypoint = list(out.get("Entrypoint") or [])
        if argv[:len(entrypoint)] != entrypoint:
            entrypoint = []
    entrypoint = list(entrypoint)
    cmd = argv[len(entrypoint):]
    if entrypoint:
        out["Entrypoint"] = entrypoint
    else:
        out.pop("Entrypoint", None)
    _put(out, "Cmd", cmd)
    _put(out, "Env", [e for e in spec_json.get("env") or [] if not e.startswith("HOSTNAME=")])
    _put(out, "User", spec_json.get("user") or "")
    workdir = spec_json.get("workdir") or ""
    _put(out, "WorkingDir", "" if workdir == "/" and not out.get("WorkingDir") else workdir)
    _put(out, "Labels", dict(spec_json.get("labels") or {}))
    stop = spec_json.get("stop_signal") or ""
    _put(out, "StopSignal", "" if stop == "SIGTERM" and not out.get("StopSignal") else stop)
    if spec_json.get("healthcheck"):  # the container's (its flags' over the base image's), as Docker commits it
        out["Healthcheck"] = copy.deepcopy(spec_json["healthcheck"])
    return out


def _put(cfg: dict, key: str, value: object) -> None:
    if value:
        cfg[key] = value
    else:
        cfg.pop(key, None)
