"""Filtering, listing and counting entries by scanning segments (no index).

Queries read a ``LogSnapshot`` in a worker thread, so they never hold up the
writer: nothing is kept in memory per entry. Two facts keep scans short:

- sequence numbers map to line positions, so a cursor (``after_seq`` /
  ``before_seq``) skips whole segments and, inside one, costs a line split only;
- receive times never decrease along the log, so a segment whose time range is
  outside ``since``/``until`` is skipped unread, and a scan stops as soon as it
  passes the window's edge.

The cost of a cold query is therefore bounded by the entries inside its window
(and at most one segment, 16 MiB by default, at each edge).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from vaultmesh.services.logger.entry import DEFAULT_SEVERITY, SEVERITIES
from vaultmesh.services.logger.segments import Segment, read_backward, read_forward
from vaultmesh.services.logger.snapshot import LogSnapshot
from vaultmesh.shared import subjects


@dataclass(frozen=True)
class Filter:
    """Which entries a query wants; times are fixed-width entry timestamps."""

    kind: str | None = None
    node: str | None = None
    subject: str | None = None
    since: str | None = None
    until: str | None = None
    min_severity: str | None = None
    after_seq: int | None = None
    before_seq: int | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        """True when ``entry`` passes the field filters (the scan checks times and cursors)."""
        if self.kind is not None and entry.get("kind") != self.kind:
            return False
        if self.node is not None and entry.get("node") != self.node:
            return False
        if self.min_severity is not None:
            rank = SEVERITIES.get(entry.get("severity", DEFAULT_SEVERITY), 0)
            if rank < SEVERITIES[self.min_severity]:
                return False
        return self.subject is None or subjects.subject_matches(
            self.subject, str(entry.get("subject", ""))
        )

    def seq_bounds(self, size: int) -> tuple[int, int]:
        """The half-open range of sequence numbers the cursors allow."""
        lo = 0 if self.after_seq is None else self.after_seq + 1
        hi = size if self.before_seq is None else min(size, self.before_seq)
        return lo, hi

    def segment_in_window(self, seg: Segment) -> bool:
        """False only when the segment's known time range lies outside ``since``/``until``."""
        if self.since is not None and seg.last_received and seg.last_received < self.since:
            return False
        return not (
            self.until is not None and seg.first_received and seg.first_received > self.until
        )


def _segments(snap: LogSnapshot, flt: Filter, lo: int, hi: int) -> list[Segment]:
    return [
        seg
        for seg in snap.segments
        if seg.count and seg.end_seq > lo and seg.first_seq < hi and flt.segment_in_window(seg)
    ]


def _parse(line: bytes) -> dict[str, Any] | None:
    # A damaged line is skipped here; ``vaultmesh logs verify`` is what reports it.
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


def _forward(snap: LogSnapshot, flt: Filter) -> Iterator[dict[str, Any]]:
    lo, hi = flt.seq_bounds(snap.size)
    for seg in _segments(snap, flt, lo, hi):
        for seq, line in read_forward(seg, max(lo, seg.first_seq)):
            if seq >= hi:
                return
            entry = _parse(line)
            if entry is None:
                continue
            received = entry.get("received", "")
            if flt.until is not None and received > flt.until:
                return
            if flt.since is None or received >= flt.since:
                yield entry


def _backward(snap: LogSnapshot, flt: Filter) -> Iterator[dict[str, Any]]:
    lo, hi = flt.seq_bounds(snap.size)
    for seg in reversed(_segments(snap, flt, lo, hi)):
        for seq, line in read_backward(seg):
            if seq >= hi:
                continue
            if seq < lo:
                return
            entry = _parse(line)
            if entry is None:
                continue
            received = entry.get("received", "")
            if flt.since is not None and received < flt.since:
                return
            if flt.until is None or received <= flt.until:
                yield entry


def scan(snap: LogSnapshot, flt: Filter, newest_first: bool) -> Iterator[dict[str, Any]]:
    """Every entry matching ``flt``, in the order asked for."""
    source = _backward(snap, flt) if newest_first else _forward(snap, flt)
    return (entry for entry in source if flt.matches(entry))


def view(snap: LogSnapshot, flt: Filter, limit: int, newest_first: bool) -> list[dict[str, Any]]:
    """Up to ``limit`` matching entries."""
    found = []
    for entry in scan(snap, flt, newest_first):
        found.append(entry)
        if len(found) >= limit:
            break
    return found


def stats(snap: LogSnapshot, flt: Filter) -> dict[str, Any]:
    """Counts of matching entries per node, kind and severity."""
    by_node: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    first = last = None
    for entry in scan(snap, flt, newest_first=False):
        by_node[entry.get("node") or "-"] += 1
        by_kind[str(entry.get("kind"))] += 1
        by_severity[str(entry.get("severity"))] += 1
        first = entry["seq"] if first is None else first
        last = entry["seq"]
    return {
        "total": sum(by_kind.values()),
        "by_node": dict(by_node.most_common()),
        "by_kind": dict(by_kind.most_common()),
        "by_severity": dict(by_severity.most_common()),
        "first_seq": first,
        "last_seq": last,
    }
