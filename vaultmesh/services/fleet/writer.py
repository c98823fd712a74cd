"""Persisting derived state and announcing transitions, off the heartbeat hot path.

The hot path only marks a node dirty (and queues an attention event on a
status transition). A background task writes each dirty node's record to the
``FLEET_STATE`` KV bucket once per flush (coalescing bursts) and publishes the
queued ``attention`` EventEnvelopes to EVENTS with a JetStream publish. Failed
writes stay queued and are retried, so a NATS outage delays them, never drops them.

Only the replica holding the writer lease does this (``lead``); the others drop
changes as they come (``step_down``), and the next holder re-derives them from
the bucket (takeover.py). Records are written by compare-and-set on the
revision the node was last stored at, so a record never overwrites a tombstone
another replica wrote meanwhile. A record is stored before its node's attention
event is published and carries that event until then (``announce``), so a
holder that dies between the two leaves the event for the next one to publish
(with the same message id: the stream drops it if it was stored after all).

Removing a node (``remove``) takes the same lock, so no write of the node's
record can land after its tombstone: the tombstone is stored first (the removal
fails, changing nothing, when it cannot be), then the node leaves the registry,
and its ``removal`` event and audit record join the queue of messages to publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.codec import MSG_ID_HEADER
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import RemovalReason
from vaultmesh.shared.runtime import Lifecycle

from .attention import Verdict, attention_event
from .derived import parse_tombstone, record_of
from .metrics import FleetMetrics
from .node import NodeState
from .registry import Change, Registry
from .removal import AUDIT_SERVICE, Removal
from .tombstones import Tombstones

log = logging.getLogger(__name__)

_CONCURRENT_PUTS = 256
_RETRY_S = 1.0
# Messages queued while NATS is unreachable; beyond this the oldest are dropped (and logged).
_MAX_QUEUED_EVENTS = 100_000
_ERRORS = (NatsError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to store in ``stream`` (deduplicated there by ``msg_id``)."""

    subject: str
    body: bytes
    stream: str
    msg_id: str
    attention: str | None = None  # the node of an attention event (derived: the holder's)

    @classmethod
    def event(cls, event: EventEnvelope, *, attention: bool = False) -> Outgoing:
        """An EventEnvelope for EVENTS."""
        assert event.node_id is not None
        node_id = str(event.node_id)
        subject = subjects.event(event.kind.value, node_id)
        body = event.model_dump_json().encode()
        return cls(subject, body, subjects.STREAM_EVENTS, event.id, node_id if attention else None)


class StateWriter(Lifecycle):
    """Writes changed nodes to KV and publishes attention events, in the background."""

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        registry: Registry,
        metrics: FleetMetrics,
        clock: Clock,
        tombstones: Tombstones,
        tombstone_ttl_s: float,
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self._js = js
        self._kv = kv
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._tombstones = tombstones
        self._tombstone_ttl_s = tombstone_ttl_s
        self._may_write = may_write  # the lease is still ours (checked before each flush)
        self._leading = False
        # Each node's attention event not yet published: stored with its record.
        self._announcing: dict[str, EventEnvelope] = {}
        self._dirty: dict[str, None] = {}
        self._events: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes and events not yet done."""
        return len(self._dirty) + len(self._events)

    @property
    def leading(self) -> bool:
        """True while this replica writes derived state."""
        return self._leading

    def lead(self, changes: Iterable[Change], unpublished: Iterable[EventEnvelope]) -> None:
        """Become the writer: publish what a previous holder left, write ``changes``,
        then every change as it comes (call without awaiting in between, so no change
        slips between the takeover plan and this)."""
        for event in unpublished:
            self._queue(Outgoing.event(event, attention=True))
        self._leading = True
        for change in changes:
            self.changed(change)
        self._wake.set()

    def step_down(self) -> None:
        """Stop writing derived state; what is pending is left to the next holder.

        Removal events and audit records stay queued: they answer a request this
        replica served, not a change every replica saw.
        """
        if not self._leading:
            return
        self._leading = False
        self._dirty.clear()
        self._announcing.clear()
        self._events = deque(m for m in self._events if m.attention is None)

    def forget(self, node_id: str, *, unrecorded: bool = False) -> None:
        """Drop pending work for a removed node: its record and, when that record was never
        stored (``unrecorded``, or still pending), its attention events: an event goes out
        only after its record."""
        if node_id in self._dirty:
            del self._dirty[node_id]
            unrecorded = True
        self._announcing.pop(node_id, None)
        if unrecorded:
            self._events = deque(m for m in self._events if m.attention != node_id)

    def changed(self, change: Change) -> None:
        """Note a derived-state change (called on the hot path: no I/O here)."""
        if not self._leading:
            return
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

    async def remove(
        self, node_id: str, reason: RemovalReason, cutoff_seq: int, by: str
    ) -> Removal | None:
        """Remove a node (None when unknown); raises, changing nothing, if KV is unreachable."""
        async with self._lock:
            node = self._registry.get(node_id)
            if node is None:
                return None
            at = self._clock.now().timestamp()
            removal = Removal.of(node, reason, at, cutoff_seq, by)
            rev = await self._bury(removal)
            self._registry.remove(node_id)
            self.forget(node_id)
            self._tombstones.bury(node_id, cutoff_seq, at, rev)
        self._metrics.removed(reason)
        self._queue(Outgoing.event(removal.event()))
        record = removal.audit()
        subject = subjects.audit(AUDIT_SERVICE, record.action)
        body = record.model_dump_json().encode()
        assert record.id is not None
        self._queue(Outgoing(subject, body, subjects.STREAM_AUDIT, record.id))
        self._wake.set()
        return removal

    async def _bury(self, removal: Removal) -> int:
        # The tombstone replaces the record and expires when the heartbeats it covers have.
        ack = await self._js.publish(
            subjects.kv_key(subjects.KV_FLEET_STATE, removal.node_id),
            removal.tombstone(),
            stream=subjects.kv_stream(subjects.KV_FLEET_STATE),
            msg_ttl=self._tombstone_ttl_s,
        )
        self._metrics.kv_writes.inc()
        return int(ack.seq)

    async def flush(self) -> None:
        """Write every pending record and event now; raises if NATS fails."""
        async with self._lock:
            if self._leading and not self._may_write():
                log.warning("writer lease lapsed; leaving derived state to the next holder")
                self.step_down()
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
        event = attention_event(node.node_id, node.hostname, verdict, change.previous, now)
        self._announcing[node.node_id] = event
        self._queue(Outgoing.event(event, attention=True))

    def _queue(self, message: Outgoing) -> None:
        self._events.append(message)
        if len(self._events) > _MAX_QUEUED_EVENTS:
            self._events.popleft()
            log.warning("event queue full; dropped the oldest")

    async def _write_records(self) -> None:
        if not self._leading:
            self._dirty.clear()  # failed writes re-queued after a step-down
            return
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
        if node is None:
            return
        value = record_of(node, self._announcing.get(node_id))
        try:
            node.rev = await self._kv.update(node_id, value, last=node.rev)
        except KeyWrongLastSequenceError:
            if not await self._rebase(node):
                return
            node.rev = await self._kv.update(node_id, value, last=node.rev)
        self._metrics.kv_writes.inc()

    async def _rebase(self, node: NodeState) -> bool:
        """After a compare-and-set miss: adopt the key's revision, or False when it now
        holds a tombstone (another replica removed the node; the state watch applies it)."""
        try:
            entry = await self._kv.get(node.node_id)
        except KeyDeletedError as exc:
            node.rev = exc.entry.revision if exc.entry is not None else 0
            return True
        except KeyNotFoundError:
            node.rev = 0  # a tombstone that aged out
            return True
        if parse_tombstone(entry.value or b"") is not None:
            self.forget(node.node_id, unrecorded=True)
            return False
        node.rev = entry.revision or 0  # written by a holder whose lease had lapsed
        return True

    async def _publish_events(self) -> None:
        while self._events:
            message = self._events[0]
            ack = await self._js.publish(
                message.subject,
                message.body,
                stream=message.stream,
                headers={MSG_ID_HEADER: message.msg_id},
            )
            # step_down or forget may have replaced the queue while this was on the wire.
            if self._events and self._events[0] is message:
                self._events.popleft()
            node_id = message.attention
            if node_id is not None:
                announcing = self._announcing.get(node_id)
                if announcing is not None and announcing.id == message.msg_id:
                    del self._announcing[node_id]
                if not ack.duplicate:
                    self._metrics.attention_events.inc()
