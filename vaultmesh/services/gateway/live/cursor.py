"""The SSE resume cursor: the last delivered sequence of both source streams.

Every event the gateway streams comes from EVENTS or HEARTBEATS, each with its
own sequence. The ``id:`` of an event is ``<events seq>.<heartbeats seq>`` —
the position in both streams once that event is delivered — so a browser's
``Last-Event-ID`` says exactly where to resume in each stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

_CURSOR = re.compile(r"^(\d{1,19})\.(\d{1,19})$")
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    """Last delivered stream sequences (0: nothing delivered from that stream)."""

    events: int = 0
    heartbeats: int = 0

    def encode(self) -> str:
        """The opaque ``id:`` string."""
        return f"{self.events}.{self.heartbeats}"

    def after_event(self, seq: int) -> Cursor:
        """This cursor once EVENTS message ``seq`` was delivered."""
        return replace(self, events=max(self.events, seq))

    def after_heartbeat(self, seq: int) -> Cursor:
        """This cursor once HEARTBEATS message ``seq`` was delivered."""
        return replace(self, heartbeats=max(self.heartbeats, seq))

    def clamped(self, events_last: int, heartbeats_last: int) -> Cursor:
        """Never ahead of the streams (a cursor from a purged or recreated stream)."""
        return Cursor(min(self.events, events_last), min(self.heartbeats, heartbeats_last))


def parse_cursor(text: str) -> Cursor | None:
    """The cursor in ``text``, or None when it is not one of ours."""
    match = _CURSOR.match(text.strip())
    if match is None:
        return None
    events, heartbeats = int(match.group(1)), int(match.group(2))
    if events > MAX_SEQ or heartbeats > MAX_SEQ:
        return None
    return Cursor(events, heartbeats)
