"""Query filters and JetStream ack-subject parsing (pure parts of the logger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultmesh.services.logger.feed import ack_fields
from vaultmesh.services.logger.query import Filter
from vaultmesh.services.logger.segments import Segment

ENTRY = {
    "seq": 4,
    "received": "2026-01-01T10:00:00.000000Z",
    "subject": "audit.vault.get",
    "kind": "audit",
    "node": "n1",
    "severity": "warning",
}


@pytest.mark.parametrize(
    ("flt", "matches"),
    [
        (Filter(), True),
        (Filter(kind="audit"), True),
        (Filter(kind="note"), False),
        (Filter(node="n1"), True),
        (Filter(node="n2"), False),
        (Filter(subject="audit.>"), True),
        (Filter(subject="audit.*.get"), True),
        (Filter(subject="audit.vault"), False),
        (Filter(subject="fleet.>"), False),
        (Filter(min_severity="warning"), True),
        (Filter(min_severity="info"), True),
        (Filter(min_severity="error"), False),
        (Filter(kind="audit", node="n1", min_severity="critical"), False),
    ],
)
def test_filter_matches(flt: Filter, matches: bool) -> None:
    assert flt.matches(ENTRY) is matches


def test_cursor_bounds() -> None:
    assert Filter().seq_bounds(10) == (0, 10)
    assert Filter(after_seq=3).seq_bounds(10) == (4, 10)
    assert Filter(after_seq=-1, before_seq=5).seq_bounds(10) == (0, 5)
    assert Filter(before_seq=50).seq_bounds(10) == (0, 10)


def test_segments_outside_the_window_are_skipped() -> None:
    seg = Segment(
        path=Path("unused"),
        first_seq=0,
        count=5,
        nbytes=100,
        first_received="2026-01-01T10:00:00.000000Z",
        last_received="2026-01-01T11:00:00.000000Z",
    )
    assert Filter(since="2026-01-01T10:30:00.000000Z").segment_in_window(seg)
    assert not Filter(since="2026-01-01T11:00:00.000001Z").segment_in_window(seg)
    assert not Filter(until="2026-01-01T09:59:59.999999Z").segment_in_window(seg)
    unknown = Segment(seg.path, 0, 5, 100)
    assert Filter(since="2030-01-01T00:00:00.000000Z").segment_in_window(unknown)


def test_ack_subject_layouts() -> None:
    v1 = "$JS.ACK.AUDIT.logger.1.42.40.1767225600123456789.7"
    assert ack_fields(v1) == ("AUDIT", 42, 1767225600123456789)
    v2 = "$JS.ACK.hub.ACCHASH.EVENTS.logger.2.9.8.1767225600000000000.0.abc123"
    assert ack_fields(v2) == ("EVENTS", 9, 1767225600000000000)
    for bad in ("", "reply.inbox.x", "$JS.ACK.AUDIT.logger.1.x.40.1.7"):
        with pytest.raises(ValueError, match="JetStream"):
            ack_fields(bad)
