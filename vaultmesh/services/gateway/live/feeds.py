"""One SSE client's feed: ordered JetStream consumers on EVENTS and HEARTBEATS from a cursor.

Each client gets its own ephemeral ordered push consumer per stream it wants
(flow-controlled, recreated by the client library after a gap), started right
after the client's cursor, so resuming after a disconnect replays exactly what
was missed. Both consumers feed one bounded queue; when the client reads
slowly, the queue fills, the callbacks wait, and JetStream flow control pauses
delivery instead of buffering without bound. Closing the feed deletes the
consumers (an inactivity threshold is the server-side backstop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from vaultmesh.services.gateway.live.cursor import Cursor
from vaultmesh.shared import codec, subjects
from vaultmesh.shared.errors import Unavailable, VaultMeshError
from vaultmesh.shared.models.events import EventEnvelope, EventKind
from vaultmesh.shared.models.heartbeat import Heartbeat

log = logging.getLogger(__name__)

# The server removes a consumer nobody listens to after this long, if we could not.
INACTIVE_THRESHOLD_S = 30.0
IDLE_HEARTBEAT_S = 5.0


@dataclass(frozen=True)
class Item:
    """One event ready to stream: its SSE name, JSON data, and where it sits."""

    kind: str
    data: bytes
    stream: str
    seq: int


def _decode(msg: Any) -> Any:
    return codec.decode(msg.data, codec.format_of(msg.headers))


def heartbeat_item(msg: Any) -> Item:
    """A HEARTBEATS message as an SSE item (raises BadRequest/ValidationError when invalid)."""
    heartbeat = Heartbeat.model_validate(_decode(msg))
    seq = int(msg.metadata.sequence.stream)
    return Item(EventKind.HEARTBEAT.value, heartbeat.model_dump_json().encode(), "heartbeats", seq)


def event_item(msg: Any) -> Item | None:
    """An EVENTS message as an SSE item; None for envelopes that must not be streamed."""
    envelope = EventEnvelope.model_validate(_decode(msg))
    if envelope.kind is EventKind.HEARTBEAT:
        return None  # `heartbeat` events carry the Heartbeat model, only from HEARTBEATS
    seq = int(msg.metadata.sequence.stream)
    return Item(envelope.kind.value, envelope.model_dump_json().encode(), "events", seq)


class EventFeed:
    """The merged, resumable event source of one SSE client."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        kind: EventKind | None,
        node_id: UUID | None,
        queue_size: int,
        on_bad: Callable[[str], None],
    ) -> None:
        self._js = js
        self._kind = kind
        self._node_id = node_id
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=queue_size)
        self._on_bad = on_bad
        self._subs: list[tuple[str, Any]] = []

    @property
    def wants_events(self) -> bool:
        """Whether this feed reads EVENTS (every kind but heartbeat)."""
        return self._kind is not EventKind.HEARTBEAT

    @property
    def wants_heartbeats(self) -> bool:
        """Whether this feed reads HEARTBEATS."""
        return self._kind in (None, EventKind.HEARTBEAT)

    async def open(self, resume: Cursor | None) -> Cursor:
        """Start the consumers after ``resume`` (or at the streams' ends); return the start."""
        try:
            start = await self._start_cursor(resume)
            if self.wants_events:
                await self._subscribe_events(start.events + 1)
            if self.wants_heartbeats:
                await self._subscribe_heartbeats(start.heartbeats + 1)
        except (NatsError, TimeoutError, OSError) as exc:
            await self.close()
            raise Unavailable(f"cannot open the event stream: {type(exc).__name__}") from None
        return start

    async def next(self) -> Item:
        """The next item (waits until there is one)."""
        return await self._queue.get()

    async def close(self) -> None:
        """Stop the consumers and delete them (idempotent, never raises)."""
        subs, self._subs = self._subs, []
        for stream, sub in subs:
            consumer = getattr(sub, "_consumer", None)
            with contextlib.suppress(NatsError, TimeoutError, OSError):
                await sub.unsubscribe()
            if consumer:
                with contextlib.suppress(NatsError, TimeoutError, OSError):
                    await self._js.delete_consumer(stream, consumer)

    async def _start_cursor(self, resume: Cursor | None) -> Cursor:
        events_last = await self._last_seq(subjects.STREAM_EVENTS)
        heartbeats_last = await self._last_seq(subjects.STREAM_HEARTBEATS)
        if resume is None:
            return Cursor(events_last, heartbeats_last)
        return resume.clamped(events_last, heartbeats_last)

    async def _last_seq(self, stream: str) -> int:
        info = await self._js.stream_info(stream)
        return int(info.state.last_seq or 0)

    async def _subscribe_events(self, first_seq: int) -> None:
        subject = subjects.event_filter(self._kind.value if self._kind else None, self._node_id)
        await self._subscribe(subjects.STREAM_EVENTS, subject, first_seq, self._on_event)

    async def _subscribe_heartbeats(self, first_seq: int) -> None:
        if self._node_id is None:
            subject = subjects.HEARTBEAT_ALL
        else:
            subject = subjects.heartbeat(self._node_id)
        await self._subscribe(subjects.STREAM_HEARTBEATS, subject, first_seq, self._on_heartbeat)

    async def _subscribe(
        self, stream: str, subject: str, first_seq: int, cb: Callable[[Any], Any]
    ) -> None:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(first_seq, 1),
            inactive_threshold=INACTIVE_THRESHOLD_S,
        )
        sub = await self._js.subscribe(
            subject,
            stream=stream,
            cb=cb,
            ordered_consumer=True,
            idle_heartbeat=IDLE_HEARTBEAT_S,
            config=config,
        )
        self._subs.append((stream, sub))

    async def _on_event(self, msg: Any) -> None:
        try:
            item = event_item(msg)
        except (VaultMeshError, ValidationError):
            self._on_bad("events")
            return
        if item is not None:
            await self._queue.put(item)

    async def _on_heartbeat(self, msg: Any) -> None:
        try:
            item = heartbeat_item(msg)
        except (VaultMeshError, ValidationError):
            self._on_bad("heartbeats")
            return
        await self._queue.put(item)
