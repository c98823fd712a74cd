"""Removing nodes on a real bus: an admin's delete and the retention sweep, across restarts."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from nats.aio.client import Client

from tests.integration.test_fleet_support import (
    clock_at,
    heartbeat,
    move,
    publish,
    running,
    settings_for,
    stream_events,
    wait_for,
)
from tests.integration.test_gateway_support import audit_records
from vaultmesh.services.fleet.derived import parse_record, parse_tombstone
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import subjects
from vaultmesh.shared.errors import BadRequest, NotFound
from vaultmesh.shared.models.events import EventKind
from vaultmesh.shared.models.fleet import RemovalReason
from vaultmesh.shared.natsserver import NatsServer


async def fleet_audit(nc: Client, action: str) -> list[dict[str, Any]]:
    """Every ``audit.fleet.<action>`` record stored in AUDIT so far, oldest first."""
    return await audit_records(nc, "fleet", action)


async def stored_value(nc: Client, node: str) -> bytes:
    """The node's current value in FLEET_STATE."""
    kv = await nc.jetstream().key_value(subjects.KV_FLEET_STATE)
    entry = await kv.get(node)
    return entry.value or b""


async def known(client: FleetClient, node: str) -> bool:
    try:
        await client.get_node(UUID(node))
    except NotFound:
        return False
    return True


async def test_a_deleted_node_is_gone_announced_audited_and_stays_gone_after_restart(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = settings_for(nats_server.url)
    client = FleetClient(nc)
    doomed, kept = str(uuid4()), str(uuid4())
    async with running(settings, clock_at()) as service:
        for node in (doomed, kept):
            await publish(nc, node, heartbeat(node, hostname=f"host-{node[:8]}"))
        await wait_for(lambda: service.registry.get(kept) is not None, what="registration")
        await wait_for(lambda: service.registry.get(doomed) is not None, what="registration")
        await service.writer.flush()  # type: ignore[union-attr]
        assert parse_record(await stored_value(nc, doomed)) is not None

        removal = await client.delete_node(UUID(doomed), by="admin-token-1")
        assert (removal.hostname, removal.reason) == (f"host-{doomed[:8]}", RemovalReason.DELETED)
        assert not await known(client, doomed)
        listed = {str(n.node_id) for n in (await client.list_nodes(limit=10_000)).nodes}
        assert doomed not in listed
        assert kept in listed
        tombstone = parse_tombstone(await stored_value(nc, doomed))
        assert tombstone is not None
        assert tombstone.removed is RemovalReason.DELETED

        async def announced() -> bool:
            return bool(await stream_events(nc, EventKind.REMOVAL.value, doomed))

        await wait_for(announced, what="the removal event")
        (event,) = await stream_events(nc, EventKind.REMOVAL.value, doomed)
        assert (event.data["reason"], event.data["by"]) == ("deleted", "admin-token-1")

        async def audited() -> bool:
            records = await fleet_audit(nc, "node_delete")
            return any(r["node_id"] == doomed for r in records)

        await wait_for(audited, what="the audit record")
        (record,) = [r for r in await fleet_audit(nc, "node_delete") if r["node_id"] == doomed]
        assert (record["principal"], record["outcome"]) == ("admin-token-1", "allowed")

    # The restart replays the last heartbeat of every node: the deleted one must stay deleted.
    async with running(settings, clock_at()) as again:
        assert await known(client, kept)
        assert not await known(client, doomed)
        assert again.registry.get(doomed) is None
        # Beating after the deletion brings it back, as a new node (the shared agent identity).
        await publish(nc, doomed, heartbeat(doomed))
        await wait_for(lambda: known(client, doomed), what="the node beating again")
        await again.writer.flush()  # type: ignore[union-attr]
        assert parse_record(await stored_value(nc, doomed)) is not None


async def test_deleting_an_unknown_or_malformed_node_is_a_clear_error(
    nats_server: NatsServer, nc: Client
) -> None:
    client = FleetClient(nc)
    async with running(settings_for(nats_server.url), clock_at()):
        with pytest.raises(NotFound, match="no node"):
            await client.delete_node(uuid4(), by="admin")
        with pytest.raises(BadRequest, match="node_id"):
            await client._ask("delete", {"node_id": "not-a-uuid"})
        assert (await client.counts()).total >= 0  # still answering


async def test_silent_nodes_expire_after_the_retention_and_stay_expired_after_restart(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = settings_for(nats_server.url, fleet_node_retention_s=3600)
    client = FleetClient(nc)
    clock = clock_at()
    silent = str(uuid4())
    async with running(settings, clock) as service:
        await publish(nc, silent, heartbeat(silent))
        await wait_for(lambda: service.registry.get(silent) is not None, what="registration")
        move(clock, 1800)
        await service.expire()
        assert service.registry.get(silent) is not None  # within the retention
        move(clock, 3700)
        assert await service.expire() >= 1
        assert not await known(client, silent)
        tombstone = parse_tombstone(await stored_value(nc, silent))
        assert tombstone is not None
        assert tombstone.removed is RemovalReason.EXPIRED

        async def announced() -> bool:
            return bool(await stream_events(nc, EventKind.REMOVAL.value, silent))

        await wait_for(announced, what="the removal event")
        (event,) = await stream_events(nc, EventKind.REMOVAL.value, silent)
        assert (event.data["reason"], event.author) == ("expired", "fleet-state")

    # Real time has hardly moved: replayed, its heartbeat would be well within the retention.
    async with running(settings, clock_at()):
        assert not await known(client, silent)
