"""Removing a node: what is announced (a ``removal`` event) and audited (``audit.fleet.*``).

An admin deletes a node (``fleet.api.delete``, from the gateway or the CLI), or
the sweep expires one that has been silent for longer than the retention. Either
way the node leaves the registry and the ``FLEET_STATE`` bucket (a tombstone
takes its key, see tombstones.py); its heartbeats stay in HEARTBEATS until they
age out. Pure domain logic: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from vaultmesh.shared.models.audit import AuditRecord, Outcome
from vaultmesh.shared.models.common import Severity
from vaultmesh.shared.models.events import EventEnvelope, EventKind
from vaultmesh.shared.models.fleet import NodeRemoval, NodeStatus, RemovalReason

from .attention import AUTHOR
from .derived import TombstoneRecord
from .node import NodeState

AUDIT_SERVICE = "fleet"
# audit.fleet.<action> for each reason.
AUDIT_ACTIONS = {RemovalReason.DELETED: "node_delete", RemovalReason.EXPIRED: "node_expire"}
_SEVERITY = {RemovalReason.DELETED: Severity.NOTICE, RemovalReason.EXPIRED: Severity.INFO}


@dataclass(frozen=True, slots=True)
class Removal:
    """One node leaving the registry (``at`` in epoch seconds)."""

    node_id: str
    hostname: str
    status: NodeStatus
    last_seen: float
    reason: RemovalReason
    at: float
    cutoff_seq: int
    # Who asked, as the caller of fleet.api.delete states it; fleet-state itself for expiry.
    by: str

    @classmethod
    def of(
        cls, node: NodeState, reason: RemovalReason, at: float, cutoff_seq: int, by: str
    ) -> Removal:
        """The removal of ``node`` now."""
        return cls(
            node.node_id, node.hostname, node.status, node.last_seen, reason, at, cutoff_seq, by
        )

    def tombstone(self) -> bytes:
        """The FLEET_STATE value that replaces the node's record."""
        record = TombstoneRecord(removed=self.reason, at=self.at, cutoff_seq=self.cutoff_seq)
        return record.model_dump_json().encode()

    def view(self) -> NodeRemoval:
        """The reply of ``fleet.api.delete``."""
        return NodeRemoval(
            node_id=UUID(self.node_id),
            hostname=self.hostname,
            status=self.status,
            last_seen=_when(self.last_seen),
            reason=self.reason,
            removed_at=_when(self.at),
        )

    def event(self) -> EventEnvelope:
        """The ``removal`` EventEnvelope announcing it."""
        return EventEnvelope.create(
            kind=EventKind.REMOVAL,
            author=AUTHOR,
            node_id=UUID(self.node_id),
            severity=_SEVERITY[self.reason],
            body=f"{self.hostname}: {self.reason.value}",
            data={
                "reason": self.reason.value,
                "hostname": self.hostname,
                "status": self.status.value,
                "last_seen": self.last_seen,
                "by": self.by,
            },
            ts=_when(self.at),
        )

    def audit(self) -> AuditRecord:
        """The audit record of it (``audit.fleet.node_delete`` / ``node_expire``)."""
        return AuditRecord(
            ts=_when(self.at),
            id=uuid4().hex,
            service=AUDIT_SERVICE,
            action=AUDIT_ACTIONS[self.reason],
            principal=self.by,
            outcome=Outcome.ALLOWED,
            severity=_SEVERITY[self.reason],
            node_id=self.node_id,
            detail={"hostname": self.hostname, "status": self.status.value},
        )


def _when(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
