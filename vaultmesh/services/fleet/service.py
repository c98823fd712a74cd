"""fleet-state's component and its builder: streams, registry, writer, sweep, ``fleet`` API.

Start-up order (so a restart loses nothing and answers only once rebuilt):
ensure streams and bucket -> load derived state and tombstones from FLEET_STATE
-> replay the last heartbeat of every node from HEARTBEATS (then follow it live;
a removed node's old heartbeats stay history) -> replay the tail of EVENTS into
the working set -> sweep and expire -> serve ``fleet.api.*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from vaultmesh.shared import streams, subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import MicroService
from vaultmesh.shared.models.fleet import RemovalReason
from vaultmesh.shared.runtime import Builder, Component, Lifecycle

from .api import FleetApi
from .config import FleetSettings
from .derived import parse_record, parse_tombstone
from .events import EventWindow
from .history import HeartbeatHistoryReader
from .ingest import EventIngest, HeartbeatIngest
from .metrics import FleetMetrics
from .registry import Registry
from .removal import Removal
from .tail import StreamTail
from .tombstones import Tombstones
from .writer import StateWriter

log = logging.getLogger(__name__)

NAME = "fleet-state"


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
        self.heartbeats: StreamTail | None = None
        self.events: StreamTail | None = None
        self._micro: MicroService | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Rebuild state from the streams, then serve (idempotent)."""
        if self._micro is not None:
            return
        kv = await self._ensure_storage()
        self.writer = StateWriter(
            self._js,
            kv,
            self.registry,
            self.metrics,
            self._clock,
            self.tombstones,
            tombstone_ttl_s=self._settings.fleet_heartbeat_max_age_s,
        )
        await self._restore(kv)
        await self.writer.start()
        await self._follow_heartbeats(self.writer)
        await self._follow_events()
        self.sweep()
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
            "fleet-state ready", extra={"nodes": len(self.registry), "events": len(self.window)}
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
        for tail in (self.heartbeats, self.events):
            if tail is not None:
                await tail.stop()
        if self.writer is not None:
            await self.writer.stop()

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
        """Remove nodes silent for longer than the retention; returns how many left."""
        retention = self._settings.fleet_node_retention_s
        now = self._clock.now().timestamp()
        self._forget_old_tombstones(now)
        if not retention:
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

    async def _restore(self, kv: KeyValue) -> None:
        """Load every node's persisted derived state (latest value per key)."""
        watcher = await kv.watchall(ignore_deletes=True)
        restored = skipped = 0
        try:
            while True:
                timeout = self._settings.fleet_replay_timeout_s
                entry = await watcher.updates(timeout=timeout)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                if not is_node_id(entry.key):
                    skipped += 1
                    continue
                if self._restore_entry(entry.key, entry.value or b""):
                    restored += 1
                else:
                    skipped += 1
        except NatsTimeoutError:
            log.warning("derived state load timed out; continuing with what was read")
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        log.info("derived state loaded", extra={"nodes": restored, "skipped": skipped})

    def _restore_entry(self, node_id: str, value: bytes) -> bool:
        record = parse_record(value)
        if record is not None:
            self.registry.restore(node_id, record)
            return True
        tombstone = parse_tombstone(value)
        if tombstone is not None:
            self.tombstones.bury(node_id, tombstone.cutoff_seq, tombstone.at)
            return True
        return False

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


def is_node_id(text: str) -> bool:
    """True when ``text`` is a UUID in canonical form (how the registry keys nodes)."""
    try:
        return str(UUID(text)) == text
    except ValueError:
        return False


def build_for(settings: FleetSettings, clock: Clock | None = None) -> Builder:
    """fleet-state's builder for ``settings`` (the real clock by default)."""

    async def build(nc: Client, metrics: ServiceMetrics) -> Component:
        return FleetService(nc, metrics, settings, clock or SystemClock())

    return build
