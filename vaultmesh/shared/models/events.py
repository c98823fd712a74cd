"""The EventEnvelope: the canonical message of the communication layer (seed 001 V0.7.2).

Canonical form (specified in docs/EVENT_ENVELOPE.md): a JSON object of every
field but ``id`` — ``author, body, data, kind, node_id, severity, tags, ts``,
a fixed order which is also the lexicographic one, as is the key order inside
``data`` at every depth — with ``ts`` as RFC 3339 UTC with exactly six
fractional digits and a ``Z``, compact separators and UTF-8 text. The ``id`` is
``"ev_"`` plus the first 32 hex digits of the SHA-256 of those bytes, so the
same event always gets the same id and any change to it gets a different one.
``data`` holds plain JSON that every implementation reads alike (string keys,
finite numbers, at most 16 levels deep; an integer beyond 64 bits becomes a
double, as in JavaScript), so the id can be recomputed wherever the event goes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any
from uuid import UUID

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from vaultmesh.shared.models.common import Severity, Timestamp

MAX_BODY = 16 * 1024
MAX_DATA_DEPTH = 16
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _json_value(value: Any, depth: int) -> Any:
    """``value`` as plain JSON every implementation reads alike; raise ValueError if it is not."""
    if depth > MAX_DATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("object keys must be strings")
        return {key: _json_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item, depth + 1) for item in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        # Beyond 64 bits a JSON number is a double, as JavaScript and orjson read it.
        if _INT_MIN <= value <= _INT_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            raise ValueError("number is out of range") from None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("numbers must be finite")
        return value
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def _canonical_data(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _json_value(value, 1)
    return result


# Event payload: plain JSON that encodes the same way everywhere (see the module docstring).
EventData = Annotated[dict[str, Any], AfterValidator(_canonical_data)]


class EventKind(StrEnum):
    """What an event is about."""

    NOTE = "note"
    INCIDENT = "incident"
    ACK = "ack"
    TAG = "tag"
    RESOLVE = "resolve"
    HEARTBEAT = "heartbeat"
    ATTENTION = "attention"
    SCAN = "scan"
    COMMAND = "command"
    # A node left the registry: deleted by an admin or expired after its retention.
    REMOVAL = "removal"


HUMAN_KINDS = frozenset(
    {EventKind.NOTE, EventKind.INCIDENT, EventKind.ACK, EventKind.TAG, EventKind.RESOLVE}
)


class EventFields(BaseModel):
    """What an event says: every field but the server-set ``id`` and ``ts``."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    node_id: UUID | None = None
    author: Annotated[str, Field(min_length=1, max_length=128)]
    severity: Severity = Severity.INFO
    body: Annotated[str, Field(max_length=MAX_BODY)] = ""
    tags: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=32)
    ] = Field(default_factory=list)
    data: EventData = Field(default_factory=dict)


class _Stamp(BaseModel):
    """The fields the server sets on an event."""

    id: str
    ts: Timestamp


# Stamp last among the bases: pydantic orders fields from the far end of the MRO, so
# ``id`` and ``ts`` come first on the wire, as docs/EVENT_ENVELOPE.md shows.
class EventEnvelope(EventFields, _Stamp):
    """One event in the communication layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def create(
        cls,
        *,
        kind: EventKind,
        author: str,
        node_id: UUID | None = None,
        severity: Severity = Severity.INFO,
        body: str = "",
        tags: list[str] | None = None,
        data: dict[str, Any] | None = None,
        ts: datetime | None = None,
    ) -> EventEnvelope:
        """Build an envelope and derive its id from its canonical bytes."""
        fields: dict[str, Any] = {
            "ts": (ts or datetime.now(UTC)).astimezone(UTC),
            "kind": kind,
            "node_id": node_id,
            "author": author,
            "severity": severity,
            "body": body,
            "tags": list(tags or []),
            "data": dict(data or {}),
        }
        return cls(id=event_id(fields), **fields)

    def canonical_bytes(self) -> bytes:
        """The canonical encoding of every field but ``id``."""
        return canonical_bytes(self.model_dump(exclude={"id"}))

    def id_is_valid(self) -> bool:
        """True when ``id`` matches the canonical bytes (the event was not altered)."""
        return self.id == event_id(self.model_dump(exclude={"id"}))


def _ts(value: Any) -> str:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """Keys sorted at every depth, UTC microsecond ``Z`` timestamp, compact UTF-8 JSON."""
    node = fields.get("node_id")
    kind = fields["kind"]
    severity = fields.get("severity", Severity.INFO)
    ordered = [
        ("ts", _ts(fields["ts"])),
        ("kind", kind.value if isinstance(kind, Enum) else str(kind)),
        ("node_id", None if node is None else str(node)),
        ("author", fields["author"]),
        ("severity", severity.value if isinstance(severity, Enum) else str(severity)),
        ("body", fields.get("body", "")),
        ("tags", list(fields.get("tags", []))),
        ("data", fields.get("data", {})),
    ]
    return orjson.dumps(dict(ordered), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def event_id(fields: dict[str, Any]) -> str:
    """The id of an event with these fields."""
    return "ev_" + hashlib.sha256(canonical_bytes(fields)).hexdigest()[:32]


class EventsQuery(BaseModel):
    """``fleet.api.events`` and ``GET /api/events``: recent events, newest first."""

    model_config = ConfigDict(extra="forbid")

    since: Timestamp | None = None
    kind: EventKind | None = None
    node_id: UUID | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class EventList(BaseModel):
    """Reply of ``fleet.api.events``: each event with its EVENTS stream sequence."""

    events: list[EventEnvelope]
    sequences: list[int]


class NewEvent(EventFields):
    """What a person, agent or bot posts to ``POST /api/events``; the server fills id and ts."""
