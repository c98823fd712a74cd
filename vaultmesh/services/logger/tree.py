"""An append-only RFC 6962 tree that stores every complete (perfect) subtree.

Appending a leaf completes at most log2(n) perfect subtrees (the same merges a
binary counter's carries make); each is stored once at its ``(level, index)``.
Any MTH(D[start:end]) that a proof needs is then either one stored perfect
subtree or O(log n) of them folded together, so proofs and roots cost O(log n)
reads instead of rehashing the log. The frontier (the perfect subtrees for the
binary decomposition of the size) is the whole state needed to append, and it
is itself read back from storage, so a restart does not rehash anything.

``LevelTree`` holds the logic; storage is a subclass: ``MemoryTree`` here (used by
the offline verifier and the tests), ``FileTree`` in ``treestore``.
"""

from __future__ import annotations

from collections.abc import Iterable

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.merkle import EMPTY_ROOT, HASH_SIZE, node_hash, split_point


class LevelTree:
    """Append-only Merkle tree over perfect-subtree storage (abstract storage)."""

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []  # perfect subtree hashes, leftmost (largest) first

    # ---- storage (subclasses) --------------------------------------------------------

    def _load(self, level: int, index: int) -> bytes:
        """The stored hash of the perfect subtree ``index`` at ``level``."""
        raise NotImplementedError

    def _store(self, completed: list[bytearray]) -> None:
        """Persist newly completed nodes: ``completed[level]`` is their concatenated hashes."""
        raise NotImplementedError

    # ---- tree ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def _reload_frontier(self) -> None:
        """Rebuild the frontier for ``self._size`` from storage."""
        self._frontier = []
        offset = 0
        for level in reversed(range(self._size.bit_length())):
            if self._size >> level & 1:
                self._frontier.append(self._load(level, offset >> level))
                offset += 1 << level

    def append(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaves (given by their leaf hashes) and store what they complete."""
        completed: list[bytearray] = []
        frontier, size = self._frontier, self._size
        for leaf in leaf_hashes:
            h, level, index = leaf, 0, size
            while True:
                if len(completed) <= level:
                    completed.append(bytearray())
                completed[level] += h
                if not index & 1:
                    break
                h = node_hash(frontier.pop(), h)
                level += 1
                index >>= 1
            frontier.append(h)
            size += 1
        if completed:
            self._store(completed)
        self._size = size

    def root(self, size: int | None = None) -> bytes:
        """The tree head at ``size`` (default: now)."""
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise merkle.ProofError(f"no tree of size {size}; the log has {self._size} entries")
        if size == 0:
            return EMPTY_ROOT
        if size == self._size:
            return self._fold(self._frontier)
        return self.subtree(0, size)

    @staticmethod
    def _fold(nodes: list[bytes]) -> bytes:
        result = nodes[-1]
        for left in reversed(nodes[:-1]):
            result = node_hash(left, result)
        return result

    def leaf(self, index: int) -> bytes:
        """The stored leaf hash of entry ``index``."""
        if not 0 <= index < self._size:
            raise merkle.ProofError(f"no entry {index}; the log has {self._size} entries")
        return self._load(0, index)

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) from stored perfect subtrees."""
        if not 0 <= start < end <= self._size:
            raise merkle.ProofError(f"no subtree [{start}, {end}) in a tree of {self._size}")
        width = end - start
        if merkle.is_power_of_two(width) and start % width == 0:
            return self._load(width.bit_length() - 1, start // width)
        k = split_point(width)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of ``size``."""
        self._check_size(size)
        return merkle.inclusion_proof(self, index, size)

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """Consistency proof from the tree of ``old_size`` to the tree of ``new_size``."""
        self._check_size(new_size)
        return merkle.consistency_proof(self, old_size, new_size)

    def _check_size(self, size: int) -> None:
        if not 1 <= size <= self._size:
            raise merkle.ProofError(f"no tree of size {size}; the log has {self._size} entries")


class MemoryTree(LevelTree):
    """A ``LevelTree`` kept in memory: 2 x 32 bytes per leaf, no Python object per node."""

    def __init__(self) -> None:
        super().__init__()
        self._levels: list[bytearray] = []

    def _load(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def _store(self, completed: list[bytearray]) -> None:
        while len(self._levels) < len(completed):
            self._levels.append(bytearray())
        for level, data in enumerate(completed):
            self._levels[level] += data
