"""Inclusion and consistency proofs of the audit log, with the checkpoints that sign them.

Built from one consistent view of the log (a ``LogSnapshot``, the signed size, the
chain and the tree), so a proof never mixes two moments of a growing log.
"""

from __future__ import annotations

from typing import Any

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.checkpoint import ProofChain
from vaultmesh.services.logger.snapshot import LogSnapshot
from vaultmesh.services.logger.treestore import FileTree


def inclusion(
    snap: LogSnapshot,
    signed: int,
    chain: ProofChain,
    tree: FileTree,
    seq: int,
    tree_size: int | None = None,
) -> dict[str, Any]:
    """An inclusion proof for entry ``seq``, against a signed tree when possible."""
    if seq >= snap.size:
        raise merkle.ProofError(f"entry {seq} is not in the log ({snap.size} entries)")
    size = tree_size if tree_size is not None else (signed if seq < signed else snap.size)
    _check_sizes(snap, size, seq + 1)
    cp = chain.at_size(size)
    return {
        "seq": seq,
        "tree_size": size,
        "entry": snap.line(seq).decode(),
        "leaf_hash": tree.leaf(seq).hex(),
        "path": [h.hex() for h in tree.inclusion(seq, size)],
        "root_hash": tree.subtree(0, size).hex(),
        "checkpoint": cp.to_json() if cp else None,
    }


def consistency(
    snap: LogSnapshot,
    signed: int,
    chain: ProofChain,
    tree: FileTree,
    first: int,
    second: int | None = None,
) -> dict[str, Any]:
    """A consistency proof from the tree of ``first`` to ``second`` (default: latest signed)."""
    size = second if second is not None else (signed or snap.size)
    _check_sizes(snap, size, first)
    old, new = chain.at_size(first), chain.at_size(size)
    return {
        "first": first,
        "second": size,
        "first_root": tree.subtree(0, first).hex(),
        "second_root": tree.subtree(0, size).hex(),
        "path": [h.hex() for h in tree.consistency(first, size)],
        "first_checkpoint": old.to_json() if old else None,
        "second_checkpoint": new.to_json() if new else None,
    }


def _check_sizes(snap: LogSnapshot, size: int, at_least: int) -> None:
    if size > snap.size:
        raise merkle.ProofError(f"tree size {size} is beyond the log's {snap.size} entries")
    if size < at_least:
        raise merkle.ProofError(f"tree size {size} is smaller than {at_least}")
