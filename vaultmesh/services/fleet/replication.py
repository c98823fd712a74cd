"""How fleet-state replicas share one FLEET_STATE bucket: what each makes of its entries.

Every replica reads every heartbeat, so each computes the same registry; the
bucket is where they learn what the others *did*. At start a replica restores
from it (records and tombstones, with the revision each was stored at). Later
it applies the writes that arrive through its watch:

- a tombstone newer than the node's state removes the node here too (a delete
  served by another replica, or the writer's expiry); one older than the state
  is history (the node beat again after it and was registered anew);
- a record moves the node's revision on (the writer's own, or a writer whose
  lease lapsed), so a compare-and-set from here starts from the latest;
- the lease key deleted means its holder stopped: try to take it now.

Pure domain logic: no I/O; entries come from statewatch.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from .derived import parse_record, parse_tombstone
from .registry import Registry
from .tombstones import Tombstones

# The writer lease's key in FLEET_STATE (see lease.py); node keys are UUIDs.
LEASE_KEY = "leader"


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One value of the bucket: ``deleted`` for a delete or purge marker."""

    key: str
    value: bytes
    rev: int
    deleted: bool
    stored_at: float | None  # when the server stored it (epoch seconds)


def is_node_id(text: str) -> bool:
    """True when ``text`` is a UUID in canonical form (how the registry keys nodes)."""
    try:
        return str(UUID(text)) == text
    except ValueError:
        return False


class StateFollower:
    """Applies FLEET_STATE entries to this replica's registry and tombstones."""

    def __init__(
        self,
        registry: Registry,
        tombstones: Tombstones,
        *,
        forget: Callable[[str], None],
        lease_freed: Callable[[], None],
    ) -> None:
        self._registry = registry
        self._tombstones = tombstones
        self._forget = forget
        self._lease_freed = lease_freed
        self.restored = 0
        self.skipped = 0

    def restore(self, entry: StateEntry) -> None:
        """Load one entry at start (the latest value of its key)."""
        if entry.key == LEASE_KEY or entry.deleted:
            return
        if not is_node_id(entry.key):
            self.skipped += 1
            return
        record = parse_record(entry.value)
        if record is not None:
            self._registry.restore(entry.key, record)
            node = self._registry.get(entry.key)
            assert node is not None
            node.rev = entry.rev
            self.restored += 1
            return
        tombstone = parse_tombstone(entry.value)
        if tombstone is None:
            self.skipped += 1
            return
        self._tombstones.bury(entry.key, tombstone.cutoff_seq, tombstone.at, entry.rev)
        self.restored += 1

    def apply(self, entry: StateEntry) -> bool:
        """Apply a later write; True when it removed a node from this replica's registry."""
        if entry.key == LEASE_KEY:
            if entry.deleted:
                self._lease_freed()
            return False
        if entry.deleted or not is_node_id(entry.key):
            return False
        node = self._registry.get(entry.key)
        tombstone = parse_tombstone(entry.value)
        if tombstone is None:
            if node is not None and entry.rev > node.rev:
                node.rev = entry.rev
            return False
        removed = False
        if node is not None:
            if entry.rev <= node.rev:
                return False  # the node beat again after this removal
            self._registry.remove(entry.key)
            self._forget(entry.key)
            removed = True
        if self._tombstones.revision(entry.key) < entry.rev:
            self._tombstones.bury(entry.key, tombstone.cutoff_seq, tombstone.at, entry.rev)
        return removed
