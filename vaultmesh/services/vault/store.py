"""The storage interface of the vault: sealed secrets and key terms, nothing in clear.

Two backends implement it: ``sqlite_store`` (embedded default) and ``kv_store``
(JetStream KV, for replicated deployments). Writes are optimistic: ``write``
and ``remove`` succeed only if the stored revision still equals ``secret.rev``
(0: absent), and raise ``StaleWrite`` otherwise; a write returns once durable.
Replicas sharing a store see each other's acknowledged writes at once: a store
keeps no copy that another replica's write could leave stale.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from vaultmesh.services.vault.lease import Lease
from vaultmesh.services.vault.records import Secret, TermRecord


class Store(Protocol):
    """Where the vault keeps its sealed data."""

    backend: str

    async def open(self) -> None:
        """Open (and create) the storage."""
        ...

    async def close(self) -> None:
        """Release the storage; idempotent."""
        ...

    def rewrap_lease(self) -> Lease:
        """The lease a replica holds while it rewraps (one rewrap at a time per store)."""
        ...

    async def load_terms(self) -> list[TermRecord]:
        """Every stored key term, oldest first."""
        ...

    async def has_term(self, term: int) -> bool:
        """Whether ``term`` is stored (a replica asks for the one after its newest)."""
        ...

    async def add_term(self, record: TermRecord) -> bool:
        """Store a new term; False when that term number already exists."""
        ...

    async def reseal_term(self, old: TermRecord, new: TermRecord) -> bool:
        """Replace the stored sealing of ``old.term`` by ``new``'s if it is still ``old``'s;
        False when it is not (another replica re-sealed it first) or the term is gone."""
        ...

    async def reserve(self, term: int, count: int) -> int:
        """Reserve ``count`` encryptions under ``term``; return the total reserved so far."""
        ...

    async def read(self, path: str) -> Secret | None:
        """The secret at ``path`` with all retained versions, or None."""
        ...

    async def write(self, secret: Secret, changed: Collection[int]) -> int:
        """Store ``secret`` if its revision is still ``secret.rev``; return the new revision.

        ``changed`` names the versions whose ciphertext is new; others may be left as stored,
        and stored versions not in ``secret.versions`` are removed.
        """
        ...

    async def remove(self, secret: Secret) -> None:
        """Delete ``secret`` and all its versions if its revision is still ``secret.rev``."""
        ...

    async def paths(self, prefix: str = "") -> list[str]:
        """Key paths starting with ``prefix``, sorted."""
        ...

    async def count(self) -> int:
        """How many secrets are stored."""
        ...

    async def stale_paths(self, term: int) -> list[str]:
        """Paths with any version sealed under a term older than ``term``."""
        ...
