"""Bus helpers that need no server."""

from __future__ import annotations

import pytest

from vaultmesh.shared.bus import _ErrorThrottle


async def test_connection_errors_are_throttled(caplog: pytest.LogCaptureFixture) -> None:
    throttle = _ErrorThrottle(interval_s=3600)
    for _ in range(50):
        await throttle.report(RuntimeError("slow consumer"))
    await throttle.report(ValueError("other"))
    assert len(caplog.records) == 2
