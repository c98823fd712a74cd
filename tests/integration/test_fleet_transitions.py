"""Attention transitions on a real bus, with a ManualClock (no sleeping): events on EVENTS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from nats.aio.client import Client

from tests.integration.test_fleet_support import (
    clock_at,
    heartbeat,
    move,
    publish,
    running,
    settings_for,
    statuses,
    stream_events,
    wait_for,
)
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared.models.common import Severity
from vaultmesh.shared.models.events import EventKind, EventsQuery
from vaultmesh.shared.models.fleet import NodeStatus
from vaultmesh.shared.natsserver import NatsServer


async def _statuses_are(nc: Client, node: str, expected: list[str]) -> bool:
    return await statuses(nc, node) == expected


async def test_staleness_goes_attn_then_crit_then_recovers(
    nats_server: NatsServer, nc: Client
) -> None:
    clock = clock_at()
    client = FleetClient(nc)
    async with running(settings_for(nats_server.url), clock) as service:
        node = str(uuid4())
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(lambda: service.registry.get(node) is not None, what="registration")
        service.sweep()
        await wait_for(lambda: _statuses_are(nc, node, ["OK"]), what="join event")

        move(clock, 50)  # 5 intervals: ATTN (> 3), not yet CRIT (> 10)
        service.sweep()
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN"]), what="ATTN event")
        move(clock, 150)
        service.sweep()
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN", "CRIT"]), what="CRIT event")
        view = await client.get_node(UUID(node))
        assert view.status is NodeStatus.CRIT
        assert view.reasons == ["no heartbeat for over 10 intervals (100 s)"]

        move(clock, 0)
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(
            lambda: _statuses_are(nc, node, ["OK", "ATTN", "CRIT", "OK"]), what="recovery"
        )

        events = await stream_events(nc, "attention", node)
        assert [e.data["previous"] for e in events] == [None, "OK", "ATTN", "CRIT"]
        assert [e.severity for e in events] == [
            Severity.INFO,
            Severity.WARNING,
            Severity.CRITICAL,
            Severity.INFO,
        ]
        assert events[1].data["reasons"] == ["no heartbeat for over 3 intervals (30 s)"]
        assert all(e.author == "fleet-state" and e.id_is_valid() for e in events)

        # The same events, newest first, from the working set.
        query = EventsQuery(kind=EventKind.ATTENTION, node_id=UUID(node))
        await wait_for(lambda: _window_has(service.window.query(query)[0], 4), what="working set")
        listed = await client.events(query)
        assert [e.data["status"] for e in listed.events] == ["OK", "CRIT", "ATTN", "OK"]
        assert listed.sequences == sorted(listed.sequences, reverse=True)


def _window_has(events: Sequence[object], count: int) -> bool:
    return len(events) == count


async def test_drift_is_flagged_then_accepted_as_the_new_baseline(
    nats_server: NatsServer, nc: Client
) -> None:
    clock = clock_at()
    settings = settings_for(nats_server.url, fleet_drift_accept_s=600)
    async with running(settings, clock) as service:
        node = str(uuid4())
        await publish(nc, node, heartbeat(node, hostname="vault-a", interval_s=86400))
        await publish(nc, node, heartbeat(node, hostname="vault-b", interval_s=86400))
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN"]), what="drift event")
        _joined, event = await stream_events(nc, "attention", node)
        assert event.data["reasons"] == ["drift: hostname changed from 'vault-a' to 'vault-b'"]
        assert event.data["hostname"] == "vault-b"

        state = service.registry.get(node)
        assert state is not None
        move(clock, 300)
        service.sweep()
        assert state.status is NodeStatus.ATTN  # not accepted yet
        assert state.base_hostname == "vault-a"
        move(clock, 700)
        service.sweep()
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN", "OK"]), what="drift accepted")
        assert state.base_hostname == "vault-b"
        assert state.drift_since is None


async def test_profile_and_root_drift_and_failed_checks(
    nats_server: NatsServer, nc: Client
) -> None:
    async with running(settings_for(nats_server.url), clock_at()):
        node = str(uuid4())
        await publish(nc, node, heartbeat(node, interval_s=86400))
        await publish(nc, node, heartbeat(node, interval_s=86400, services_ok=False))
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "CRIT"]), what="failed check")
        await publish(
            nc,
            node,
            heartbeat(node, interval_s=86400, os_profile="DebianVault", vaultmesh_root="/x"),
        )
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "CRIT", "ATTN"]), what="drift")
        latest = (await stream_events(nc, "attention", node))[-1]
        assert len(latest.data["reasons"]) == 2
        assert latest.data["reasons"][0].startswith("drift: os_profile changed")
        assert latest.data["reasons"][1].startswith("drift: vaultmesh_root changed")


async def test_clock_skew_on_a_new_node(nats_server: NatsServer, nc: Client) -> None:
    async with running(settings_for(nats_server.url, fleet_max_skew_s=60), clock_at()):
        node = str(uuid4())
        stamp = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        await publish(nc, node, heartbeat(node, timestamp=stamp, interval_s=86400))
        await wait_for(lambda: _statuses_are(nc, node, ["ATTN"]), what="skew event")
        (event,) = await stream_events(nc, "attention", node)
        assert event.data["previous"] is None
        assert event.data["reasons"] == [
            "clock skew: heartbeat timestamp more than 60 s behind arrival"
        ]


async def test_every_joining_node_is_announced_once(nats_server: NatsServer, nc: Client) -> None:
    """A new healthy node gets one ``attention`` event with no ``previous`` (its join), however
    often it beats; deleted, it joins again with one more (the dashboard needs no polling)."""
    client = FleetClient(nc)
    clock = clock_at()
    async with running(settings_for(nats_server.url), clock) as service:
        node = str(uuid4())

        async def beats(count: int) -> None:
            for _ in range(count):
                last = await publish(nc, node, heartbeat(node, interval_s=86400))
            await wait_for(lambda: service.heartbeats.last_seq >= last, what="heartbeats read")  # type: ignore[union-attr]
            await service.writer.flush()  # type: ignore[union-attr]

        await beats(3)
        (joined,) = await stream_events(nc, "attention", node)
        assert (joined.data["previous"], joined.data["status"]) == (None, "OK")
        assert joined.severity is Severity.INFO

        await client.delete_node(UUID(node), by="admin")
        move(
            clock, 60
        )  # a later join: its event differs (a same-instant one would be deduplicated)
        await beats(2)
        events = await stream_events(nc, "attention", node)
        assert [(e.data["previous"], e.data["status"]) for e in events] == [(None, "OK")] * 2
