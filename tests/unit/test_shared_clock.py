"""The RFC 3339 formatter: identical to ``isoformat`` in UTC with a ``Z``, however it is called."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from vaultmesh.shared.clock import ManualClock, rfc3339


def reference(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_matches_isoformat_for_many_times_in_any_order() -> None:
    rng = random.Random(7)
    base = datetime(2026, 11, 22, 23, 59, 58, tzinfo=UTC)
    for _ in range(5000):
        when = base + timedelta(microseconds=rng.randrange(0, 4_000_000))
        if rng.random() < 0.1:
            when = when.replace(microsecond=0)
        assert rfc3339(when) == reference(when)


def test_whole_seconds_have_no_fraction() -> None:
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)) == "2026-01-02T03:04:05.000007Z"


def test_other_offsets_are_converted_to_utc() -> None:
    when = datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(when) == "2025-12-31T22:30:00Z"
    # The same wall-clock second in another zone must not reuse the cached UTC text.
    utc = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert rfc3339(utc) == "2026-01-01T00:30:00Z"
    assert rfc3339(when) == "2025-12-31T22:30:00Z"


def test_manual_clock_advances() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(1.5)
    assert rfc3339(clock.now()) == "2026-01-01T00:00:01.500000Z"
