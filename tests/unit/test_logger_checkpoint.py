"""Signed checkpoints, their chain, and offline checking of proof replies."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.checkpoint import Checkpoint, chain_link_ok, sign_checkpoint
from vaultmesh.services.logger.errors import CheckpointError
from vaultmesh.services.logger.proofcheck import check_consistency, check_inclusion
from vaultmesh.services.logger.signing import Signer, key_id, signature_ok
from vaultmesh.services.logger.tree import MemoryTree

SIGNER = Signer(Ed25519PrivateKey.generate())
KEYS = {SIGNER.key_id: SIGNER.public_key}
LINES = [f'{{"seq":{i},"payload":"entry {i}"}}'.encode() for i in range(11)]


def _tree() -> MemoryTree:
    tree = MemoryTree()
    tree.append([merkle.leaf_hash(line) for line in LINES])
    return tree


def _cp(tree: MemoryTree, size: int, prev: Checkpoint | None = None) -> Checkpoint:
    return sign_checkpoint(SIGNER, "test-log", size, tree.root(size), "2026-01-01T00:00:00Z", prev)


def test_checkpoint_body_is_the_documented_text() -> None:
    cp = _cp(_tree(), 11)
    assert cp.body().decode().splitlines() == [
        "vaultmesh.logger.checkpoint/v1",
        "test-log",
        "11",
        cp.root_hash.hex(),
        "2026-01-01T00:00:00Z",
        "-",
    ]
    assert signature_ok(SIGNER.public_key, cp.body(), cp.signature)
    assert cp.note().startswith(cp.body().decode() + "\n\u2014 " + SIGNER.key_id + " ")


def test_any_change_to_a_checkpoint_breaks_its_signature() -> None:
    cp = _cp(_tree(), 11)
    for change in (
        {"tree_size": 12},
        {"root_hash": bytes(32)},
        {"time": "2027-01-01T00:00:00Z"},
        {"log_id": "other"},
        {"prev": "00"},
    ):
        forged = dataclasses.replace(cp, **change)
        assert not signature_ok(SIGNER.public_key, forged.body(), forged.signature)
    other = Signer(Ed25519PrivateKey.generate())
    assert not signature_ok(other.public_key, cp.body(), cp.signature)


def test_checkpoints_chain_by_digest() -> None:
    tree = _tree()
    first = _cp(tree, 5)
    second = _cp(tree, 11, first)
    assert chain_link_ok(None, first)
    assert chain_link_ok(first, second)
    assert not chain_link_ok(None, second)
    assert not chain_link_ok(_cp(tree, 6), second)


def test_json_round_trip_and_malformed_input() -> None:
    cp = _cp(_tree(), 11)
    assert Checkpoint.from_json(cp.to_json()) == cp
    for broken in (
        {},
        {**cp.to_json(), "root_hash": "zz"},
        {**cp.to_json(), "root_hash": "00"},
        {**cp.to_json(), "signature": "***"},
        {**cp.to_json(), "tree_size": -1},
        [1],
    ):
        with pytest.raises(CheckpointError):
            Checkpoint.from_json(broken)


def test_key_id_is_stable_and_short() -> None:
    assert key_id(SIGNER.public_key) == SIGNER.key_id
    assert len(SIGNER.key_id) == 16
    assert "Signer(key_id=" in repr(SIGNER)


def _inclusion_reply(tree: MemoryTree, seq: int, size: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "tree_size": size,
        "entry": LINES[seq].decode(),
        "leaf_hash": tree.leaf(seq).hex(),
        "path": [h.hex() for h in tree.inclusion(seq, size)],
        "root_hash": tree.root(size).hex(),
        "checkpoint": _cp(tree, size).to_json(),
    }


def test_inclusion_reply_verifies_offline() -> None:
    reply = _inclusion_reply(_tree(), 3, 11)
    assert check_inclusion(reply, KEYS) == []
    assert check_inclusion(reply, None) == []  # without keys: the Merkle part only


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"entry": '{"seq":3,"payload":"entry X"}'}, "does not lead to the root"),
        ({"seq": 4}, "does not lead to the root"),
        ({"path": []}, "too short"),
        ({"path": ["zz"]}, "not hex"),
        ({"root_hash": "00" * 32}, "does not lead to the root"),
        ({"leaf_hash": "00" * 32}, "stated leaf hash"),
        ({"checkpoint": None}, "no signed checkpoint"),
    ],
)
def test_tampered_inclusion_reply_fails(change: dict[str, Any], problem: str) -> None:
    reply = {**_inclusion_reply(_tree(), 3, 11), **change}
    problems = check_inclusion(reply, KEYS)
    assert problems
    assert problem in " ".join(problems)


def test_inclusion_reply_with_forged_checkpoint_fails() -> None:
    tree = _tree()
    reply = _inclusion_reply(tree, 3, 11)
    reply["checkpoint"] = {**reply["checkpoint"], "time": "2030-01-01T00:00:00Z"}
    assert "signature" in " ".join(check_inclusion(reply, KEYS))
    reply["checkpoint"] = _cp(tree, 10).to_json()
    assert "different tree" in " ".join(check_inclusion(reply, KEYS))


def _consistency_reply(tree: MemoryTree, first: int, second: int) -> dict[str, Any]:
    return {
        "first": first,
        "second": second,
        "first_root": tree.root(first).hex(),
        "second_root": tree.root(second).hex(),
        "path": [h.hex() for h in tree.consistency(first, second)],
        "first_checkpoint": _cp(tree, first).to_json(),
        "second_checkpoint": _cp(tree, second).to_json(),
    }


def test_consistency_reply_verifies_and_fails_when_tampered() -> None:
    tree = _tree()
    reply = _consistency_reply(tree, 6, 11)
    assert check_consistency(reply, KEYS) == []
    bad = {**reply, "path": [reply["path"][0][::-1], *reply["path"][1:]]}
    assert check_consistency(bad, KEYS)
    assert check_consistency({**reply, "first": 5}, KEYS)
    assert check_consistency({**reply, "second_root": tree.root(10).hex()}, KEYS)
    forged = {**reply, "second_checkpoint": {**reply["second_checkpoint"], "tree_size": 12}}
    assert "different tree" in " ".join(check_consistency(forged, KEYS))
