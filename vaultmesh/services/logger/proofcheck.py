"""Checking a proof reply offline: recompute, compare, verify the checkpoint signature.

A ``logs.proof`` reply carries everything needed: the entry line itself, the
audit path, the root, and (when the tree size is a checkpoint) the signed
checkpoint. With the log's public key nothing from the logger has to be trusted.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.checkpoint import Checkpoint
from vaultmesh.services.logger.errors import CheckpointError
from vaultmesh.services.logger.signing import signature_ok


def _hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise merkle.ProofError("proof path is not a list")
    try:
        return [bytes.fromhex(str(value)) for value in values]
    except ValueError:
        raise merkle.ProofError("proof path holds a value that is not hex") from None


def _root(value: Any) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        raise merkle.ProofError("root hash is not hex") from None


def check_checkpoint(
    data: Any, size: int, root: bytes, keys: dict[str, Ed25519PublicKey] | None
) -> str | None:
    """Problem with a signed checkpoint for (size, root), or None when it holds."""
    if data is None:
        return "no signed checkpoint covers this tree size"
    try:
        cp = Checkpoint.from_json(data)
    except CheckpointError as exc:
        return str(exc)
    if cp.tree_size != size or cp.root_hash != root:
        return "the checkpoint is for a different tree"
    if keys is None:
        return None
    key = keys.get(cp.key_id)
    if key is None or not signature_ok(key, cp.body(), cp.signature):
        return f"the checkpoint signature does not verify with key {cp.key_id}"
    return None


def check_inclusion(reply: dict[str, Any], keys: dict[str, Ed25519PublicKey] | None) -> list[str]:
    """Problems with an inclusion-proof reply ([] when it verifies)."""
    try:
        leaf = merkle.leaf_hash(str(reply["entry"]).encode())
        root = _root(reply["root_hash"])
        size = int(reply["tree_size"])
        merkle.verify_inclusion(leaf, int(reply["seq"]), size, _hashes(reply["path"]), root)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"inclusion proof: {exc}"]
    problems = []
    if reply.get("leaf_hash") != leaf.hex():
        problems.append("the entry does not hash to the stated leaf hash")
    signed = check_checkpoint(reply.get("checkpoint"), size, root, keys)
    if signed:
        problems.append(signed)
    return problems


def check_consistency(reply: dict[str, Any], keys: dict[str, Ed25519PublicKey] | None) -> list[str]:
    """Problems with a consistency-proof reply ([] when it verifies)."""
    try:
        first, second = int(reply["first"]), int(reply["second"])
        old, new = _root(reply["first_root"]), _root(reply["second_root"])
        merkle.verify_consistency(first, second, _hashes(reply["path"]), old, new)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"consistency proof: {exc}"]
    problems = []
    for label, data, size, root in (
        ("first", reply.get("first_checkpoint"), first, old),
        ("second", reply.get("second_checkpoint"), second, new),
    ):
        if data is not None:
            signed = check_checkpoint(data, size, root, keys)
            if signed:
                problems.append(f"{label} checkpoint: {signed}")
    return problems
