"""Taking over as the writer: what a replica that gains the lease must write and announce.

Every replica follows every heartbeat and keeps the whole registry, so any of
them can answer ``fleet.api.*``; only the holder of the writer lease (lease.py)
writes FLEET_STATE and publishes ``attention`` events. A replica that becomes
the holder compares its registry with what the bucket holds, so nothing that
changed while no one (or a dying holder) was writing is lost:

- a node with no stored record joins (an ``attention`` event with no previous
  status), as when the holder itself registers it;
- a node whose stored status differs gets the transition from the stored status;
- a node whose other derived fields differ is written, not announced;
- a node whose key holds a newer tombstone is left alone: another replica
  removed it, and the state watch takes it out of the registry.

Pure domain logic: no I/O. ``plan`` also aligns each node's ``rev`` with the
stored revision, which the holder's compare-and-set writes start from.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import NodeStatus

from .derived import DerivedRecord, parse_record, parse_tombstone
from .node import NodeState
from .registry import Change, Registry
from .replication import StateEntry, is_node_id


@dataclass(frozen=True, slots=True)
class Stored:
    """What FLEET_STATE holds under one node's key: a record (its status and digest) or,
    with ``status`` None, a tombstone."""

    rev: int
    status: NodeStatus | None
    digest: int = 0


def node_digest(node: NodeState) -> int:
    """A digest of the derived fields a write would store (the facts are not compared)."""
    return hash(
        (
            node.status,
            tuple(node.reasons),
            node.first_seen,
            node.drift_since,
            node.base_hostname,
            node.base_os_profile,
            node.base_root,
        )
    )


def stored_record(rev: int, record: DerivedRecord) -> Stored:
    """The ``Stored`` form of a record read at revision ``rev``."""
    digest = hash(
        (
            record.status,
            tuple(record.reasons),
            record.first_seen,
            record.drift_since,
            record.base_hostname,
            record.base_os_profile,
            record.base_root,
        )
    )
    return Stored(rev, record.status, digest)


def read_entry(
    entry: StateEntry, stored: dict[str, Stored], unpublished: list[EventEnvelope], since: float
) -> None:
    """Note one bucket entry read at takeover: its ``Stored`` form, and the event its
    writer had not published yet when that was stored after ``since`` (epoch seconds)."""
    if entry.deleted or not is_node_id(entry.key):
        return
    record = parse_record(entry.value)
    if record is not None:
        stored[entry.key] = stored_record(entry.rev, record)
        if record.announce is not None and (entry.stored_at or 0.0) > since:
            unpublished.append(record.announce)
    elif parse_tombstone(entry.value) is not None:
        stored[entry.key] = Stored(entry.rev, None)


def plan(registry: Registry, stored: dict[str, Stored]) -> list[Change]:
    """The changes a new holder must write, one per node whose stored state differs."""
    changes = []
    for node in registry:
        change = _difference(node, stored.get(node.node_id))
        if change is not None:
            changes.append(change)
    return changes


def _difference(node: NodeState, entry: Stored | None) -> Change | None:
    if entry is None:
        # Never stored, or its tombstone aged out: the key is empty.
        node.rev = 0
        return Change(node.node_id, None, node.status)
    if entry.status is None:
        if entry.rev > node.rev:
            return None  # removed after this state was built; the watch applies it
        return Change(node.node_id, None, node.status)  # registered anew after its removal
    node.rev = entry.rev
    if entry.status is not node.status:
        return Change(node.node_id, entry.status, node.status)
    if entry.digest != node_digest(node):
        return Change(node.node_id, node.status, node.status)
    return None
