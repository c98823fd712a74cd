"""Who runs the background rewrap: a lease, so that two replicas never rewrap at once.

A replica rewraps only while it holds the lease, renews it as it goes, and gives
it up when done; the others wait. A holder that dies stops renewing, and its
lease lapses after ``ttl`` seconds. Writes are compare-and-set, so a moment of
overlap after a stalled holder's lease lapsed re-seals a record twice at worst.
"""

from __future__ import annotations

from typing import Protocol

# How long a lease lasts unless renewed (a holder renews it three times as often).
LEASE_TTL_S = 10


class Lease(Protocol):
    """One named lease, seen from one replica."""

    @property
    def ttl(self) -> float:
        """Seconds the lease lasts unless renewed."""
        ...

    async def claim(self) -> bool:
        """Take the lease, or renew it when held; False while another replica holds it."""
        ...

    async def release(self) -> None:
        """Give the lease up if held (idempotent; never raises)."""
        ...


class LocalLease:
    """The lease of a store that one process owns (SQLite): always this process's."""

    ttl = float(LEASE_TTL_S)

    async def claim(self) -> bool:
        """Always held."""
        return True

    async def release(self) -> None:
        """Nothing to give up."""
