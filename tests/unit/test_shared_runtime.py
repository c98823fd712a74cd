"""Start-up retry of the service runtime (no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.runtime import start_with_retry


class Flaky:
    """Fails ``failures`` times with a transient error, then starts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.stops = 0

    async def start(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise Unavailable("JetStream system temporarily unavailable")

    async def stop(self) -> None:
        self.stops += 1


async def test_transient_start_errors_are_retried() -> None:
    component = Flaky(failures=1)
    await start_with_retry(component, timeout_s=30, stop=asyncio.Event())
    assert component.calls == 2
    assert component.stops == 1  # the half-started attempt was cleaned up before the retry


async def test_gives_up_after_the_timeout() -> None:
    component = Flaky(failures=100)
    with pytest.raises(Unavailable, match="could not start"):
        await start_with_retry(component, timeout_s=0, stop=asyncio.Event())
    assert component.calls == 1


async def test_a_stop_request_ends_the_retries() -> None:
    stop = asyncio.Event()
    stop.set()
    component = Flaky(failures=100)
    with pytest.raises(Unavailable):
        await start_with_retry(component, timeout_s=30, stop=stop)
    assert component.calls == 1


async def test_other_errors_are_not_retried() -> None:
    class Broken(Flaky):
        async def start(self) -> None:
            self.calls += 1
            raise ValueError("bad config")

    component = Broken(failures=0)
    with pytest.raises(ValueError, match="bad config"):
        await start_with_retry(component, timeout_s=30, stop=asyncio.Event())
    assert component.calls == 1
