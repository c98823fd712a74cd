"""Planning fetched batches: duplicates, next-in-line, gaps, fresh anchors."""

from __future__ import annotations

from vaultmesh.services.logger.delivery import plan_batch
from vaultmesh.services.logger.entry import Incoming


def msg(stream: str, seq: int) -> Incoming:
    return Incoming(stream, seq, f"audit.{stream.lower()}.x", b"{}")


def test_in_order_messages_are_all_written_and_the_last_acked() -> None:
    batch = [msg("AUDIT", 1), msg("EVENTS", 1), msg("AUDIT", 2), msg("EVENTS", 2)]
    plan = plan_batch(batch, {}, set())
    assert [(m.stream, m.stream_seq) for m in plan.accept] == [
        ("AUDIT", 1),
        ("EVENTS", 1),
        ("AUDIT", 2),
        ("EVENTS", 2),
    ]
    assert plan.ack == {"AUDIT": 2, "EVENTS": 3}
    assert not plan.reanchor


def test_redelivered_messages_are_skipped_but_acked() -> None:
    plan = plan_batch([msg("AUDIT", 4), msg("AUDIT", 5), msg("AUDIT", 6)], {"AUDIT": 5}, set())
    assert [m.stream_seq for m in plan.accept] == [6]
    assert plan.duplicates == 2
    assert plan.ack == {"AUDIT": 2}


def test_only_duplicates_still_ack() -> None:
    plan = plan_batch([msg("AUDIT", 1), msg("AUDIT", 2)], {"AUDIT": 9}, set())
    assert plan.accept == []
    assert plan.ack == {"AUDIT": 1}


def test_a_gap_stops_that_stream_and_asks_for_a_reanchor() -> None:
    batch = [msg("AUDIT", 3), msg("EVENTS", 1), msg("AUDIT", 5), msg("AUDIT", 6), msg("EVENTS", 2)]
    plan = plan_batch(batch, {"AUDIT": 2}, set())
    assert [(m.stream, m.stream_seq) for m in plan.accept] == [
        ("AUDIT", 3),
        ("EVENTS", 1),
        ("EVENTS", 2),
    ]
    assert plan.reanchor == {"AUDIT"}
    assert plan.ack == {"AUDIT": 0, "EVENTS": 4}  # nothing past the gap is acknowledged


def test_first_message_after_an_anchor_may_jump_over_missing_messages() -> None:
    # The stream no longer holds 3..9: written (the log records the gap, see gaps.py).
    plan = plan_batch([msg("AUDIT", 10), msg("AUDIT", 11)], {"AUDIT": 2}, {"AUDIT"})
    assert [m.stream_seq for m in plan.accept] == [10, 11]
    assert plan.fresh == set()
    assert not plan.reanchor


def test_fresh_stream_without_messages_stays_fresh() -> None:
    plan = plan_batch([msg("AUDIT", 1)], {}, {"AUDIT", "EVENTS"})
    assert plan.fresh == {"EVENTS"}
