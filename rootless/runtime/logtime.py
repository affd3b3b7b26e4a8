"""The times of container logs: an entry's time as written (:func:`format_time`) and read back
(:func:`parse_time`), and Docker's ``--since``/``--until`` forms (:func:`parse_since`)."""

from __future__ import annotations

import re
import time

from rootless.base.clock import parse_duration

_NS = 1_000_000_000


def format_time(ns: int) -> str:
    """RFC 3339 in UTC with exactly nine fractional digits, as ``docker logs -t`` prints it."""
    sec, frac = divmod(ns, _NS)
    t = time.gmtime(sec)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:09d}Z")


# Patterns are compiled on first use (re caches them): compiling costs import time.
_TIMESTAMP = (r"(\d{4})-(\d{2})-(\d{2})"
              r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
              r"([Zz]|[+-]\d{2}:\d{2})?")


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _month_days(y: int, m: int) -> int:
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _parse_timestamp(text: str, strict: bool) -> int:
    """Nanoseconds since the epoch; ``strict`` asks for a full RFC 3339 date-time with a zone,
    otherwise the time of day (or its seconds) and the zone may be left out (local time)."""
    m = re.fullmatch(_TIMESTAMP, text, re.ASCII)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, mon, day, hour, minute, sec, frac, zone = m.groups()
    if strict and (sec is None or zone is None):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d = int(year), int(mon), int(day)
    h, mi, s = int(hour or 0), int(minute or 0), int(sec or 0)
    if not (1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and h < 24 and mi < 60 and s < 60):
        raise ValueError(f"timestamp out of range: {text!r}")
    sub = int(frac.ljust(9, "0")) if frac else 0
    if zone is None:  # local time, as Docker reads --since 2026-11-27T10:00
        try:
            return int(time.mktime((y, mo, d, h, mi, s, 0, 0, -1))) * _NS + sub
        except (OverflowError, ValueError) as e:
            raise ValueError(f"timestamp out of range: {text!r}") from e
    offset = 0
    if zone not in ("Z", "z"):
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise ValueError(f"bad UTC offset in timestamp: {text!r}")
        offset = (oh * 3600 + om * 60) * (-1 if zone[0] == "-" else 1)
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    return seconds * _NS + sub


_SECONDS: dict[str, int] = {}  # "2026-11-27T23:54:31" → ns: entries share their second


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp (up to nine fractional digits, ``Z`` or ``±HH:MM``) → ns since epoch."""
    if len(text) == 30 and text[19] == "." and text[29] == "Z":  # the writer's own form
        frac = text[20:29]
        if frac.isascii() and frac.isdigit():
            base = _SECONDS.get(text[:19])
            if base is None:
                base = _parse_timestamp(text, strict=True) - int(frac)
                if len(_SECONDS) >= 4096:
                    _SECONDS.clear()
                _SECONDS[text[:19]] = base
            return base + int(frac)
    return _parse_timestamp(text, strict=True)


_UNIX = r"(\d+)(?:\.(\d{1,9}))?"


def parse_since(value: str, now_ns: int | None = None) -> int:
    """Docker's ``--since``/``--until`` forms → ns since epoch.

    A relative duration (``10m``, ``1h30m``, ``45s``: now minus that), a Unix
    timestamp (``1700000000`` or ``1700000000.123``), or an RFC 3339 timestamp;
    like Docker, a date or date-time without a zone is local time.
    """
    value = value.strip()
    if value != "0":  # "0" is Unix time 0, as in Docker
        try:
            ago = parse_duration(value)
        except ValueError:
            pass
        else:
            return (time.time_ns() if now_ns is None else now_ns) - ago
    m = re.fullmatch(_UNIX, value, re.ASCII)
    if m:
        return int(m[1]) * _NS + (int(m[2].ljust(9, "0")) if m[2] else 0)
    try:
        return _parse_timestamp(value, strict=False)
    except ValueError:
        raise ValueError(
            f"invalid time {value!r}: use a timestamp (2026-11-27T23:54:31Z, 1700000000) "
            "or a relative time (10m, 1h30m)") from None
