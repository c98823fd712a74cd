"""The bus goes away under a running gateway: 5xx ``{"error"}``, alive, and back when it returns."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.test_gateway_support import (
    ADMIN,
    AGENT,
    assert_error_shape,
    eventually,
    heartbeat,
    running_gateway,
)
from vaultmesh.shared.natsserver import NatsServer


async def test_bus_down_gives_503_and_recovers(tmp_path: Path) -> None:
    server = NatsServer(data_dir=tmp_path / "nats").start()
    try:
        async with (
            running_gateway(
                server.url,
                fleet=False,
                publish_timeout_s=1.0,
                fleet_timeout_s=1.0,
                ready_timeout_s=0.5,
                nats_reconnect_wait=0.2,
            ) as gw,
            gw.client() as client,
        ):
            ok = await client.post("/api/agent/heartbeat", json=heartbeat(), headers=AGENT)
            assert ok.status_code == 200

            server.kill()
            down = await client.post("/api/agent/heartbeat", json=heartbeat(), headers=AGENT)
            assert_error_shape(down, 503)
            note = {"kind": "note", "author": "ops", "body": "x"}
            assert_error_shape(await client.post("/api/events", json=note, headers=ADMIN), 503)
            assert_error_shape(await client.get("/api/nodes", headers=ADMIN), 503)
            assert_error_shape(await client.get("/readyz"), 503)
            assert (await client.get("/healthz")).status_code == 200

            server.start()  # same port and store: the client reconnects by itself

            async def accepted() -> httpx.Response | None:
                reply = await client.post("/api/agent/heartbeat", json=heartbeat(), headers=AGENT)
                return reply if reply.status_code == 200 else None

            assert (await eventually(accepted, "ingest to recover")).json() == {"status": "ok"}
    finally:
        server.stop()


async def test_healthz_turns_unhealthy_when_the_bus_stays_gone(tmp_path: Path) -> None:
    server = NatsServer(data_dir=tmp_path / "nats").start()
    try:
        async with (
            running_gateway(
                server.url, fleet=False, health_bus_grace_s=0.5, nats_reconnect_wait=0.2
            ) as gw,
            gw.client() as client,
        ):
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            server.kill()

            async def unhealthy() -> httpx.Response | None:
                reply = await client.get("/healthz")
                return reply if reply.status_code != 200 else None

            down = await eventually(unhealthy, "/healthz to say the bus is gone")
            assert_error_shape(down, 503)
            assert "VAULTMESH_HEALTH_BUS_GRACE_S" in down.json()["error"]

            server.start()

            async def healthy() -> httpx.Response | None:
                reply = await client.get("/healthz")
                return reply if reply.status_code == 200 else None

            assert (await eventually(healthy, "/healthz to recover")).json() == {"status": "ok"}
    finally:
        server.stop()
