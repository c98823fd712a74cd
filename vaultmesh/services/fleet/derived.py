"""Derived node state as persisted in the ``FLEET_STATE`` KV bucket (one key per node).

Written only when a node's derived state changes (status, reasons, drift,
baseline, registration), never per heartbeat. It also carries the node's last
known facts at that moment, so a node whose heartbeats have aged out of the
HEARTBEATS stream is still known (and correctly CRIT) after a restart.

A record written while its node's ``attention`` event is not yet published
carries that event (``announce``): the writer stores the record first, so if it
dies before publishing, the replica that takes over publishes it from the record
(see takeover.py).

A removed node's key holds a ``TombstoneRecord`` instead: the HEARTBEATS
sequence up to which its heartbeats are history, so a restart's replay does
not bring it back (see tombstones.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import NodeStatus, RemovalReason

from .node import NodeState

VERSION = 1


class DerivedRecord(BaseModel):
    """One node's persisted derived state."""

    model_config = ConfigDict(extra="ignore")

    v: int = VERSION
    status: NodeStatus
    reasons: list[str]
    first_seen: float
    drift_since: float | None = None
    base_hostname: str
    base_os_profile: str
    base_root: str
    hostname: str
    os_profile: str
    vaultmesh_root: str
    cloudflare_ok: bool
    services_ok: bool
    interval_s: float | None = None
    last_seen: float
    last_heartbeat: float
    skew: int = 0
    announce: EventEnvelope | None = None


class TombstoneRecord(BaseModel):
    """A removed node: heartbeats up to ``cutoff_seq`` of HEARTBEATS do not bring it back."""

    model_config = ConfigDict(extra="ignore")

    v: int = VERSION
    removed: RemovalReason
    at: float
    cutoff_seq: int


def record_of(node: NodeState, announce: EventEnvelope | None = None) -> bytes:
    """The KV value for ``node``'s current derived state (with its unpublished event)."""
    record = DerivedRecord(
        status=node.status,
        reasons=list(node.reasons),
        first_seen=node.first_seen,
        drift_since=node.drift_since,
        base_hostname=node.base_hostname,
        base_os_profile=node.base_os_profile,
        base_root=node.base_root,
        hostname=node.hostname,
        os_profile=node.os_profile,
        vaultmesh_root=node.vaultmesh_root,
        cloudflare_ok=node.cloudflare_ok,
        services_ok=node.services_ok,
        interval_s=node.interval_s,
        last_seen=node.last_seen,
        last_heartbeat=node.last_heartbeat,
        skew=node.skew,
        announce=announce,
    )
    return record.model_dump_json().encode()


def parse_record(value: bytes) -> DerivedRecord | None:
    """A stored record, or None when it is not one this version understands."""
    try:
        return DerivedRecord.model_validate_json(value)
    except ValidationError:
        return None


def parse_tombstone(value: bytes) -> TombstoneRecord | None:
    """A stored tombstone, or None when ``value`` is not one."""
    try:
        return TombstoneRecord.model_validate_json(value)
    except ValidationError:
        return None


def node_from_record(node_id: str, record: DerivedRecord) -> NodeState:
    """Rebuild a node from its persisted record (before any heartbeat is replayed)."""
    node = NodeState.__new__(NodeState)
    node.node_id = node_id
    node.hostname = record.hostname
    node.os_profile = record.os_profile
    node.vaultmesh_root = record.vaultmesh_root
    node.base_hostname = _same(record.base_hostname, record.hostname)
    node.base_os_profile = _same(record.base_os_profile, record.os_profile)
    node.base_root = _same(record.base_root, record.vaultmesh_root)
    node.cloudflare_ok = record.cloudflare_ok
    node.services_ok = record.services_ok
    node.last_heartbeat = record.last_heartbeat
    node.last_seen = record.last_seen
    node.first_seen = record.first_seen
    node.interval_s = record.interval_s
    node.metrics = None
    node.skew = record.skew
    node.drift_since = record.drift_since
    node.status = record.status
    node.reasons = tuple(record.reasons)
    node.rev = 0  # the caller knows the revision the record was read at
    return node


def _same(base: str, current: str) -> str:
    # Share one string object when nothing drifted (memory per node matters at 100k).
    return current if base == current else base
