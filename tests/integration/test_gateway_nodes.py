"""`DELETE /api/nodes/{id}` over real HTTP, with fleet-state and nats-server for real."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.test_fleet_removal import stored_value
from tests.integration.test_gateway_support import (
    ADMIN,
    AGENT,
    Gateway,
    assert_error_shape,
    eventually,
    gateway_audit,
    heartbeat,
    running_gateway,
    start_fleet,
)
from vaultmesh.services.fleet.derived import parse_tombstone
from vaultmesh.shared.natsserver import NatsServer


async def _restart_fleet(gateway: Gateway) -> None:
    component, nc = gateway.extras.pop()
    await component.stop()
    await nc.close()
    gateway.extras.append(await start_fleet(gateway.settings.nats_url))


async def test_an_admin_deletes_a_node_and_it_stays_deleted(nats_server: NatsServer) -> None:
    node = uuid.uuid4()
    async with running_gateway(nats_server.url) as gateway, gateway.client() as client:
        posted = await client.post(
            "/api/agent/heartbeat", json=heartbeat(node, hostname="doomed-01"), headers=AGENT
        )
        assert posted.status_code == 200, posted.text

        async def registered() -> bool:
            return (await client.get(f"/api/nodes/{node}", headers=ADMIN)).status_code == 200

        await eventually(registered, "the node registered")
        assert_error_shape(await client.delete(f"/api/nodes/{node}"), 401)

        reply = await client.delete(f"/api/nodes/{node}", headers=ADMIN)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert (body["node_id"], body["hostname"], body["reason"]) == (
            str(node),
            "doomed-01",
            "deleted",
        )
        assert_error_shape(await client.get(f"/api/nodes/{node}", headers=ADMIN), 404)
        listed = (await client.get("/api/nodes", headers=ADMIN)).json()["nodes"]
        assert str(node) not in {n["node_id"] for n in listed}
        assert parse_tombstone(await stored_value(gateway.nc, str(node))) is not None
        assert "no node" in assert_error_shape(
            await client.delete(f"/api/nodes/{node}", headers=ADMIN), 404
        )
        assert_error_shape(await client.delete("/api/nodes/not-a-uuid", headers=ADMIN), 422)

        async def audited() -> list[dict[str, Any]] | None:
            found = await gateway_audit(gateway.nc, "node_delete")
            return [r for r in found if r["detail"].get("node_id") == str(node)] or None

        (record,) = await eventually(audited, "the deletion's audit record")
        assert (record["principal"], record["outcome"]) == ("admin-token-1", "allowed")
        assert record["detail"]["via"] == "token"

        await _restart_fleet(gateway)  # rebuilt from the streams: still deleted
        assert (await client.get("/api/fleet/counts", headers=ADMIN)).status_code == 200
        assert_error_shape(await client.get(f"/api/nodes/{node}", headers=ADMIN), 404)
