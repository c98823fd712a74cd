"""The gateway component's lifecycle: ``async with``, stop twice, and a state started again.

The runtime undoes a start that failed half way with ``stop()`` and starts
again; the state must then work as new. Real nats-server, real sockets.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from nats.aio.client import Client

from tests.integration.test_gateway_support import (
    AGENT,
    eventually,
    gateway_settings,
    heartbeat,
)
from vaultmesh.services.gateway.auth.sessions import RevokedSessions, Session
from vaultmesh.services.gateway.metrics import GatewayMetrics
from vaultmesh.services.gateway.service import GatewayService, build_for
from vaultmesh.services.gateway.state import GatewayState
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.natsserver import NatsServer


async def test_async_with_serves_then_stops_for_good(nats_server: NatsServer, nc: Client) -> None:
    service = await build_for(gateway_settings(nats_server.url))(nc, ServiceMetrics("gateway"))
    assert isinstance(service, GatewayService)
    async with service as running:
        url = f"http://127.0.0.1:{running.port}"
        async with httpx.AsyncClient(base_url=url) as client:
            reply = await client.post("/api/agent/heartbeat", json=heartbeat(), headers=AGENT)
            assert reply.status_code == 200
    assert service.state.closing.is_set()
    await service.stop()  # a second stop is harmless
    try:
        await asyncio.open_connection("127.0.0.1", service.port)
    except OSError:
        pass
    else:
        raise AssertionError("still listening after stop")


async def test_a_stopped_state_starts_again_and_follows_the_bus(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = gateway_settings(nats_server.url)
    revoked = RevokedSessions()
    state = GatewayState.build(
        settings, nc, GatewayMetrics(ServiceMetrics("gateway")), None, revoked
    )
    other = GatewayState.build(settings, nc, GatewayMetrics(ServiceMetrics("gateway")))
    await other.start()
    await state.start()
    await state.stop()
    await state.start()  # as after a start the runtime undid
    try:
        assert not state.closing.is_set()
        session = Session(0, "restarted-replica-session", int(time.time()) + 600)
        assert await other.revocations.revoke(session)

        async def seen() -> bool:
            return session.session_id in revoked

        assert await eventually(seen, "the restarted state to see another replica's logout")
    finally:
        await state.stop()
        await other.stop()
