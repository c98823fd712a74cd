"""How long the gateway has been without its bus: what ``/healthz`` judges liveness by.

nats-py reconnects for ever and says only whether it is connected now, not
since when. A timer looks every ``interval_s`` and remembers when it first saw
the connection down, so ``/healthz`` can tell a reconnect in progress (healthy)
from a bus gone for longer than ``VAULTMESH_HEALTH_BUS_GRACE_S`` (not: every
API call has been answering 503 for that long, and an orchestrator should know).
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

CHECK_INTERVAL_S = 0.5


class BusWatch:
    """Notes when the connection was first seen down; forgets it once it is back."""

    def __init__(self, nc: Client, interval_s: float = CHECK_INTERVAL_S) -> None:
        self._nc = nc
        self._interval = interval_s
        self._lost_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Look now and every ``interval_s`` (idempotent; needs a running loop)."""
        if self._timer is None:
            self._tick()

    def stop(self) -> None:
        """Stop looking (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def down_for(self) -> float:
        """Seconds since the connection was first seen down; 0 while it is up."""
        now = self._look()
        return 0.0 if self._lost_at is None else now - self._lost_at

    def _look(self) -> float:
        now = asyncio.get_running_loop().time()
        if self._nc.is_connected:
            self._lost_at = None
        elif self._lost_at is None:
            self._lost_at = now
        return now

    def _tick(self) -> None:
        self._look()
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)
