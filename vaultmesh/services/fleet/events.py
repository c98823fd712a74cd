"""The events working set: the most recent EventEnvelopes of the EVENTS stream, in memory.

Seed 001 V0.7.2's memory-bounded store (500 most recent by default); the
stream itself is the durable copy, replayed into this window on start.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from vaultmesh.shared.models.events import EventEnvelope, EventsQuery


class EventWindow:
    """A bounded, stream-ordered window of events with their stream sequences."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: deque[tuple[int, EventEnvelope]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, sequence: int, event: EventEnvelope) -> None:
        """Append an event (sequences only grow; a replayed duplicate is ignored)."""
        if self._items and sequence <= self._items[-1][0]:
            return
        self._items.append((sequence, event))

    def query(self, query: EventsQuery) -> tuple[list[EventEnvelope], list[int]]:
        """Matching events, newest first, at most ``query.limit``."""
        events: list[EventEnvelope] = []
        sequences: list[int] = []
        for sequence, event in reversed(self._items):
            if not _matches(event, query):
                continue
            events.append(event)
            sequences.append(sequence)
            if len(events) >= query.limit:
                break
        return events, sequences

    def reply(self, query: EventsQuery) -> dict[str, Any]:
        """The ``EventList`` JSON object for ``query``."""
        events, sequences = self.query(query)
        return {
            "events": [event.model_dump(mode="json") for event in events],
            "sequences": sequences,
        }


def _matches(event: EventEnvelope, query: EventsQuery) -> bool:
    if query.kind is not None and event.kind is not query.kind:
        return False
    if query.node_id is not None and event.node_id != query.node_id:
        return False
    return query.since is None or event.ts >= query.since
