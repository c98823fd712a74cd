"""A checkpoint seen before, and the proof that the log still extends it (rollback).

The signed chain in a log directory shows that nothing it covers was changed,
but not that the directory was not cut short: whoever can write it can drop the
last entries and checkpoints, rewrite ``ROOT.txt`` from what is left of
``PROOFCHAIN.json``, and the result verifies on its own. A checkpoint kept
elsewhere closes that hole (``vaultmesh logs verify --trusted``): the log's
latest signed checkpoint must be at least as large, and an RFC 6962
consistency proof, built from the entries as they are now, must lead from the
trusted root to the latest signed one. A rollback (the trusted checkpoint is
larger than anything signed now) or a fork (history rewritten, even re-signed
with a stolen key) fails.

A trusted checkpoint is given as ``SIZE:ROOT_HASH`` (hex) or as a file: a copy of
``ROOT.txt`` (a signed note) or a checkpoint as JSON (one ``PROOFCHAIN.json``
item, or the reply of ``logs.checkpoint``). A signed one must also verify with
the log's public key(s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.checkpoint import Checkpoint, parse_note
from vaultmesh.services.logger.errors import CheckpointError
from vaultmesh.services.logger.signing import signature_ok

_SIZE_ROOT = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Trusted:
    """A tree head known to have been in the log (size and root), signed or not."""

    tree_size: int
    root_hash: bytes
    checkpoint: Checkpoint | None = None  # when the source was a signed checkpoint

    def label(self) -> str:
        """``SIZE:ROOT_HASH``: the form to pass back as ``--trusted``."""
        return f"{self.tree_size}:{self.root_hash.hex()}"


def load_trusted(spec: str) -> Trusted:
    """Parse ``SIZE:ROOT_HASH`` or read a checkpoint file; raise CheckpointError if neither."""
    match = _SIZE_ROOT.match(spec.strip())
    if match:
        return Trusted(int(match.group(1)), bytes.fromhex(match.group(2)))
    try:
        text = Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(
            f"trusted checkpoint {spec!r} is neither SIZE:ROOT_HASH nor a readable file"
        ) from None
    cp = _parse_file(text, spec)
    return Trusted(cp.tree_size, cp.root_hash, cp)


def _parse_file(text: str, name: str) -> Checkpoint:
    if not text.lstrip().startswith("{"):
        try:
            return parse_note(text)
        except CheckpointError:
            raise CheckpointError(f"{name} is not a signed checkpoint note") from None
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CheckpointError(f"{name} is not valid JSON") from None
    if isinstance(data, dict) and isinstance(data.get("checkpoint"), dict):
        data = data["checkpoint"]  # a logs.checkpoint reply
    return Checkpoint.from_json(data)


def check_extension(
    trusted: Trusted,
    chain: list[Checkpoint],
    tree: merkle.SubtreeSource,
    tree_size: int,
    keys: dict[str, Ed25519PublicKey],
) -> list[str]:
    """Problems showing the log does not extend ``trusted`` ([] when it does).

    ``tree`` is the Merkle tree recomputed from the entries (``tree_size`` leaves).
    """
    problems = _signature_problems(trusted, chain, keys)
    latest = chain[-1] if chain else None
    signed = latest.tree_size if latest else 0
    if trusted.tree_size > signed:
        return [
            *problems,
            f"rolled back: the trusted checkpoint covers {trusted.tree_size} entries, but the "
            f"latest signed checkpoint here covers {signed} (entries or checkpoints were removed)",
        ]
    if latest is None or latest.tree_size > tree_size:
        return problems  # nothing signed to compare with, or already reported as too short
    proof = merkle.consistency_proof(tree, trusted.tree_size, latest.tree_size)
    try:
        merkle.verify_consistency(
            trusted.tree_size, latest.tree_size, proof, trusted.root_hash, latest.root_hash
        )
        if trusted.tree_size == 0 and trusted.root_hash != merkle.EMPTY_ROOT:
            raise merkle.ProofError("a tree of size 0 has the empty root")
    except merkle.ProofError as exc:
        problems.append(
            f"the log is not an extension of the trusted checkpoint {trusted.label()}: {exc}"
        )
    return problems


def _signature_problems(
    trusted: Trusted, chain: list[Checkpoint], keys: dict[str, Ed25519PublicKey]
) -> list[str]:
    cp = trusted.checkpoint
    if cp is None:
        return []
    problems = []
    key = keys.get(cp.key_id)
    if key is None or not signature_ok(key, cp.body(), cp.signature):
        problems.append(f"the trusted checkpoint does not verify with key {cp.key_id}")
    if chain and cp.log_id != chain[-1].log_id:
        problems.append(
            f"the trusted checkpoint is of log {cp.log_id!r}, this log is {chain[-1].log_id!r}"
        )
    return problems
