"""Wire models: the seed 000 heartbeat and the canonical EventEnvelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import orjson
import pytest

from vaultmesh.shared.errors import BadRequest
from vaultmesh.shared.models.common import Severity
from vaultmesh.shared.models.events import EventEnvelope, EventKind
from vaultmesh.shared.models.heartbeat import Heartbeat
from vaultmesh.shared.validation import parse, parse_json

SEED_EXAMPLE = {
    "node_id": "550e8400-e29b-41d4-a716-446655440000",
    "hostname": "vault-node-01",
    "os_profile": "ArchVault",
    "cloudflare_ok": True,
    "services_ok": True,
    "vaultmesh_root": "/var/lib/vaultmesh",
    "timestamp": "2024-01-15T10:30:00Z",
}


def test_seed_example_heartbeat_parses() -> None:
    hb = parse(Heartbeat, SEED_EXAMPLE)
    assert hb.hostname == "vault-node-01"
    assert hb.timestamp == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert hb.model_dump(mode="json")["timestamp"] == "2024-01-15T10:30:00Z"


def test_offsets_are_normalised_to_utc() -> None:
    hb = parse(Heartbeat, {**SEED_EXAMPLE, "timestamp": "2024-01-15T12:30:00+02:00"})
    assert hb.timestamp.tzinfo == UTC
    assert hb.timestamp.hour == 10


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("node_id", "not-a-uuid"),
        ("cloudflare_ok", "true"),
        ("services_ok", 1),
        ("timestamp", "2024-01-15T10:30:00"),  # no zone: not RFC 3339
        ("hostname", ""),
        ("hostname", 5),
    ],
)
def test_wrong_types_are_rejected_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(BadRequest, match=field):
        parse(Heartbeat, {**SEED_EXAMPLE, field: value})


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    hb = parse(Heartbeat, {**SEED_EXAMPLE, "future_field": 1})
    assert "future_field" not in hb.model_dump()


def test_parse_json_reports_malformed_json() -> None:
    with pytest.raises(BadRequest, match="malformed JSON"):
        parse_json(Heartbeat, b"{oops")


def test_validation_errors_do_not_echo_input() -> None:
    with pytest.raises(BadRequest) as info:
        parse(Heartbeat, {**SEED_EXAMPLE, "hostname": {"secret": "s3cr3t-value"}})
    assert "s3cr3t-value" not in info.value.message


def test_event_id_is_derived_from_canonical_bytes() -> None:
    node = uuid4()
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    a = EventEnvelope.create(kind=EventKind.NOTE, author="op", node_id=node, body="hi", ts=when)
    b = EventEnvelope.create(kind=EventKind.NOTE, author="op", node_id=node, body="hi", ts=when)
    c = EventEnvelope.create(kind=EventKind.NOTE, author="op", node_id=node, body="hi!", ts=when)
    assert a.id == b.id
    assert a.id != c.id
    assert a.id.startswith("ev_")
    assert a.id_is_valid()


def test_event_id_ignores_zone_and_data_key_order() -> None:
    utc = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    plus2 = utc.astimezone(timezone(timedelta(hours=2)))
    a = EventEnvelope.create(kind=EventKind.TAG, author="x", ts=utc, data={"a": 1, "b": 2})
    b = EventEnvelope.create(kind=EventKind.TAG, author="x", ts=plus2, data={"b": 2, "a": 1})
    assert a.id == b.id


def test_tampered_event_fails_validation() -> None:
    ev = EventEnvelope.create(kind=EventKind.INCIDENT, author="x", severity=Severity.ERROR)
    forged = ev.model_copy(update={"severity": Severity.INFO})
    assert not forged.id_is_valid()


def test_severity_ranks() -> None:
    assert Severity.DEBUG.rank < Severity.WARNING.rank < Severity.CRITICAL.rank


def test_byte_counts_fit_in_64_bits_the_bus_codec_can_carry() -> None:
    top = 2**64 - 1
    hb = parse(Heartbeat, {**SEED_EXAMPLE, "metrics": {"mem_total_bytes": top}})
    assert hb.metrics is not None
    assert hb.metrics.mem_total_bytes == top
    with pytest.raises(BadRequest, match="mem_total_bytes"):
        parse(Heartbeat, {**SEED_EXAMPLE, "metrics": {"mem_total_bytes": top + 1}})


def test_the_bus_json_of_a_heartbeat_reads_back_as_the_same_heartbeat() -> None:
    # What the gateway publishes: orjson of the model's JSON-mode dump.
    body = {
        **SEED_EXAMPLE,
        "timestamp": "2024-01-15T12:30:00.000250+02:00",
        "metrics": {"load1": 0.1, "load5": 1e-7, "mem_total_bytes": 2**64 - 1},
        "interval_s": 30,
    }
    hb = parse(Heartbeat, body)
    data = orjson.dumps(hb.model_dump(mode="json", exclude_none=True))
    assert b'"timestamp":"2024-01-15T10:30:00.000250Z"' in data
    assert b'"load15"' not in data
    assert Heartbeat.model_validate_json(data, strict=True) == hb
