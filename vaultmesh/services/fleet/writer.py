"""Persisting derived state and announcing transitions, off the heartbeat hot path.

The hot path only marks a node dirty (and queues an attention event on a
status transition). A background task writes each dirty node's record to the
``FLEET_STATE`` KV bucket once per flush (coalescing bursts) and publishes the
queued ``attention`` EventEnvelopes to EVENTS with a JetStream publish. Failed
writes stay queued and are retried, so a NATS outage delays them, never drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.codec import MSG_ID_HEADER
from vaultmesh.shared.models.events import EventEnvelope

from .attention import Verdict, attention_event
from .derived import record_of
from .metrics import FleetMetrics
from .registry import Change, Registry

log = logging.getLogger(__name__)

_CONCURRENT_PUTS = 256
_RETRY_S = 1.0
# Transitions queued while NATS is unreachable; beyond this the oldest are dropped (and logged).
_MAX_QUEUED_EVENTS = 100_000
_ERRORS = (NatsError, TimeoutError, OSError)


class StateWriter:
    """Writes changed nodes to KV and publishes attention events, in the background."""

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        registry: Registry,
        metrics: FleetMetrics,
        clock: Clock,
    ) -> None:
        self._js = js
        self._kv = kv
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._dirty: dict[str, None] = {}
        self._events: deque[EventEnvelope] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes and events not yet done."""
        return len(self._dirty) + len(self._events)

    def changed(self, change: Change) -> None:
        """Note a derived-state change (called on the hot path: no I/O here)."""
        self._dirty[change.node_id] = None
        if change.transition:
            self._queue_event(change)
        self._wake.set()

    async def start(self) -> None:
        """Start the background writer (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Write what is pending (bounded wait), then stop (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(*_ERRORS):
            await asyncio.wait_for(self.flush(), timeout=10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def flush(self) -> None:
        """Write every pending record and event now; raises if NATS fails."""
        async with self._lock:
            await self._write_records()
            await self._publish_events()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except _ERRORS as exc:
                log.warning(
                    "fleet state write failed; retrying", extra={"error_type": type(exc).__name__}
                )
                self._wake.set()
                await asyncio.sleep(_RETRY_S)

    def _queue_event(self, change: Change) -> None:
        node = self._registry.get(change.node_id)
        if node is None:
            return
        verdict = Verdict(node.status, node.reasons)
        now = self._clock.now().timestamp()
        self._events.append(
            attention_event(node.node_id, node.hostname, verdict, change.previous, now)
        )
        if len(self._events) > _MAX_QUEUED_EVENTS:
            self._events.popleft()
            log.warning("attention event queue full; dropped the oldest")

    async def _write_records(self) -> None:
        while self._dirty:
            batch = list(self._dirty)[:_CONCURRENT_PUTS]
            for node_id in batch:
                del self._dirty[node_id]
            results = await asyncio.gather(
                *(self._put(node_id) for node_id in batch), return_exceptions=True
            )
            failed = [
                node_id for node_id, res in zip(batch, results, strict=True) if res is not None
            ]
            if failed:
                for node_id in failed:
                    self._dirty[node_id] = None
                error = next(res for res in results if isinstance(res, BaseException))
                raise error if isinstance(error, _ERRORS) else RuntimeError("KV write failed")

    async def _put(self, node_id: str) -> None:
        node = self._registry.get(node_id)
        if node is not None:
            await self._kv.put(node_id, record_of(node))
            self._metrics.kv_writes.inc()

    async def _publish_events(self) -> None:
        while self._events:
            event = self._events[0]
            assert event.node_id is not None
            await self._js.publish(
                subjects.event(event.kind.value, event.node_id),
                event.model_dump_json().encode(),
                stream=subjects.STREAM_EVENTS,
                headers={MSG_ID_HEADER: event.id},
            )
            self._events.popleft()
            self._metrics.attention_events.inc()
