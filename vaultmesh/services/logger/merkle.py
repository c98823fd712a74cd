"""RFC 6962 Merkle tree hashing, proof construction and proof verification.

Pure functions over bytes: no I/O, no clock, no bus. A tree is only ever seen
through a ``SubtreeSource`` (something that can return MTH(D[start:end])), so
the same proof code serves the in-memory tree, the file-backed tree of the
logger and the offline verifier.

Definitions (RFC 6962 section 2.1, RFC 9162 section 2.1):

- leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left || right)``;
- the hash of the empty tree is ``SHA-256("")``;
- a list of n > 1 leaves splits at k, the largest power of two smaller than n.

Verification follows the iterative algorithms of RFC 9162 (2.1.3.2 and 2.1.4.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof request or a proof is malformed or does not verify."""


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 6962 hash of one leaf."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    if n < 2:
        raise ValueError("a tree of fewer than two leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8 ..."""
    return n > 0 and n & (n - 1) == 0


class SubtreeSource(Protocol):
    """Anything that can hash a contiguous range of leaves."""

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for 0 <= start < end <= size."""
        ...


class LeafList:
    """A reference ``SubtreeSource`` over a list of leaf hashes (O(n) per subtree)."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._leaves = leaf_hashes

    def subtree(self, start: int, end: int) -> bytes:
        """MTH over ``leaf_hashes[start:end]`` by the recursive definition."""
        if end - start == 1:
            return self._leaves[start]
        k = split_point(end - start)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The tree head of a list of leaf hashes (empty-tree hash for no leaves)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return LeafList(leaf_hashes).subtree(0, len(leaf_hashes))


def inclusion_proof(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]): the audit path of leaf ``index`` in the tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(source.subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(source.subtree(lo, lo + k))
            lo += k
    path.reverse()  # RFC order: the sibling nearest the leaf first
    return path


def consistency_proof(source: SubtreeSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]): proof that the old tree is a prefix of the new one."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi, m = 0, new_size, old_size
    complete = True  # SUBPROOF's flag b: is the old tree a complete subtree here?
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            proof.append(source.subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(source.subtree(lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        proof.append(source.subtree(lo, hi))
    proof.reverse()
    return proof


def _shift_until_odd(fn: int, sn: int) -> tuple[int, int]:
    while fn & 1 == 0 and fn != 0:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); raise ProofError if malformed."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p)
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_until_odd(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root``."""
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows the tree ``old_root`` is a prefix of ``new_root``."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {old_size} cannot precede size {new_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ProofError("consistency proof must be empty for these sizes")
        if old_size == new_size and old_root != new_root:
            raise ProofError("trees of the same size have different roots")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    for p in proof:
        _check_hash(p)
    old_calc, new_calc = _roots_from_consistency(old_size, new_size, proof, old_root)
    if old_calc != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if new_calc != new_root:
        raise ProofError("consistency proof does not lead to the new root")


def _roots_from_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes
) -> tuple[bytes, bytes]:
    path = list(proof)
    if is_power_of_two(old_size):
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _shift_until_odd(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    return fr, sr


def _check_hash(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"proof hash has {len(value)} bytes, not {HASH_SIZE}")
