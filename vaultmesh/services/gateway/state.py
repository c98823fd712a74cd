"""What the gateway's routes share: settings, bus clients, metrics, limits, shutdown signal.

Built once per app from an open NATS connection; it holds no fleet state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fastapi import Request
from nats.aio.client import Client
from nats.errors import Error as NatsError

from vaultmesh.services.gateway.audit import GatewayAudit
from vaultmesh.services.gateway.auth.revocations import SessionRevocations
from vaultmesh.services.gateway.auth.sessions import RevokedSessions
from vaultmesh.services.gateway.auth.throttle import LoginThrottle
from vaultmesh.services.gateway.buswatch import BusWatch
from vaultmesh.services.gateway.config import GatewaySettings
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.services.gateway.ingest.batcher import HeartbeatBatcher
from vaultmesh.services.gateway.metrics import GatewayMetrics
from vaultmesh.services.gateway.publisher import Publisher
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.streams import (
    StreamLimits,
    audit_config,
    ensure_stream,
    events_config,
    heartbeats_config,
)


class Slots:
    """A counter bounding concurrent long-lived responses (SSE clients), mirrored in a gauge."""

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self._on_change = on_change

    def acquire(self) -> bool:
        """Take a slot; False when all are taken."""
        if self.used >= self.limit:
            return False
        self.used += 1
        self._changed()
        return True

    def release(self) -> None:
        """Give a slot back."""
        self.used = max(0, self.used - 1)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.used)


@dataclass
class GatewayState:
    """Shared by every request of one app."""

    settings: GatewaySettings
    nc: Client
    fleet: FleetClient
    publisher: Publisher
    heartbeats: HeartbeatBatcher
    metrics: GatewayMetrics
    sse_slots: Slots
    login_throttle: LoginThrottle
    audit: GatewayAudit
    revocations: SessionRevocations
    bus_watch: BusWatch
    clock: Clock = field(default_factory=SystemClock)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    started: bool = False

    @classmethod
    def build(
        cls,
        settings: GatewaySettings,
        nc: Client,
        metrics: GatewayMetrics,
        clock: Clock | None = None,
        revoked: RevokedSessions | None = None,
    ) -> GatewayState:
        """Wire the bus clients around ``nc`` (``revoked``: the Authenticator's revocations)."""
        gauge = metrics.sse_clients.labels(metrics.service)
        clock = clock or SystemClock()
        publisher = Publisher(nc, settings.publish_timeout_s)
        revoked = revoked if revoked is not None else RevokedSessions(clock)
        return cls(
            settings=settings,
            nc=nc,
            fleet=FleetClient(nc, timeout=settings.fleet_timeout_s),
            publisher=publisher,
            heartbeats=HeartbeatBatcher(
                nc,
                settings.publish_timeout_s,
                stream=subjects.STREAM_HEARTBEATS,
                on_stored=partial(metrics.count_published, subjects.STREAM_HEARTBEATS),
            ),
            metrics=metrics,
            sse_slots=Slots(settings.sse_max_clients, gauge.set),
            login_throttle=LoginThrottle(clock, settings.login_attempts, settings.login_window_s),
            audit=GatewayAudit(publisher, clock, metrics),
            revocations=SessionRevocations(publisher.js, revoked, clock, metrics),
            bus_watch=BusWatch(nc),
            clock=clock,
        )

    async def start(self) -> None:
        """Make sure the streams the gateway publishes to exist, then follow the bus (idempotent).

        After ``stop`` (a start that failed half way is undone by it) it starts afresh.
        """
        if self.started:
            return
        self.closing.clear()
        self.bus_watch.start()
        limits = StreamLimits()
        try:
            await self.publisher.start()
            await ensure_stream(self.publisher.js, heartbeats_config(limits))
            await self.heartbeats.start()  # after the stream exists: it reads its configuration
            await ensure_stream(self.publisher.js, events_config(limits))
            await ensure_stream(self.publisher.js, audit_config(limits))
            await self.revocations.start()  # before serving: a logged-out cookie stays out
        except (NatsError, TimeoutError, OSError) as exc:
            raise Unavailable(f"cannot set up the streams: {type(exc).__name__}") from None
        self.started = True

    def begin_shutdown(self) -> None:
        """Tell long-lived responses (SSE) to finish now."""
        self.closing.set()

    async def stop(self) -> None:
        """End long-lived responses, stop following the bus, let audit records finish (idempotent).

        The connection is the caller's: closing it ends the subscriptions.
        """
        self.begin_shutdown()
        self.revocations.stop()
        self.bus_watch.stop()
        await self.audit.flushed()
        self.started = False


def gateway_state(request: Request) -> GatewayState:
    """The app's GatewayState."""
    state: GatewayState = request.app.state.gateway
    return state
