"""Log entries: classification, line format, timestamps."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgpack
import orjson
import pytest

from vaultmesh.services.logger import entry
from vaultmesh.services.logger.entry import Incoming, build_line, classify, parse_line
from vaultmesh.shared import subjects

NODE = str(uuid4())


@pytest.mark.parametrize(
    ("subject", "payload", "kind", "node"),
    [
        (subjects.event("note", NODE), {}, "note", NODE),
        (subjects.event("incident"), {}, "incident", None),
        (subjects.command(NODE), {}, "command", NODE),
        (subjects.receipt(NODE), {}, "receipt", NODE),
        (subjects.sched_fire("rotate"), {"node_id": NODE}, "schedule", NODE),
        (subjects.audit("vault", "get"), {"node_id": NODE}, "audit", NODE),
        (subjects.audit("vault", "get"), {"node_id": 5}, "audit", None),
        (subjects.audit("vault", "get"), [1, 2], "audit", None),
        ("other.thing", {}, "other", None),
    ],
)
def test_classify(subject: str, payload: object, kind: str, node: str | None) -> None:
    assert classify(subject, payload) == (kind, node)


@pytest.mark.parametrize(
    ("payload", "severity"),
    [
        ({"severity": "critical"}, "critical"),
        ({"severity": "LOUD"}, "info"),
        ({"severity": 3}, "info"),
        ({}, "info"),
        ("text", "info"),
    ],
)
def test_severity(payload: object, severity: str) -> None:
    assert entry.severity_of(payload) == severity


def test_json_line_has_every_field_in_order() -> None:
    msg = Incoming(
        stream="AUDIT",
        stream_seq=7,
        subject=subjects.audit("vault", "get"),
        data=b'{"outcome": "denied", "severity": "warning", "node_id": "n1"}',
        stored_ns=1_767_225_600_123_456_789,
    )
    line = build_line(3, "2026-01-01T00:00:01.000000Z", msg)
    assert b"\n" not in line
    parsed = parse_line(line)
    assert list(parsed) == [
        "seq",
        "received",
        "stored",
        "subject",
        "kind",
        "node",
        "severity",
        "stream",
        "stream_seq",
        "payload",
    ]
    assert parsed["seq"] == 3
    assert parsed["stored"] == "2026-01-01T00:00:00.123456Z"
    assert parsed["severity"] == "warning"
    assert parsed["node"] == "n1"
    assert parsed["payload"] == {"outcome": "denied", "severity": "warning", "node_id": "n1"}


def test_pretty_printed_payload_becomes_one_line() -> None:
    msg = Incoming("EVENTS", 1, subjects.event("note"), b'{\n  "body": "a\\nb"\n}\n')
    line = build_line(0, "2026-01-01T00:00:00.000000Z", msg)
    assert b"\n" not in line
    assert parse_line(line)["payload"] == {"body": "a\nb"}


def test_msgpack_payload_is_converted() -> None:
    body = msgpack.packb({"severity": "error", "x": 1})
    msg = Incoming("AUDIT", 1, subjects.audit("a", "b"), body, msgpack=True)
    parsed = parse_line(build_line(0, "2026-01-01T00:00:00.000000Z", msg))
    assert parsed["payload"] == {"severity": "error", "x": 1}
    assert parsed["severity"] == "error"


@pytest.mark.parametrize(
    ("data", "is_msgpack"),
    [(b"\xff\x00not json", False), (msgpack.packb({"blob": b"\x00\x01"}), True)],
)
def test_undecodable_or_binary_payload_is_kept_raw(data: bytes, is_msgpack: bool) -> None:
    msg = Incoming("AUDIT", 1, subjects.audit("a", "b"), data, msgpack=is_msgpack)
    parsed = parse_line(build_line(0, "2026-01-01T00:00:00.000000Z", msg))
    assert parsed["payload"] is None
    assert base64.b64decode(parsed["payload_b64"]) == data


def test_empty_body_is_null_payload() -> None:
    msg = Incoming("AUDIT", 1, subjects.audit("a", "b"), b"")
    parsed = parse_line(build_line(0, "2026-01-01T00:00:00.000000Z", msg))
    assert parsed["payload"] is None
    assert "payload_b64" not in parsed


def test_stamps_are_fixed_width_and_sort_as_time() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [base, base + timedelta(microseconds=1), base + timedelta(seconds=1, days=40)]
    stamps = [entry.stamp(m) for m in moments]
    assert stamps[0] == "2026-01-01T00:00:00.000000Z"
    assert len({len(s) for s in stamps}) == 1
    assert stamps == sorted(stamps)
    ns = int(moments[2].timestamp()) * 1_000_000_000 + 5_000
    assert entry.stamp_ns(ns) == "2026-02-10T00:00:01.000005Z"


@pytest.mark.parametrize("line", [b"{oops", b"[1]", b'{"seq": "1"}', orjson.dumps({"x": 1})])
def test_parse_line_rejects_non_entries(line: bytes) -> None:
    with pytest.raises(entry.EntryError):
        parse_line(line)
