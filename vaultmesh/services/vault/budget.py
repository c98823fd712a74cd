"""How many encryptions a key term may still do before a new term is started.

Random 96-bit nonces are safe for a bounded number of encryptions per key, so
each term has a limit. Encryptions are reserved from the store in blocks: a
restarted process or a second replica never reuses a count, and a crash only
wastes the unused rest of a block (the safe direction).
"""

from __future__ import annotations

from vaultmesh.services.vault.config import MAX_ENCRYPTIONS_PER_TERM
from vaultmesh.services.vault.store import Store

MAX_BLOCK = 1000


class Budget:
    """The encryption allowance of the active term, reserved from the store in blocks."""

    def __init__(self, store: Store, limit: int) -> None:
        self._store = store
        self._limit = limit
        self._block = max(1, min(MAX_BLOCK, limit // 100))
        self._term = 0
        self._left = 0

    async def take(self, term: int, *, hard: bool = False) -> bool:
        """Spend one encryption under ``term``; False when the term has used up its limit.

        ``hard``: only the hard cap counts (the background rewrap uses it, so that
        re-sealing many records under a small limit cannot rotate in a loop).
        """
        if term != self._term:
            self._term, self._left = term, 0
        if self._left == 0:
            total = await self._store.reserve(term, self._block)
            if total > (MAX_ENCRYPTIONS_PER_TERM if hard else self._limit):
                return False
            if term != self._term:
                return True  # a newer term took over meanwhile; this one fits its reserved block
            self._left = self._block
        self._left -= 1
        return True
