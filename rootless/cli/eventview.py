"""What ``events`` prints: Docker's line per event, or the event through ``--format``."""

from __future__ import annotations

import time

from rootless.cli.gotemplate import Struct

# Docker's events.Message: Go field -> JSON key (``{{json .}}`` shows the JSON keys)
_FIELDS = {"Status": "status", "ID": "id", "From": "from", "Type": "Type", "Action": "Action", "Actor": "Actor",
           "Scope": "scope", "Time": "time", "TimeNano": "timeNano"}
_DEFAULTS = {"status": "", "id": "", "from": "", "scope": "local", "time": 0, "timeNano": 0}


class _Message(Struct):
    """An event for a Go template: its fields under their Go names (``.ID``, ``.Actor.Attributes``),
    its JSON under Docker's keys."""

    type_name = "events.Message"

    def __getitem__(self, key):
        if key not in _FIELDS:
            raise KeyError(key)
        return self.get(_FIELDS[key], _DEFAULTS.get(_FIELDS[key], ""))


class _Actor(Struct):
    type_name = "events.Actor"


def template_data(ev: dict) -> _Message:
    actor = ev.get("Actor") or {}
    return _Message(ev, Actor=_Actor(ID=actor.get("ID", ""), Attributes=dict(actor.get("Attributes") or {})))


def format_time(ns: int) -> str:
    """Go's RFC3339NanoFixed in local time, as ``docker events`` prints it (``Z`` in UTC)."""
    sec, frac = divmod(ns, 1_000_000_000)
    t = time.localtime(sec)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}{zone}"


def line(ev: dict) -> str:
    """``2026-12-05T08:00:00.123456789Z container start ID (image=busybox, name=x)``."""
    actor = ev.get("Actor") or {}
    ns = ev.get("timeNano") or ev.get("time", 0) * 1_000_000_000
    out = f"{format_time(ns)} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out + "\n"


def printer(fmt: str | None):
    """The function that turns an event into its output (a line, newline included); a template
    that does not parse is refused now, before any event is read."""
    if not fmt:
        return line
    from rootless.cli import gotemplate
    tmpl = gotemplate.compile(gotemplate.unescape("{{json .}}" if fmt == "json" else fmt))
    return lambda ev: tmpl.render(template_data(ev)) + "\n"
