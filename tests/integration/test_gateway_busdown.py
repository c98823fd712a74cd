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
