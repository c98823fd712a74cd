"""The events working set: EVENTS replayed on start, bounded, filtered, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from nats.aio.client import Client

from tests.integration.test_fleet_support import clock_at, running, settings_for, wait_for
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import subjects
from vaultmesh.shared.models.events import EventEnvelope, EventKind, EventsQuery
from vaultmesh.shared.natsserver import NatsServer

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def _post(nc: Client, kind: EventKind, node: UUID | None, n: int) -> int:
    event = EventEnvelope.create(
        kind=kind, author="operator", node_id=node, body=f"event {n}", ts=T0 + timedelta(minutes=n)
    )
    ack = await nc.jetstream().publish(
        subjects.event(kind.value, node), event.model_dump_json().encode()
    )
    return int(ack.seq)


async def test_events_are_replayed_bounded_and_filtered(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = settings_for(nats_server.url, fleet_events_window=5)
    client = FleetClient(nc)
    node = uuid4()
    async with running(settings, clock_at()) as service:
        for n in range(3):
            await _post(nc, EventKind.NOTE, None, n)
        await nc.jetstream().publish(subjects.event("note"), b"not an envelope")
        last = await _post(nc, EventKind.INCIDENT, node, 3)
        tail = service.events
        assert tail is not None
        await wait_for(lambda: tail.last_seq >= last, what="events read")
        everything = await client.events(EventsQuery())
        assert [e.body for e in everything.events] == ["event 3", "event 2", "event 1", "event 0"]
        skipped = service.metrics.base.registry.get_sample_value(
            "vaultmesh_fleet_events_skipped_total", {"service": "fleet"}
        )
        assert skipped == 1

    for n in range(4, 8):  # published while fleet-state is down
        last = await _post(nc, EventKind.NOTE if n % 2 else EventKind.ACK, node, n)

    async with running(settings, clock_at()):
        replayed = await client.events(EventsQuery(limit=100))
        assert [e.body for e in replayed.events] == [f"event {n}" for n in (7, 6, 5, 4, 3)]
        assert replayed.sequences[0] == last
        assert replayed.sequences == sorted(replayed.sequences, reverse=True)
        notes = await client.events(EventsQuery(kind=EventKind.NOTE))
        assert [e.body for e in notes.events] == ["event 7", "event 5"]
        about = await client.events(EventsQuery(node_id=node, limit=2))
        assert [e.body for e in about.events] == ["event 7", "event 6"]
        recent = await client.events(EventsQuery(since=T0 + timedelta(minutes=6)))
        assert [e.body for e in recent.events] == ["event 7", "event 6"]
        none = await client.events(EventsQuery(kind=EventKind.TAG))
        assert none.events == []
        assert none.sequences == []
