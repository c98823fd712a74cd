"""fleet-state against a real nats-server: bus in, gateway client out, restarts lose nothing."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue

from tests.integration.test_fleet_support import (
    clock_at,
    heartbeat,
    publish,
    running,
    settings_for,
    statuses,
    wait_for,
)
from vaultmesh.services.fleet.derived import parse_record
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.errors import BadRequest, NotFound
from vaultmesh.shared.models.fleet import NodeStatus
from vaultmesh.shared.natsserver import NatsServer


async def test_heartbeat_on_the_bus_is_visible_through_every_endpoint(
    nats_server: NatsServer, nc: Client
) -> None:
    client = FleetClient(nc)
    async with running(settings_for(nats_server.url), clock_at()):
        before = await client.counts()
        node = str(uuid4())
        metrics = {"load1": 0.25, "disk_free_bytes": 1000}
        base = f"vault-{node[:8]}"
        for hostname in (base, base, "seq-2"):
            await publish(nc, node, heartbeat(node, hostname=hostname, metrics=metrics))

        async def seen() -> bool:
            try:
                return len((await client.history(UUID(node))).heartbeats) == 3
            except NotFound:
                return False

        await wait_for(seen, what="three heartbeats in history")
        view = await client.get_node(UUID(node))
        assert view.status is NodeStatus.ATTN  # the last heartbeat changed the hostname: drift
        assert view.hostname == "seq-2"
        assert view.metrics is not None
        assert view.metrics.load1 == 0.25
        assert view.interval_s == 10
        history = await client.history(UUID(node), limit=2)
        assert [hb.hostname for hb in history.heartbeats] == ["seq-2", base]
        listed = await client.list_nodes(status=NodeStatus.ATTN)
        assert node in {str(n.node_id) for n in listed.nodes}
        after = await client.counts()
        assert after.total == before.total + 1
        assert after.attention == before.attention + 1


async def test_list_pages_and_filters(nats_server: NatsServer, nc: Client) -> None:
    client = FleetClient(nc)
    async with running(settings_for(nats_server.url), clock_at()) as service:
        prefix = uuid4().hex[:6]
        nodes = [str(uuid4()) for _ in range(4)]
        for i, node in enumerate(nodes):
            await publish(nc, node, heartbeat(node, hostname=f"{prefix}-{i}", services_ok=i != 3))
        await wait_for(lambda: all(service.registry.get(n) for n in nodes), what="4 nodes")
        everything = await client.list_nodes(limit=10_000)
        assert everything.total == len(everything.nodes) >= 4
        hostnames = [n.hostname for n in everything.nodes]
        assert hostnames == sorted(hostnames)
        page = await client.list_nodes(limit=2, offset=1)
        assert [n.hostname for n in page.nodes] == hostnames[1:3]
        critical = await client.list_nodes(status=NodeStatus.CRIT)
        assert f"{prefix}-3" in {n.hostname for n in critical.nodes}
        assert all(n.status is NodeStatus.CRIT for n in critical.nodes)


async def test_unknown_node_and_bad_requests_are_clear_errors(
    nats_server: NatsServer, nc: Client
) -> None:
    client = FleetClient(nc)
    async with running(settings_for(nats_server.url), clock_at()):
        with pytest.raises(NotFound, match="no node"):
            await client.get_node(uuid4())
        with pytest.raises(NotFound):
            await client.history(uuid4())
        with pytest.raises(BadRequest, match="node_id"):
            await bus.request(nc, subjects.fleet_api("get"), {"node_id": "not-a-uuid"})
        with pytest.raises(BadRequest, match="limit"):
            await bus.request(nc, subjects.fleet_api("list"), {"limit": 0})
        assert (await client.counts()).total >= 0  # still answering


async def test_restart_loses_no_node_and_keeps_derived_state(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = settings_for(nats_server.url)
    client = FleetClient(nc)
    healthy, tunnel_down, while_down = (str(uuid4()) for _ in range(3))
    async with running(settings, clock_at()) as first:
        await publish(nc, healthy, heartbeat(healthy))
        await publish(nc, tunnel_down, heartbeat(tunnel_down, cloudflare_ok=False))
        await wait_for(lambda: first.registry.get(tunnel_down) is not None, what="registration")
        before = await client.get_node(UUID(healthy))
        before_attn = await client.get_node(UUID(tunnel_down))
    assert await statuses(nc, tunnel_down) == ["ATTN"]  # stop() flushed the writer
    # Acknowledged by the stream while fleet-state is down: must still be processed.
    await publish(nc, while_down, heartbeat(while_down))
    await publish(nc, healthy, heartbeat(healthy, services_ok=False))

    async with running(settings, clock_at()):
        kept = await client.get_node(UUID(tunnel_down))
        assert kept.status is NodeStatus.ATTN
        assert kept.reasons == before_attn.reasons
        assert kept.first_seen == before_attn.first_seen
        again = await client.get_node(UUID(healthy))
        assert again.first_seen == before.first_seen
        assert again.last_seen > before.last_seen
        assert again.status is NodeStatus.CRIT
        assert (await client.get_node(UUID(while_down))).status is NodeStatus.OK
        await wait_for(
            lambda: _has(nc, healthy, ["OK", "CRIT"]), what="transition found while replaying"
        )
    # Restoring a known ATTN node is not a new transition.
    assert await statuses(nc, tunnel_down) == ["ATTN"]


async def _has(nc: Client, node: str, expected: list[str]) -> bool:
    return await statuses(nc, node) == expected


async def test_derived_state_is_written_on_change_not_per_heartbeat(
    nats_server: NatsServer, nc: Client
) -> None:
    async with running(settings_for(nats_server.url), clock_at()) as service:
        js = nc.jetstream()
        kv = await js.key_value(subjects.KV_FLEET_STATE)
        node = str(uuid4())
        await publish(nc, node, heartbeat(node))
        await wait_for(lambda: service.registry.get(node) is not None, what="registration")
        assert service.writer is not None
        await service.writer.flush()
        first = await kv.get(node)
        for _ in range(5):
            last_seq = await publish(nc, node, heartbeat(node))
        tail = service.heartbeats
        assert tail is not None
        await wait_for(lambda: tail.last_seq >= last_seq, what="5 heartbeats read")
        await service.writer.flush()
        assert (await kv.get(node)).revision == first.revision  # nothing derived changed
        await publish(nc, node, heartbeat(node, cloudflare_ok=False))
        await wait_for(
            lambda: _revision_moved(kv, node, first.revision), what="a write on the change"
        )
        record = parse_record((await kv.get(node)).value or b"")
        assert record is not None
        assert record.status is NodeStatus.ATTN


async def _revision_moved(kv: KeyValue, node: str, revision: int | None) -> bool:
    entry = await kv.get(node)
    return bool(entry.revision != revision)


async def test_unreadable_state_records_are_skipped_on_start(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = settings_for(nats_server.url)
    node = str(uuid4())
    async with running(settings, clock_at()) as service:
        await publish(nc, node, heartbeat(node))
        await wait_for(lambda: service.registry.get(node) is not None, what="registration")
    kv = await nc.jetstream().key_value(subjects.KV_FLEET_STATE)
    good = await kv.get(node)
    junk = str(uuid4())
    await kv.put(junk, b"{not a record")
    await kv.put("NOT-A-UUID", good.value or b"")
    async with running(settings, clock_at()) as service:
        assert service.registry.get(junk) is None
        assert service.registry.get("NOT-A-UUID") is None
        assert service.registry.get(node) is not None
        assert (await FleetClient(nc).get_node(UUID(node))).status is NodeStatus.OK
