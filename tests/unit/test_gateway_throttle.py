"""Sign-in throttling per client address (injected clock, no sleeping)."""

from __future__ import annotations

import pytest

from vaultmesh.services.gateway.auth.throttle import LoginThrottle
from vaultmesh.services.gateway.errors import TooManyAttempts
from vaultmesh.shared.clock import ManualClock


def test_blocks_after_the_allowed_refusals_until_the_oldest_leaves_the_window() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, attempts=3, window_s=60)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.refused("10.0.0.1")
        clock.advance(10)
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("10.0.0.1")
    assert caught.value.retry_after_s == 30  # the first refusal (t=0) leaves at t=60
    assert caught.value.http_status == 429
    throttle.check("10.0.0.2")  # another address is not affected
    clock.advance(30)
    throttle.check("10.0.0.1")  # one slot free again


def test_a_success_clears_the_address() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, attempts=2, window_s=60)
    throttle.refused("a")
    throttle.succeeded("a")
    throttle.refused("a")
    throttle.check("a")  # one refusal since the success


def test_refusals_older_than_the_window_do_not_count() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, attempts=2, window_s=60)
    throttle.refused("a")
    clock.advance(61)
    throttle.refused("a")
    throttle.check("a")
    throttle.refused("a")
    with pytest.raises(TooManyAttempts):
        throttle.check("a")


def test_memory_is_bounded_by_forgetting_the_longest_unseen_addresses() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, attempts=1, window_s=60, max_addresses=2)
    for address in ("a", "b", "c"):
        throttle.refused(address)
    throttle.check("a")  # forgotten: it was seen longest ago
    for address in ("b", "c"):
        with pytest.raises(TooManyAttempts):
            throttle.check(address)
