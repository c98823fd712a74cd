"""Injectable clocks, so staleness and TTL logic is testable without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (for tests and simulations)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """The current (manual) time."""
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward and return the new time."""
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        self._now = when


# Date-and-time text of recently seen seconds: timestamps come in runs, a few distinct
# seconds at a time (now, and the created/updated times of what is being described).
_SECONDS: dict[tuple[int, int, int, int, int, int], str] = {}
_SECONDS_KEPT = 256


def rfc3339(when: datetime) -> str:
    """Format ``when`` as RFC 3339 UTC with a ``Z`` suffix, exactly as
    ``isoformat()`` would (fractional seconds only when non-zero).

    Runs for every audit record and event, so the part up to the second is
    formatted once per distinct second and reused.
    """
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    key = (when.second, when.minute, when.hour, when.day, when.month, when.year)
    text = _SECONDS.get(key)
    if text is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        text = _SECONDS[key] = when.replace(microsecond=0, tzinfo=None).isoformat()
    micro = when.microsecond
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"
