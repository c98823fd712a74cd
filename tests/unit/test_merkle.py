"""RFC 6962 Merkle tree: the Certificate Transparency test vectors, and properties.

The vectors are the well-known ones from the CT reference implementations
(eight leaves, their tree heads, audit paths and consistency proofs).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.tree import MemoryTree

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path); indexes here are 0-based.
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def _tree(hashes: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    tree.append(hashes)
    return tree


def _hex(path: list[bytes]) -> list[str]:
    return [h.hex() for h in path]


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_hash_definitions() -> None:
    assert merkle.EMPTY_ROOT.hex() == EMPTY_ROOT
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


def test_empty_tree() -> None:
    assert merkle.root_of([]).hex() == EMPTY_ROOT
    assert MemoryTree().root().hex() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_tree_heads_match_the_vectors(size: int) -> None:
    assert merkle.root_of(HASHES[:size]).hex() == ROOTS[size - 1]
    assert _tree(HASHES[:size]).root().hex() == ROOTS[size - 1]
    # and the stored tree answers every earlier head too
    assert _tree(HASHES).root(size).hex() == ROOTS[size - 1]


def test_leaf_appended_one_at_a_time_gives_the_same_heads() -> None:
    tree = MemoryTree()
    for size, leaf in enumerate(HASHES, start=1):
        tree.append([leaf])
        assert tree.root().hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_vectors(index: int, size: int, path: list[str]) -> None:
    tree = _tree(HASHES)
    assert _hex(tree.inclusion(index, size)) == path
    assert _hex(merkle.inclusion_proof(merkle.LeafList(HASHES), index, size)) == path
    root = bytes.fromhex(ROOTS[size - 1])
    merkle.verify_inclusion(HASHES[index], index, size, [bytes.fromhex(h) for h in path], root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_vectors(old: int, new: int, proof: list[str]) -> None:
    assert _hex(_tree(HASHES).consistency(old, new)) == proof
    merkle.verify_consistency(
        old,
        new,
        [bytes.fromhex(h) for h in proof],
        bytes.fromhex(ROOTS[old - 1]),
        bytes.fromhex(ROOTS[new - 1]),
    )


def test_every_proof_of_the_eight_leaf_tree_verifies() -> None:
    tree = _tree(HASHES)
    for size in range(1, 9):
        for index in range(size):
            merkle.verify_inclusion(
                HASHES[index], index, size, tree.inclusion(index, size), tree.root(size)
            )
        for old in range(1, size + 1):
            merkle.verify_consistency(
                old, size, tree.consistency(old, size), tree.root(old), tree.root(size)
            )


def test_tampered_inclusion_proofs_fail() -> None:
    tree = _tree(HASHES)
    path, root = tree.inclusion(5, 8), tree.root(8)
    bad_cases = [
        (HASHES[4], 5, 8, path, root),  # another leaf
        (HASHES[5], 4, 8, path, root),  # another index
        (HASHES[5], 5, 6, path, root),  # another size (of another shape)
        (HASHES[5], 5, 8, [_flip(path[0]), *path[1:]], root),  # a changed hash
        (HASHES[5], 5, 8, path[:-1], root),  # too short
        (HASHES[5], 5, 8, [*path, path[0]], root),  # too long
        (HASHES[5], 5, 8, path, _flip(root)),  # another root
        (HASHES[5], 8, 8, path, root),  # index outside the tree
    ]
    for leaf, index, size, proof, want in bad_cases:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, index, size, proof, want)
    # A size whose audit path has the same shape leads to the same root: only the
    # signed root *of that size* (a checkpoint) rejects it.
    assert merkle.root_from_inclusion(HASHES[5], 5, 7, path) == root != tree.root(7)


def test_tampered_consistency_proofs_fail() -> None:
    tree = _tree(HASHES)
    proof, old, new = tree.consistency(6, 8), tree.root(6), tree.root(8)
    bad_cases = [
        (6, 8, [_flip(proof[0]), *proof[1:]], old, new),
        (6, 8, proof[:-1], old, new),
        (6, 8, [*proof, proof[0]], old, new),
        (6, 8, proof, _flip(old), new),
        (6, 8, proof, old, _flip(new)),
        (5, 8, proof, old, new),
        (6, 8, [], old, new),
        (8, 6, proof, new, old),
        (3, 3, [proof[0]], old, old),  # equal sizes take an empty proof
        (3, 3, [], old, new),  # equal sizes need equal roots
        (6, 8, [b"short"], old, new),
    ]
    for first, second, path, r1, r2 in bad_cases:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(first, second, path, r1, r2)


def test_proof_requests_outside_the_tree_are_errors() -> None:
    tree = _tree(HASHES[:3])
    with pytest.raises(merkle.ProofError):
        tree.inclusion(3, 3)
    with pytest.raises(merkle.ProofError):
        tree.inclusion(0, 4)
    with pytest.raises(merkle.ProofError):
        tree.consistency(2, 4)
    with pytest.raises(merkle.ProofError):
        tree.root(4)
    with pytest.raises(ValueError, match="split"):
        merkle.split_point(1)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=80), data=st.data())
def test_stored_tree_agrees_with_the_recursive_definition(size: int, data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    reference = merkle.LeafList(hashes)
    tree = MemoryTree()
    split = data.draw(st.integers(min_value=0, max_value=size))
    tree.append(hashes[:split])
    tree.append(hashes[split:])
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    assert tree.root() == merkle.root_of(hashes)
    assert tree.inclusion(index, size) == merkle.inclusion_proof(reference, index, size)
    assert tree.consistency(old, size) == merkle.consistency_proof(reference, old, size)
    merkle.verify_inclusion(hashes[index], index, size, tree.inclusion(index, size), tree.root())
    merkle.verify_consistency(old, size, tree.consistency(old, size), tree.root(old), tree.root())
