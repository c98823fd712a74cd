"""Gaps in a stream's sequence: the signed entry that records one, and reading it back.

A stream's sequence numbers never repeat, so a jump between two captured
messages means messages were removed before the logger read them: by the
stream's retention limits, or by someone deleting or purging them (the attack
this guards against). The log never jumps silently: before the first message
after a jump the writer appends a gap entry of its own, subject
``subjects.LOGGER_STREAM_GAP``, kind ``gap``, severity critical::

    stream_seq  the last missing sequence (so the stream's sequence stays monotonic)
    payload     {"event": "stream_gap", "stream", "from_seq", "to_seq", "missing",
                 "severity": "critical", "next_stored"}

``received`` is when the gap was found; ``next_stored`` is when JetStream stored
the first message after it (the missing ones were stored before that). The
entry is hashed into the tree and signed by the next checkpoint like any other,
and ``verify`` fails on a gap unless told to accept recorded ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from vaultmesh.services.logger.entry import Incoming, stamp_ns
from vaultmesh.shared import subjects
from vaultmesh.shared.models.common import Severity

GAP_EVENT = "stream_gap"
GAP_SEVERITY = Severity.CRITICAL


@dataclass(frozen=True, slots=True)
class Gap:
    """Stream sequences ``first``..``last`` (inclusive) that the log does not hold."""

    stream: str
    first: int
    last: int

    @property
    def missing(self) -> int:
        """How many stream sequences are missing."""
        return self.last - self.first + 1

    def describe(self) -> str:
        """``AUDIT sequences 4..5`` (or ``AUDIT sequence 4``)."""
        if self.first == self.last:
            return f"{self.stream} sequence {self.first}"
        return f"{self.stream} sequences {self.first}..{self.last}"

    def to_json(self) -> dict[str, Any]:
        """Plain data for reports, audit records and events."""
        return {
            "stream": self.stream,
            "from_seq": self.first,
            "to_seq": self.last,
            "missing": self.missing,
        }


def gap_before(mark: int, msg: Incoming) -> Gap | None:
    """The gap between a stream's high-water ``mark`` and ``msg``, if there is one."""
    if msg.stream_seq > mark + 1:
        return Gap(msg.stream, mark + 1, msg.stream_seq - 1)
    return None


def gap_note(gap: Gap, next_stored_ns: int = 0) -> Incoming:
    """The log entry (as an incoming message) that records ``gap``."""
    body = {
        "event": GAP_EVENT,
        **gap.to_json(),
        "severity": GAP_SEVERITY.value,
        "next_stored": stamp_ns(next_stored_ns) if next_stored_ns else None,
    }
    return Incoming(gap.stream, gap.last, subjects.LOGGER_STREAM_GAP, orjson.dumps(body))


def is_gap_entry(entry: dict[str, Any]) -> bool:
    """True when a parsed log entry is a gap entry."""
    return entry.get("subject") == subjects.LOGGER_STREAM_GAP


def gap_of(entry: dict[str, Any]) -> Gap | None:
    """The gap a gap entry records, or None when it is malformed."""
    payload = entry.get("payload")
    if not isinstance(payload, dict):
        return None
    stream, first, last = entry.get("stream"), payload.get("from_seq"), payload.get("to_seq")
    if not (isinstance(stream, str) and isinstance(first, int) and isinstance(last, int)):
        return None
    if not 0 < first <= last or entry.get("stream_seq") != last or payload.get("stream") != stream:
        return None
    return Gap(stream, first, last)
