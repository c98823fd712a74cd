"""``since`` / ``until`` values: RFC 3339 times or relative durations like ``-1h``.

Accepted forms:

- RFC 3339 with a zone: ``2026-01-01T10:00:00Z``, ``2026-01-01T12:00:00+02:00``;
- a UTC calendar day: ``2026-01-01`` (its midnight);
- a duration ago: ``-90s``, ``-15m``, ``-1h``, ``-7d``, ``-2w`` (the ``-`` is optional);
- ``now``.

Validation (``check``) happens when a request is decoded; resolution against the
injected clock (``resolve``) when it is served.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from vaultmesh.services.logger.entry import stamp

_RELATIVE = re.compile(r"^-?(\d{1,9})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_HELP = "use RFC 3339 (2026-01-01T10:00:00Z), a date (2026-01-01), or a duration ago like -1h"


def _absolute(text: str) -> datetime:
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone; {_HELP}")
    return when.astimezone(UTC)


def parse(text: str, now: datetime) -> datetime:
    """The moment ``text`` names, relative to ``now``; raise ValueError with a usable hint."""
    value = text.strip()
    if value == "now":
        return now
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        return _absolute(value)
    except ValueError as exc:
        if "time zone" in str(exc):
            raise
        raise ValueError(f"not a time: {text!r}; {_HELP}") from None


def check(text: str) -> str:
    """``text`` unchanged if it is a valid time spec (a pydantic validator)."""
    parse(text, datetime.now(UTC))
    return text


def resolve(text: str | None, now: datetime) -> str | None:
    """The entry timestamp (fixed-width string) ``text`` names, or None."""
    return None if text is None else stamp(parse(text, now))
