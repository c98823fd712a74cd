"""Two fleet-state replicas on one real bus: one writer at a time, both answering.

Each replica here is a real ``FleetService`` on its own NATS connection, as in
the stack (two tasks in the ``fleet`` queue group). Every derived-state write
is counted on the wire: a core subscription to the node's FLEET_STATE subject
sees each write attempt, whichever replica made it. "Killing" a replica closes
its connection without stopping it: no lease release, no flush, exactly what
the others see when a task is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.integration.test_fleet_support import (
    clock_at,
    heartbeat,
    move,
    publish,
    settings_for,
    statuses,
    stream_events,
    wait_for,
)
from tests.integration.test_vault_helpers import (  # noqa: F401 (fixture)
    AuthNats,
    auth_nats,
)
from vaultmesh.services.fleet.config import FleetSettings
from vaultmesh.services.fleet.derived import parse_record, parse_tombstone
from vaultmesh.services.fleet.service import FleetService
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.errors import NotFound, Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.fleet import NodeStatus
from vaultmesh.shared.natsserver import NatsServer

# Long enough that a takeover seen within the test's deadlines came from a release,
# not from the lease running out; short where a killed writer must be replaced.
LONG_LEASE_S = 300
SHORT_LEASE_S = 2


class Replica:
    """A running FleetService, its connection, and its own clock."""

    def __init__(self, service: FleetService, nc: Client, clock: ManualClock) -> None:
        self.service, self.nc, self.clock = service, nc, clock

    @property
    def writing(self) -> bool:
        assert self.service.writer is not None
        return self.service.writer.leading

    def knows(self, node: str) -> bool:
        return self.service.registry.get(node) is not None

    async def kill(self) -> None:
        """Drop the connection as a crash would: nothing released, nothing flushed."""
        await bus.close_now(self.nc)

    async def flush(self) -> None:
        assert self.service.writer is not None
        if not self.nc.is_closed:
            await self.service.writer.flush()


@asynccontextmanager
async def replica(settings: FleetSettings, offset_s: float) -> AsyncIterator[Replica]:
    """A started replica whose clock runs ``offset_s`` ahead of the others (so two
    replicas never build byte-identical events the stream would deduplicate)."""
    clock = clock_at(offset_s)
    nc = await bus.connect(settings, "fleet-replica")
    service = FleetService(nc, ServiceMetrics("fleet"), settings, clock)
    await service.start()
    try:
        yield Replica(service, nc, clock)
    finally:
        # A killed replica's stop fails where it touches the bus; stop the rest anyway.
        for _ in range(2):
            with contextlib.suppress(Exception):
                await service.stop()
        await bus.close(nc)


@asynccontextmanager
async def kv_writes(nc: Client, node: str) -> AsyncIterator[list[Msg]]:
    """Every write to ``node``'s FLEET_STATE key while the block runs, by any replica."""
    seen: list[Msg] = []

    async def note(msg: Msg) -> None:
        seen.append(msg)

    sub = await nc.subscribe(subjects.kv_key(subjects.KV_FLEET_STATE, node), cb=note)
    await nc.flush()
    try:
        yield seen
    finally:
        await sub.unsubscribe()


async def settle(nc: Client, *replicas: Replica) -> None:
    """Write out whatever the live replicas have pending, and see it arrive here."""
    for each in replicas:
        await each.flush()
    await nc.flush()


def sweep_at(offset_s: float, *replicas: Replica) -> None:
    """Move every replica's clock to real now + ``offset_s`` (plus its own lead), sweep."""
    for i, each in enumerate(replicas):
        move(each.clock, offset_s + i * 0.5)
        each.service.sweep()


async def _statuses_are(nc: Client, node: str, expected: list[str]) -> bool:
    return await statuses(nc, node) == expected


async def status_via_api(nc: Client, node: str) -> NodeStatus:
    """The node's status as the queue group answers, retried as a client would: a request
    routed to a replica in the instant it died goes unanswered."""
    for _ in range(5):
        try:
            view = await FleetClient(nc).get_node(UUID(node))
        except Unavailable:
            continue
        return view.status
    raise AssertionError("no replica answered")


def lease(ttl_s: int, url: str) -> FleetSettings:
    return settings_for(url, fleet_lease_ttl_s=ttl_s)


async def test_two_replicas_write_and_announce_each_change_once(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = lease(LONG_LEASE_S, nats_server.url)
    node = str(uuid4())
    async with (
        kv_writes(nc, node) as writes,
        replica(settings, 0.0) as a,
        replica(settings, 0.3) as b,
    ):
        assert [a.writing, b.writing] == [True, False]
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(lambda: a.knows(node) and b.knows(node), what="both registered")
        await wait_for(lambda: _statuses_are(nc, node, ["OK"]), what="join event")

        sweep_at(50, a, b)  # 5 intervals: ATTN
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN"]), what="ATTN")
        sweep_at(150, a, b)  # 15 intervals: CRIT
        await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN", "CRIT"]), what="CRIT")
        sweep_at(0, a, b)
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(
            lambda: _statuses_are(nc, node, ["OK", "ATTN", "CRIT", "OK"]), what="recovery"
        )
        await settle(nc, a, b)

        assert await statuses(nc, node) == ["OK", "ATTN", "CRIT", "OK"]
        assert len(writes) == 4  # one record per change, by one replica
        # Both answer from a full registry; the follower's view is the writer's.
        for each in (a, b):
            found = each.service.registry.get(node)
            assert found is not None
            assert found.status is NodeStatus.OK


async def test_a_stopped_writer_hands_over_at_once_and_either_replica_answers(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = lease(LONG_LEASE_S, nats_server.url)
    node = str(uuid4())
    async with replica(settings, 0.0) as a, replica(settings, 0.3) as b:
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(lambda: a.knows(node) and b.knows(node), what="both registered")
        await wait_for(lambda: _statuses_are(nc, node, ["OK"]), what="join event")

        await a.service.stop()  # a rolling update's old task: releases the lease
        # Far sooner than the 300 s lease: the release, not the TTL, handed over.
        await wait_for(lambda: b.writing, timeout=60, what="takeover after release")
        assert await status_via_api(nc, node) is NodeStatus.OK  # b answers alone
        async with kv_writes(nc, node) as writes:
            sweep_at(50, b)
            await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN"]), what="ATTN by b")
            await settle(nc, b)
            assert len(writes) == 1
        assert await status_via_api(nc, node) is NodeStatus.ATTN


async def test_killing_the_writer_loses_nothing_and_doubles_nothing(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = lease(SHORT_LEASE_S, nats_server.url)
    node = str(uuid4())
    async with replica(settings, 0.0) as a, replica(settings, 0.3) as b:
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(lambda: a.knows(node) and b.knows(node), what="both registered")
        await wait_for(lambda: _statuses_are(nc, node, ["OK"]), what="join event")
        await settle(nc, a)

        async with kv_writes(nc, node) as writes:
            await a.kill()
            sweep_at(50, b)  # ATTN while no one writes: b must catch up when it takes over
            assert await status_via_api(nc, node) is NodeStatus.ATTN  # b answers meanwhile
            await wait_for(lambda: b.writing, what="takeover after the lease ran out")
            await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN"]), what="missed ATTN")
            sweep_at(150, b)
            await wait_for(lambda: _statuses_are(nc, node, ["OK", "ATTN", "CRIT"]), what="CRIT")
            await settle(nc, b)
            # The join event b published again from a's record was dropped as a duplicate.
            assert await statuses(nc, node) == ["OK", "ATTN", "CRIT"]
            assert len(writes) == 2
        record = parse_record(await _stored(nc, node))
        assert record is not None
        assert record.status is NodeStatus.CRIT


async def test_a_writer_dying_between_record_and_event_leaves_the_event_to_the_next(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = lease(SHORT_LEASE_S, nats_server.url)
    node = str(uuid4())
    async with replica(settings, 0.0) as a, replica(settings, 0.3) as b:
        assert a.service.writer is not None
        stalled = asyncio.Event()

        async def stall() -> None:  # the crash window: record stored, event not yet sent
            stalled.set()
            await asyncio.Event().wait()

        a.service.writer._publish_events = stall  # type: ignore[method-assign]
        await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(stalled.is_set, what="a's record written")
        assert parse_record(await _stored(nc, node)) is not None
        assert await statuses(nc, node) == []
        await a.kill()

        await wait_for(lambda: b.writing, what="takeover")
        await wait_for(lambda: _statuses_are(nc, node, ["OK"]), what="a's join event, by b")
        await settle(nc, b)
        assert await statuses(nc, node) == ["OK"]


async def test_a_delete_served_by_one_replica_reaches_the_other(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = lease(LONG_LEASE_S, nats_server.url)
    by_follower, by_api = str(uuid4()), str(uuid4())
    async with replica(settings, 0.0) as a, replica(settings, 0.3) as b:
        for node in (by_follower, by_api):
            await publish(nc, node, heartbeat(node, interval_s=10))
        await wait_for(
            lambda: all(r.knows(n) for r in (a, b) for n in (by_follower, by_api)),
            what="both registered",
        )
        await settle(nc, a)

        assert await b.service.delete(by_follower, "admin") is not None  # b does not write
        await FleetClient(nc).delete_node(UUID(by_api), by="admin")  # whichever answers
        for node in (by_follower, by_api):
            await wait_for(lambda n=node: not a.knows(n) and not b.knows(n), what="gone in both")
            assert parse_tombstone(await _stored(nc, node)) is not None
            with pytest.raises(NotFound):
                await FleetClient(nc).get_node(UUID(node))
        await settle(nc, a, b)
        assert len(await stream_events(nc, "removal", by_follower)) == 1

        # Beating again after the delete registers it anew, in both, announced once.
        sweep_at(1, a, b)  # a later join event than the first (their ids differ)
        await publish(nc, by_follower, heartbeat(by_follower, interval_s=10))
        await wait_for(lambda: a.knows(by_follower) and b.knows(by_follower), what="re-joined")
        await wait_for(lambda: _statuses_are(nc, by_follower, ["OK", "OK"]), what="join again")
        await settle(nc, a, b)
        assert await statuses(nc, by_follower) == ["OK", "OK"]
        record = parse_record(await _stored(nc, by_follower))
        assert record is not None  # the new record replaced the tombstone (compare-and-set)


async def _stored(nc: Client, node: str) -> bytes:
    kv = await nc.jetstream().key_value(subjects.KV_FLEET_STATE)
    entry = await kv.get(node)
    return entry.value or b""


async def test_a_pending_record_never_overwrites_another_replicas_tombstone(
    auth_nats: AuthNats,  # noqa: F811
) -> None:
    # Both replicas run as the ``fleet`` identity, under the server's permissions.
    ident = auth_nats.settings("fleet")
    settings = settings_for(
        auth_nats.server.url,
        nats_user=ident.nats_user,
        nats_password=ident.nats_password,
        fleet_lease_ttl_s=LONG_LEASE_S,
    )
    agent = await auth_nats.connect("agent")  # publishes heartbeats, as agents do
    reader = await auth_nats.connect("provisioner")  # reads the bucket and EVENTS back
    node = str(uuid4())
    try:
        async with replica(settings, 0.0) as a, replica(settings, 0.3) as b:
            assert a.service.writer is not None
            assert a.service.state is not None
            await publish(agent, node, heartbeat(node, interval_s=10))
            await wait_for(lambda: a.knows(node) and b.knows(node), what="both registered")
            await settle(reader, a)
            await a.service.state.stop()  # a will not hear of the delete before writing

            async with a.service.writer._lock:  # hold a's writer while the change is pending
                sweep_at(50, a)  # ATTN: a record to write
                assert await b.service.delete(node, "admin") is not None
            await a.flush()  # the compare-and-set misses: a finds the tombstone and drops it

            assert parse_tombstone(await _stored(reader, node)) is not None
            assert await statuses(reader, node) == ["OK"]  # nor is ATTN announced
    finally:
        for client in (agent, reader):
            await bus.close(client)
