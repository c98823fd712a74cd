"""Deciding what to do with a fetched batch: write, skip as duplicate, or re-anchor.

JetStream delivers each stream in order, but a redelivery (an ack lost in a
reconnect, a crash between fsync and ack) brings back messages the log already
holds, and a lost pull response can make later messages arrive before earlier
ones. The log keeps, per stream, the highest stream sequence it holds (the
high-water mark); against it every message is:

- a duplicate (sequence <= mark): skipped, but acknowledged;
- next in line (mark + 1), or the first message after the consumer was anchored
  (anything after the mark; a jump means the stream no longer holds those
  messages — aged out, deleted or purged — and the log writes a gap entry
  before it, see ``gaps``): written;
- ahead of a gap: not written and not acknowledged; the stream's consumer is
  re-anchored at mark + 1, so nothing is ever skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vaultmesh.services.logger.entry import Incoming


@dataclass
class BatchPlan:
    """The outcome of planning one batch."""

    accept: list[Incoming] = field(default_factory=list)
    # Per stream, the index (in the planned list) of the last message to acknowledge.
    ack: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    reanchor: set[str] = field(default_factory=set)
    # Streams still waiting for their first message since being anchored.
    fresh: set[str] = field(default_factory=set)


def plan_batch(messages: Sequence[Incoming], hwm: Mapping[str, int], fresh: set[str]) -> BatchPlan:
    """Classify ``messages`` (in delivery order) against the log's high-water marks."""
    plan = BatchPlan(fresh=set(fresh))
    marks = dict(hwm)
    for index, msg in enumerate(messages):
        stream, seq = msg.stream, msg.stream_seq
        if stream in plan.reanchor:
            continue
        mark = marks.get(stream, 0)
        if seq <= mark:
            plan.duplicates += 1
        elif seq == mark + 1 or stream in plan.fresh:
            plan.accept.append(msg)
            marks[stream] = seq
        else:
            plan.reanchor.add(stream)
            continue
        plan.fresh.discard(stream)
        plan.ack[stream] = index
    return plan
