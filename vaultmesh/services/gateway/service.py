"""The gateway process as one component: built, started and stopped here, and only here.

``runtime.run_service`` owns the process (JSON logs, uvloop, NATS connect,
SIGTERM) and calls ``build_for(settings)`` for the builder. Building wires the
app around the runtime's connection and binds the listening socket (a clear
error when the port is taken); ``GatewayService.start`` sets up the streams,
the batcher and the session revocations, then serves HTTP; ``stop`` ends the
event streams, lets in-flight requests finish within the grace period, stops
following the bus and waits for audit records, and returns so the runtime
drains NATS. ``async with GatewayService`` does the same around a block.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client

from vaultmesh.services.gateway.app import create_app
from vaultmesh.services.gateway.auth.authenticator import Authenticator
from vaultmesh.services.gateway.config import GatewaySettings
from vaultmesh.services.gateway.httpserver import internals
from vaultmesh.services.gateway.httpserver.limits import HttpLimits
from vaultmesh.services.gateway.httpserver.server import HttpServer, bind
from vaultmesh.services.gateway.ingest.handler import HeartbeatHandler
from vaultmesh.services.gateway.metrics import GatewayMetrics
from vaultmesh.services.gateway.state import GatewayState
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.runtime import Builder, Component, Lifecycle

log = logging.getLogger(__name__)


class GatewayService(Lifecycle):
    """The gateway's app, its shared state and its HTTP server, started and stopped together."""

    def __init__(self, app: FastAPI, state: GatewayState, server: HttpServer) -> None:
        self.app = app
        self.state = state
        self.server = server

    @classmethod
    def wire(
        cls,
        settings: GatewaySettings,
        nc: Client,
        metrics: ServiceMetrics,
        clock: Clock | None = None,
    ) -> GatewayService:
        """Everything around ``nc``, the socket bound; nothing started (ConfigError if bad)."""
        auth = Authenticator.from_settings(settings, clock)
        gateway_metrics = GatewayMetrics(metrics)
        revoked = auth.sessions.revoked
        state = GatewayState.build(settings, nc, gateway_metrics, clock, revoked)
        handler = HeartbeatHandler(auth, state)
        app = create_app(settings, auth=auth, state=state, heartbeats=handler)
        limits = HttpLimits.from_settings(settings)
        sock = bind(settings.http_host, settings.http_port)
        http = _front_door(handler, limits)
        server = HttpServer(app, sock, grace_s=settings.shutdown_grace_s, limits=limits, http=http)
        return cls(app, state, server)

    @property
    def port(self) -> int:
        """The port the gateway listens on."""
        return self.server.port

    async def start(self) -> None:
        """Streams first, so a broken bus fails start-up before any request; then HTTP."""
        await self.state.start()
        await self.server.start()

    async def stop(self) -> None:
        """End event streams, finish in-flight requests, stop following the bus (idempotent)."""
        self.state.begin_shutdown()
        await self.server.stop()
        await self.state.stop()


def _front_door(handler: HeartbeatHandler, limits: HttpLimits) -> type[asyncio.Protocol] | None:
    """The front door's protocol class, or None when this uvicorn lacks what it builds on."""
    lacking = internals.missing()
    if lacking is not None:
        log.warning(
            "uvicorn %s lacks %s: serving every request through plain uvicorn (h11), "
            "without the front door and the limits on header count and request time",
            uvicorn.__version__,
            lacking,
        )
        return None
    # Imported only now: the module extends the very internals checked above.
    from vaultmesh.services.gateway.ingest.frontdoor import front_door

    return front_door(handler, limits)


def build_for(settings: GatewaySettings, clock: Clock | None = None) -> Builder:
    """The runtime's builder: the gateway wired around the runtime's connection and metrics."""

    async def build(nc: Client, metrics: ServiceMetrics) -> Component:
        return GatewayService.wire(settings, nc, metrics, clock)

    return build
