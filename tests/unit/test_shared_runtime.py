"""The service runtime without a bus: start-up retry, ``async with``, stop signals."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.runtime import Lifecycle, start_with_retry, until_signalled


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


class Recorder(Lifecycle):
    """Records its lifecycle calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


async def test_async_with_starts_and_stops_even_when_the_block_fails() -> None:
    component = Recorder()

    async def failing_block() -> None:
        async with component as entered:
            assert entered is component
            assert component.calls == ["start"]
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_block()
    assert component.calls == ["start", "stop"]


async def test_until_signalled_returns_what_the_work_returns() -> None:
    assert await until_signalled(asyncio.sleep(0, "done")) == "done"


async def test_sigterm_cancels_the_work_and_gives_none() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.create_task(until_signalled(forever()))
    await started.wait()  # the handler is installed before the work runs
    os.kill(os.getpid(), signal.SIGTERM)
    assert await waiting is None
    assert cancelled.is_set()
