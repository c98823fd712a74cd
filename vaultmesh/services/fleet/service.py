"""fleet-state's component and its builder: streams, registry, writer, sweep, ``fleet`` API.

Start-up order (so a restart loses nothing and answers only once rebuilt):
ensure streams and bucket -> load derived state and tombstones from FLEET_STATE
(then keep watching it for other replicas' writes) -> replay the last heartbeat
of every node from HEARTBEATS (then follow it live; a removed node's old
heartbeats stay history) -> replay the tail of EVENTS into the working set ->
sweep -> try for the writer lease (the holder takes over: writes what differs
from the bucket, then expires) -> serve ``fleet.api.*``.

Replicas: every replica reads everything and answers in the ``fleet`` queue
group; only the lease holder writes derived state (see lease.py, takeover.py,
replication.py and docs/fleet.md, Replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from uuid import uuid4

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from vaultmesh.shared import streams, subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import MicroService
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import RemovalReason
from vaultmesh.shared.runtime import Builder, Component, Lifecycle

from .api import FleetApi
from .config import FleetSettings
from .events import EventWindow
from .history import HeartbeatHistoryReader
from .ingest import EventIngest, HeartbeatIngest
from .lease import Lease
from .metrics import FleetMetrics
from .registry import Registry
from .removal import Removal
from .replication import StateEntry, StateFollower
from .statewatch import StateWatch, snapshot
from .tail import StreamTail
from .takeover import Stored, plan, read_entry
from .tombstones import Tombstones
from .writer import StateWriter

log = logging.getLogger(__name__)

NAME = "fleet-state"
# A previous writer's unpublished event is published again only when its record was
# stored this recently: inside EVENTS' duplicate window (the server's default, 2 min),
# so if it was published after all the stream drops the copy.
REPUBLISH_WITHIN_S = 90.0


class FleetService(Lifecycle):
    """The fleet-state component (see the module docstring for its lifecycle)."""

    def __init__(
        self, nc: Client, metrics: ServiceMetrics, settings: FleetSettings, clock: Clock
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._settings = settings
        self._clock = clock
        self.metrics = FleetMetrics(metrics)
        self.registry = Registry(settings.policy())
        self.tombstones = Tombstones()
        self.window = EventWindow(settings.fleet_events_window)
        self.writer: StateWriter | None = None
        self.lease: Lease | None = None
        self.state: StateWatch | None = None
        self.heartbeats: StreamTail | None = None
        self.events: StreamTail | None = None
        self._kv: KeyValue | None = None
        self._follower: StateFollower | None = None
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{uuid4().hex[:8]}"
        self._micro: MicroService | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Rebuild state from the streams, then serve (idempotent)."""
        if self._micro is not None:
            return
        self._kv = kv = await self._ensure_storage()
        self.lease = lease = Lease(
            self._js,
            kv,
            holder=self.holder,
            ttl_s=self._settings.fleet_lease_ttl_s,
            on_gain=self._take_over,
            on_loss=self._step_down,
        )
        self.writer = writer = StateWriter(
            self._js,
            kv,
            self.registry,
            self.metrics,
            self._clock,
            self.tombstones,
            tombstone_ttl_s=self._settings.fleet_heartbeat_max_age_s,
            may_write=lambda: lease.held,
        )
        self._follower = StateFollower(
            self.registry, self.tombstones, forget=writer.forget, lease_freed=lease.poke
        )
        await self._restore(kv, self._follower)
        await writer.start()
        await self._follow_heartbeats(writer)
        await self._follow_events()
        assert self.state is not None
        await self.state.start()
        self.sweep()
        await lease.start()
        await self._expire_safely()
        self._sweeper = asyncio.create_task(self._sweep_loop())
        api = FleetApi(self.registry, self.window, self._history_reader(), self.delete)
        self._micro = MicroService(
            self._nc,
            name=subjects.SERVICE_FLEET,
            description="VaultMesh fleet-state: nodes, attention, heartbeat history, events",
            endpoints=api.endpoints(),
            metrics=self.metrics.base,
            queue_group=subjects.QUEUE_FLEET,
            max_request_bytes=self._settings.max_request_bytes,
        )
        await self._micro.start()
        await self._nc.flush()  # subscriptions are on the server before we call ourselves ready
        log.info(
            "fleet-state ready",
            extra={
                "nodes": len(self.registry),
                "events": len(self.window),
                "writer": writer.leading,
            },
        )

    async def stop(self) -> None:
        """Stop serving and reading, then write pending state (idempotent)."""
        micro, self._micro = self._micro, None
        if micro is not None:
            await micro.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for part in (self.heartbeats, self.events, self.state):
            if part is not None:
                await part.stop()
        if self.writer is not None:
            await self.writer.stop()
        # After the last write: the next holder's takeover then finds nothing left to do.
        if self.lease is not None:
            await self.lease.stop()
        self.metrics.set_writer(False)

    def sweep(self) -> int:
        """Re-evaluate staleness and drift now; returns how many nodes changed."""
        changes = self.registry.sweep(self._clock.now().timestamp())
        if self.writer is not None:
            for change in changes:
                self.writer.changed(change)
        self.metrics.set_nodes(self.registry.counts())
        return len(changes)

    async def delete(self, node_id: str, by: str) -> Removal | None:
        """Remove ``node_id`` at an admin's request (None when unknown)."""
        removal = await self._remove(node_id, RemovalReason.DELETED, by)
        if removal is not None:
            log.info("node deleted", extra={"node_id": node_id, "by": by})
        return removal

    async def expire(self) -> int:
        """Remove nodes silent for longer than the retention; returns how many left.

        Only the writer expires (the others learn it from the tombstones).
        """
        retention = self._settings.fleet_node_retention_s
        now = self._clock.now().timestamp()
        self._forget_old_tombstones(now)
        if not retention or self.writer is None or not self.writer.leading:
            return 0
        removed = 0
        for node_id in self.registry.expired(now, retention):
            if await self._remove(node_id, RemovalReason.EXPIRED, NAME) is not None:
                removed += 1
        if removed:
            log.info("nodes expired", extra={"count": removed, "retention_s": retention})
        return removed

    async def _remove(self, node_id: str, reason: RemovalReason, by: str) -> Removal | None:
        assert self.writer is not None
        assert self.heartbeats is not None
        try:
            removal = await self.writer.remove(node_id, reason, self.heartbeats.last_seq, by)
        except (NatsError, TimeoutError, OSError) as exc:
            raise Unavailable(f"cannot store the removal: {type(exc).__name__}") from None
        self.metrics.set_nodes(self.registry.counts())
        return removal

    def _forget_old_tombstones(self, now: float) -> None:
        # Their KV copies expire by themselves (per-message TTL); this is the memory one.
        for node_id in self.tombstones.older_than(now - self._settings.fleet_heartbeat_max_age_s):
            self.tombstones.forget(node_id)

    async def _expire_safely(self) -> None:
        try:
            await self.expire()
        except Unavailable as exc:
            log.warning("expiry postponed", extra={"error": exc.message})

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.fleet_sweep_interval_s)
            try:
                self.sweep()
                await self._expire_safely()
            except Exception:
                log.exception("sweep failed")

    async def _ensure_storage(self) -> KeyValue:
        limits = self._settings.limits()
        await streams.ensure_stream(self._js, streams.heartbeats_config(limits), owner=True)
        await streams.ensure_stream(self._js, streams.events_config(limits), owner=True)
        # Removals are audited; the logger owns AUDIT's tuning.
        await streams.ensure_stream(self._js, streams.audit_config(limits))
        return await streams.ensure_kv(self._js, subjects.KV_FLEET_STATE, replicas=limits.replicas)

    async def _restore(self, kv: KeyValue, follower: StateFollower) -> None:
        """Load every node's persisted derived state, then keep watching the bucket."""
        self.state = StateWatch(kv, self._on_state, self._settings.fleet_replay_timeout_s)
        await self.state.load(follower.restore)
        log.info(
            "derived state loaded",
            extra={"nodes": follower.restored, "skipped": follower.skipped},
        )

    def _on_state(self, entry: StateEntry) -> None:
        assert self._follower is not None
        if self._follower.apply(entry):
            self.metrics.set_nodes(self.registry.counts())
            log.info("node removed by another replica", extra={"node_id": entry.key})

    async def _take_over(self) -> None:
        """Become the writer: write and announce what differs from the bucket."""
        assert self._kv is not None
        assert self.writer is not None
        stored: dict[str, Stored] = {}
        unpublished: list[EventEnvelope] = []
        since = time.time() - REPUBLISH_WITHIN_S  # the duplicate window is the server's time
        timeout = self._settings.fleet_replay_timeout_s
        async for entry in snapshot(self._kv, timeout):
            read_entry(entry, stored, unpublished, since)
        # From here to lead() nothing awaits, so no heartbeat slips between plan and lead.
        changes = plan(self.registry, stored)
        self.writer.lead(changes, unpublished)
        self.metrics.set_writer(True)
        log.info(
            "fleet-state is the writer",
            extra={"changes": len(changes), "unpublished": len(unpublished)},
        )

    def _step_down(self) -> None:
        assert self.writer is not None
        self.writer.step_down()
        self.metrics.set_writer(False)
        log.warning("fleet-state is no longer the writer")

    async def _follow_heartbeats(self, writer: StateWriter) -> None:
        ingest = HeartbeatIngest(
            self.registry,
            self._clock,
            self.metrics,
            writer.changed,
            self._settings.fleet_max_heartbeat_bytes,
            self.tombstones,
        )
        self.heartbeats = StreamTail(
            self._js,
            stream=subjects.STREAM_HEARTBEATS,
            subject=subjects.HEARTBEAT_ALL,
            handler=ingest.handle,
            # Each node's last heartbeat is its current state; older ones are history.
            policy=DeliverPolicy.LAST_PER_SUBJECT,
            on_resync=self.metrics.resynced(subjects.STREAM_HEARTBEATS),
        )
        await self._replay(self.heartbeats, "heartbeats")

    async def _follow_events(self) -> None:
        ingest = EventIngest(self.window, self.metrics, self._settings.max_request_bytes)
        info = await self._js.stream_info(subjects.STREAM_EVENTS)
        state = info.state
        # Only the tail of EVENTS can end up in the window; skipped invalid messages get slack.
        start = max(state.first_seq, state.last_seq - 2 * self.window.size + 1)
        self.events = StreamTail(
            self._js,
            stream=subjects.STREAM_EVENTS,
            subject=subjects.EVENT_ALL,
            handler=ingest.handle,
            start_seq=start if state.messages else None,
            on_resync=self.metrics.resynced(subjects.STREAM_EVENTS),
        )
        await self._replay(self.events, "events")

    async def _replay(self, tail: StreamTail, what: str) -> None:
        await tail.start()
        if not await tail.wait_caught_up(self._settings.fleet_replay_timeout_s):
            log.warning("%s replay not finished in time; serving while it continues", what)

    def _history_reader(self) -> HeartbeatHistoryReader:
        return HeartbeatHistoryReader(self._nc, self._settings.fleet_heartbeat_history)


def build_for(settings: FleetSettings, clock: Clock | None = None) -> Builder:
    """fleet-state's builder for ``settings`` (the real clock by default)."""

    async def build(nc: Client, metrics: ServiceMetrics) -> Component:
        return FleetService(nc, metrics, settings, clock or SystemClock())

    return build
