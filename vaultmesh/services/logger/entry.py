"""Log entries: how a captured bus message becomes one JSONL line, and back.

A line is compact JSON with the fields, in this order::

    seq         position in the log, 0-based; also the Merkle leaf index
    received    when the logger received it (RFC 3339 UTC, microseconds, fixed width)
    stored      when JetStream stored it (same format)
    subject     the NATS subject
    kind        event kind, or command / receipt / schedule / audit, or gap (see gaps.py)
    node        node id the message is about, or null
    severity    debug .. critical (info when the message does not say)
    stream      the JetStream stream it came from (AUDIT or EVENTS)
    stream_seq  its sequence in that stream: the deduplication key
    payload     the message body as JSON (MessagePack bodies are converted), or null
    payload_b64 only when the body is neither: the raw bytes, base64

The Merkle leaf is the line's exact bytes without the newline. Timestamps have a
fixed width so that comparing the strings compares the times.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson

from vaultmesh.shared import subjects
from vaultmesh.shared.models.common import Severity

SEVERITIES = {s.value: s.rank for s in Severity}
DEFAULT_SEVERITY = Severity.INFO.value
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_NODE = 128

# Subject families, derived from the one subjects module (never spelled out here).
_EVENT_PREFIX = subjects.EVENT_ALL.removesuffix(">")
_COMMAND_PREFIX = subjects.COMMAND_ALL.removesuffix("*")
_RECEIPT_PREFIX = subjects.RECEIPT_ALL.removesuffix("*")
_SCHED_PREFIX = subjects.SCHED_FIRE_ALL.removesuffix(">")
_AUDIT_PREFIX = subjects.AUDIT_ALL.removesuffix(">")


class EntryError(ValueError):
    """A line is not a well-formed log entry."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One captured message, as the consumer hands it to the log."""

    stream: str
    stream_seq: int
    subject: str
    data: bytes
    stored_ns: int = 0  # JetStream's store time, nanoseconds since the epoch (0: unknown)
    msgpack: bool = False


def stamp(when: datetime) -> str:
    """``when`` in the fixed-width RFC 3339 form used in entries."""
    return when.astimezone(UTC).strftime(_TIME_FORMAT)


@functools.lru_cache(maxsize=256)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def stamp_ns(ns: int) -> str:
    """A nanosecond UNIX time in the fixed-width form (fast: one format per second)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_second(seconds)}.{rest // 1000:06d}Z"


def decode_payload(data: bytes, is_msgpack: bool) -> tuple[Any, bool]:
    """(payload, ok): the body as plain data, or (None, False) when it is neither format."""
    if not data:
        return None, True
    try:
        if is_msgpack:
            return msgpack.unpackb(data, raw=False, strict_map_key=False), True
        return orjson.loads(data), True
    except (ValueError, TypeError, msgpack.UnpackException):
        return None, False


def _node_field(payload: Any) -> str | None:
    node = payload.get("node_id") if isinstance(payload, dict) else None
    return node if isinstance(node, str) and 0 < len(node) <= _MAX_NODE else None


def classify(subject: str, payload: Any) -> tuple[str, str | None]:
    """(kind, node) of a message from its subject (and payload, for audit records)."""
    if subject.startswith(_EVENT_PREFIX):
        kind, _, node = subject[len(_EVENT_PREFIX) :].partition(".")
        return kind, (None if node in ("", subjects.NO_NODE) else node)
    if subject.startswith(_COMMAND_PREFIX):
        return "command", subject[len(_COMMAND_PREFIX) :]
    if subject.startswith(_RECEIPT_PREFIX):
        return "receipt", subject[len(_RECEIPT_PREFIX) :]
    if subject.startswith(_SCHED_PREFIX):
        return "schedule", _node_field(payload)
    if subject.startswith(_AUDIT_PREFIX):
        return "audit", _node_field(payload)
    if subject == subjects.LOGGER_STREAM_GAP:
        return "gap", None
    return subject.partition(".")[0], _node_field(payload)


def severity_of(payload: Any) -> str:
    """The severity a payload declares, or the default."""
    value = payload.get("severity") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value in SEVERITIES else DEFAULT_SEVERITY


def build_line(seq: int, received: str, msg: Incoming) -> bytes:
    """The JSONL line (without newline) for ``msg`` at position ``seq``."""
    payload, ok = decode_payload(msg.data, msg.msgpack)
    kind, node = classify(msg.subject, payload)
    entry: dict[str, Any] = {
        "seq": seq,
        "received": received,
        "stored": stamp_ns(msg.stored_ns) if msg.stored_ns else received,
        "subject": msg.subject,
        "kind": kind,
        "node": node,
        "severity": severity_of(payload),
        "stream": msg.stream,
        "stream_seq": msg.stream_seq,
        "payload": payload,
    }
    if ok:
        try:
            return orjson.dumps(entry)
        except TypeError:  # e.g. MessagePack binary fields: keep the raw body instead
            entry["payload"] = None
    entry["payload_b64"] = base64.b64encode(msg.data).decode("ascii")
    return orjson.dumps(entry)


def parse_line(line: bytes) -> dict[str, Any]:
    """The entry a line holds; raise EntryError when it is not one."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise EntryError("not valid JSON") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
        raise EntryError("not a log entry")
    return entry


def received_of(line: bytes) -> str:
    """The ``received`` field of a line (for segment time ranges)."""
    value = parse_line(line).get("received")
    if not isinstance(value, str):
        raise EntryError("entry has no receive time")
    return value
