"""Tombstones: what keeps a removed node removed while its old heartbeats are still stored.

HEARTBEATS keeps a node's heartbeats for the stream's max age, and fleet-state
rebuilds its registry from that stream on every start. A removed (deleted or
expired) node therefore gets a tombstone: the HEARTBEATS sequence fleet-state had
read up to when the node was removed. A heartbeat of that node at or below the
cutoff is history and registers nothing; a later one is the node beating again,
so it registers the node anew and the tombstone goes. A tombstone is needed only
while heartbeats it covers can still be replayed, i.e. for the stream's max age.

Pure domain logic: no I/O; times are epoch seconds from the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A removed node's cutoff (a HEARTBEATS sequence), when it was removed, and the
    FLEET_STATE revision the tombstone was stored at."""

    cutoff_seq: int
    at: float
    rev: int = 0


class Tombstones:
    """The tombstones of removed nodes, by node id."""

    def __init__(self) -> None:
        self._graves: dict[str, Tombstone] = {}

    def __len__(self) -> int:
        return len(self._graves)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._graves

    def bury(self, node_id: str, cutoff_seq: int, at: float, rev: int = 0) -> None:
        """Remember that ``node_id`` was removed with heartbeats up to ``cutoff_seq`` read."""
        self._graves[node_id] = Tombstone(cutoff_seq, at, rev)

    def revision(self, node_id: str) -> int:
        """The revision of ``node_id``'s tombstone (0 when it has none)."""
        grave = self._graves.get(node_id)
        return grave.rev if grave is not None else 0

    def admits(self, node_id: str, seq: int) -> bool:
        """True when a heartbeat of ``node_id`` at stream sequence ``seq`` may register it.

        A heartbeat past the cutoff came after the removal: the tombstone is dropped.
        """
        grave = self._graves.get(node_id)
        if grave is None:
            return True
        if seq <= grave.cutoff_seq:
            return False
        del self._graves[node_id]
        return True

    def older_than(self, when: float) -> list[str]:
        """Node ids whose tombstone was made before ``when``."""
        return [node_id for node_id, grave in self._graves.items() if grave.at < when]

    def forget(self, node_id: str) -> None:
        """Drop ``node_id``'s tombstone (its heartbeats have aged out of the stream)."""
        self._graves.pop(node_id, None)
