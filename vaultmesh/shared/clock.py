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


class _SecondCache:
    """The formatted date and time of the last second seen (timestamps come in runs)."""

    __slots__ = ("key", "text")

    def __init__(self) -> None:
        self.key: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
        self.text = ""


_last_second = _SecondCache()


def rfc3339(when: datetime) -> str:
    """Format ``when`` as RFC 3339 UTC with a ``Z`` suffix, exactly as
    ``isoformat()`` would (fractional seconds only when non-zero).

    Runs for every audit record and event, so the part up to the second is
    formatted once per second and reused.
    """
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    key = (when.second, when.minute, when.hour, when.day, when.month, when.year)
    cache = _last_second
    if key != cache.key:
        cache.text = when.replace(microsecond=0, tzinfo=None).isoformat()
        cache.key = key
    micro = when.microsecond
    return f"{cache.text}.{micro:06d}Z" if micro else f"{cache.text}Z"
