"""Stream-message ingest (pure): validation, rejection counting, the events working set."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from vaultmesh.services.fleet.attention import AttentionPolicy
from vaultmesh.services.fleet.events import EventWindow
from vaultmesh.services.fleet.ingest import EventIngest, HeartbeatIngest
from vaultmesh.services.fleet.metrics import FleetMetrics
from vaultmesh.services.fleet.registry import Change, Registry
from vaultmesh.services.fleet.tail import parse_ack_reply
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.events import EventEnvelope, EventKind, EventsQuery

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_NS = int(NOW.timestamp() * 1e9)
SECRET = "s3cret-marker-value"


def body(node_id: str, **fields: Any) -> bytes:
    data: dict[str, Any] = {
        "node_id": node_id,
        "hostname": "vault-01",
        "os_profile": "ArchVault",
        "cloudflare_ok": True,
        "services_ok": True,
        "vaultmesh_root": "/var/lib/vaultmesh",
        "timestamp": NOW.isoformat(),
    }
    data.update(fields)
    return orjson.dumps(data)


class Setup:
    def __init__(self) -> None:
        self.metrics = FleetMetrics(ServiceMetrics("fleet"))
        self.registry = Registry(AttentionPolicy())
        self.changes: list[Change] = []
        self.ingest = HeartbeatIngest(
            self.registry, ManualClock(NOW), self.metrics, self.changes.append, 4096
        )

    def bad(self, code: str) -> float | None:
        return self.metrics.base.registry.get_sample_value(
            "vaultmesh_bad_input_total", {"service": "fleet", "source": "heartbeat", "code": code}
        )

    def outcome(self, outcome: str) -> float | None:
        return self.metrics.base.registry.get_sample_value(
            "vaultmesh_fleet_heartbeats_total", {"service": "fleet", "outcome": outcome}
        )


def test_valid_heartbeat_registers_the_node() -> None:
    s = Setup()
    node = str(uuid4())
    s.ingest.handle(subjects.heartbeat(node), body(node), 7, NOW_NS)
    assert s.registry.get(node) is not None
    assert [c.node_id for c in s.changes] == [node]
    assert s.outcome("accepted") == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_request"),
        (b"[1, 2, 3]", "bad_request"),
        (b"", "bad_request"),
        ("wrong-type", "bad_request"),
        ("missing-field", "bad_request"),
        ("oversized", "payload_too_large"),
        ("other-node", "node_mismatch"),
    ],
)
def test_bad_heartbeats_are_rejected_counted_and_not_logged_verbatim(
    payload: bytes | str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    s = Setup()
    node = str(uuid4())
    built: dict[bytes | str, bytes] = {
        "wrong-type": body(node, cloudflare_ok="true", hostname=SECRET),
        "missing-field": orjson.dumps({"node_id": node, "hostname": SECRET}),
        "oversized": body(node, padding=SECRET * 400),
        "other-node": body(str(uuid4()), hostname=SECRET),
    }
    data = built.get(payload, payload)
    assert isinstance(data, bytes)
    with caplog.at_level(logging.WARNING):
        s.ingest.handle(subjects.heartbeat(node), data, 1, NOW_NS)
    assert len(s.registry) == 0
    assert s.bad(code) == 1
    assert s.outcome("rejected") == 1
    assert caplog.records, "a rejection is logged"
    assert SECRET not in caplog.text


def test_rejection_logs_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    s = Setup()
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            s.ingest.handle(subjects.heartbeat(str(uuid4())), b"{nope", 1, NOW_NS)
    assert s.bad("bad_request") == 50
    assert len(caplog.records) == 1


def _event(node: UUID | None = None, kind: EventKind = EventKind.NOTE, at: int = 0) -> bytes:
    event = EventEnvelope.create(
        kind=kind, author="op", node_id=node, body=f"e{at}", ts=NOW + timedelta(seconds=at)
    )
    return event.model_dump_json().encode()


def test_event_window_is_bounded_newest_first_and_filters() -> None:
    window = EventWindow(5)
    ingest = EventIngest(window, FleetMetrics(ServiceMetrics("fleet")), 65536)
    node = uuid4()
    for seq in range(1, 9):
        kind = EventKind.INCIDENT if seq % 2 else EventKind.NOTE
        ingest.handle("s", _event(node if seq > 5 else None, kind, seq), seq, 0)
    assert len(window) == 5
    events, seqs = window.query(EventsQuery())
    assert seqs == [8, 7, 6, 5, 4]
    assert [e.body for e in events] == ["e8", "e7", "e6", "e5", "e4"]
    _, only_notes = window.query(EventsQuery(kind=EventKind.NOTE))
    assert only_notes == [8, 6, 4]
    _, for_node = window.query(EventsQuery(node_id=node))
    assert for_node == [8, 7, 6]
    _, since = window.query(EventsQuery(since=NOW + timedelta(seconds=7)))
    assert since == [8, 7]
    _, limited = window.query(EventsQuery(limit=2))
    assert limited == [8, 7]


def test_invalid_events_are_skipped_and_counted() -> None:
    metrics = FleetMetrics(ServiceMetrics("fleet"))
    window = EventWindow(10)
    ingest = EventIngest(window, metrics, 65536)
    tampered = orjson.loads(_event())
    tampered["body"] = "changed after the id was computed"
    for seq, data in enumerate([b"{bad", b'{"kind": "note"}', orjson.dumps(tampered)], 1):
        ingest.handle("s", data, seq, 0)
    ingest.handle("s", _event(), 4, 0)
    assert len(window) == 1
    skipped = metrics.base.registry.get_sample_value(
        "vaultmesh_fleet_events_skipped_total", {"service": "fleet"}
    )
    assert skipped == 3


def test_window_ignores_replayed_sequences() -> None:
    window = EventWindow(10)
    event = EventEnvelope.model_validate_json(_event())
    window.add(5, event)
    window.add(5, event)
    window.add(3, event)
    assert len(window) == 1


def test_parse_ack_reply_v1_and_v2() -> None:
    assert parse_ack_reply("$JS.ACK.HEARTBEATS.c1.1.42.7.1700000000000000000.3") == (
        42,
        7,
        1700000000000000000,
        3,
    )
    v2 = "$JS.ACK.dom.acc.HEARTBEATS.c1.1.42.7.1700000000000000000.0.rnd"
    assert parse_ack_reply(v2) == (42, 7, 1700000000000000000, 0)


def test_mismatch_on_a_known_nodes_subject_is_rejected() -> None:
    s = Setup()
    node, other = str(uuid4()), str(uuid4())
    s.ingest.handle(subjects.heartbeat(node), body(node), 1, NOW_NS)
    s.ingest.handle(subjects.heartbeat(node), body(other, cloudflare_ok=False), 2, NOW_NS)
    s.ingest.handle(subjects.heartbeat(node), body(node.upper()), 3, NOW_NS)  # same UUID
    assert s.bad("node_mismatch") == 1
    assert s.registry.get(other) is None
    state = s.registry.get(node)
    assert state is not None
    assert state.cloudflare_ok
    assert s.outcome("accepted") == 2


def test_subject_token_must_be_the_canonical_form() -> None:
    s = Setup()
    node = str(uuid4())
    s.ingest.handle(subjects.heartbeat(node.upper()), body(node), 1, NOW_NS)
    assert s.bad("node_mismatch") == 1
    assert len(s.registry) == 0
