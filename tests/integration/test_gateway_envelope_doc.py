"""docs/EVENT_ENVELOPE.md's worked example matches the code (and events.py's data rules)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from vaultmesh.shared.models.events import EventEnvelope, NewEvent

DOC = Path(__file__).resolve().parents[2] / "docs" / "EVENT_ENVELOPE.md"


def _blocks() -> list[str]:
    return re.findall(r"```(?:json)?\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_documented_example_id_and_canonical_bytes() -> None:
    wire, canonical = _blocks()[:2]
    envelope = EventEnvelope.model_validate_json(wire)
    assert envelope.canonical_bytes() == canonical.encode()
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    assert envelope.id == "ev_" + digest[:32]
    assert envelope.id_is_valid()
    assert envelope.model_dump_json() == wire


def test_canonical_bytes_ignore_zone_and_key_order() -> None:
    wire = _blocks()[0]
    shifted = wire.replace("2026-03-01T12:00:05.120000Z", "2026-03-01T14:00:05.12+02:00")
    reordered = shifted.replace(
        '{"ticket":"OPS-142","window_min":30,"after":{"reboot":true}}',
        '{"after":{"reboot":true},"window_min":30,"ticket":"OPS-142"}',
    )
    assert EventEnvelope.model_validate_json(reordered).id_is_valid()


@pytest.mark.parametrize(
    "data",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": 10**400},
        {"a": {"b": {"c": {}}}} | {"deep": None},
    ],
    ids=["nan", "inf", "too-big", "ok-nested"],
)
def test_event_data_must_be_portable_json(data: dict[str, object]) -> None:
    if "deep" in data:
        assert NewEvent(kind="note", author="a", data=data).data == data  # type: ignore[arg-type]
        return
    with pytest.raises(ValidationError):
        NewEvent(kind="note", author="a", data=data)  # type: ignore[arg-type]


def test_integers_beyond_64_bits_become_doubles() -> None:
    event = NewEvent(kind="note", author="a", data={"n": 2**70, "m": [1, 2**64 - 1]})  # type: ignore[arg-type]
    assert event.data == {"n": float(2**70), "m": [1, 2**64 - 1]}


def test_data_depth_is_bounded() -> None:
    value: dict[str, object] = {}
    for _ in range(20):
        value = {"k": value}
    with pytest.raises(ValidationError, match="deeper"):
        NewEvent(kind="note", author="a", data=value)  # type: ignore[arg-type]
