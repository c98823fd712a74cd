"""Signed checkpoints (tree size, root hash, time) and their chain on disk.

A checkpoint's signed body is plain text, one field per line, so a person (or a
shell script with ``openssl``) can check it::

    vaultmesh.logger.checkpoint/v1
    <log id>
    <tree size>
    <root hash, hex>
    <time, RFC 3339 UTC>
    <SHA-256 of the previous checkpoint's body, hex, or "-" for the first>

The previous-body digest links the checkpoints into a chain: dropping, reordering
or editing one breaks every later link. ``ROOT.txt`` is the latest checkpoint as
a signed note (the body, a blank line, ``— <key id> <base64 signature>``);
``PROOFCHAIN.json`` holds every checkpoint (seed 001 V0.8's ledger bridge files).
Both are replaced atomically.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from vaultmesh.services.logger.errors import CheckpointError
from vaultmesh.services.logger.signing import Signer
from vaultmesh.shared.files import atomic_write

FORMAT = "vaultmesh.logger.checkpoint/v1"
ROOT_FILE = "ROOT.txt"
CHAIN_FILE = "PROOFCHAIN.json"
_NO_PREV = "-"
_DASH = "\u2014"  # starts a signature line of a signed note


@dataclass(frozen=True)
class Checkpoint:
    """One signed tree head."""

    log_id: str
    tree_size: int
    root_hash: bytes
    time: str
    prev: str  # digest of the previous checkpoint's body, or "-"
    key_id: str
    signature: bytes

    def body(self) -> bytes:
        """The exact bytes that are signed."""
        fields = [FORMAT, self.log_id, str(self.tree_size), self.root_hash.hex(), self.time]
        return ("\n".join([*fields, self.prev]) + "\n").encode()

    def digest(self) -> str:
        """SHA-256 of the body, hex: what the next checkpoint's ``prev`` must be."""
        return hashlib.sha256(self.body()).hexdigest()

    def note(self) -> str:
        """The checkpoint as a signed note (the content of ROOT.txt)."""
        sig = base64.b64encode(self.signature).decode("ascii")
        return f"{self.body().decode()}\n{_DASH} {self.key_id} {sig}\n"

    def to_json(self) -> dict[str, Any]:
        """Plain data for PROOFCHAIN.json and the bus."""
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "time": self.time,
            "prev": self.prev,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint:
        """Parse plain data; raise CheckpointError when a field is missing or malformed."""
        try:
            cp = cls(
                log_id=str(data["log_id"]),
                tree_size=int(data["tree_size"]),
                root_hash=bytes.fromhex(data["root_hash"]),
                time=str(data["time"]),
                prev=str(data["prev"]),
                key_id=str(data["key_id"]),
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise CheckpointError("malformed checkpoint") from None
        if cp.tree_size < 0 or len(cp.root_hash) != 32:
            raise CheckpointError("malformed checkpoint")
        return cp


def parse_note(text: str) -> Checkpoint:
    """The checkpoint in a signed note (ROOT.txt's content); raise CheckpointError if not one."""
    body, blank, signature = text.partition("\n\n")
    fields = body.split("\n")
    sig = signature.strip().split(" ")
    if not blank or len(fields) != 6 or fields[0] != FORMAT or len(sig) != 3 or sig[0] != _DASH:
        raise CheckpointError("not a signed checkpoint note")
    names = ("log_id", "tree_size", "root_hash", "time", "prev")
    return Checkpoint.from_json(
        {**dict(zip(names, fields[1:], strict=True)), "key_id": sig[1], "signature": sig[2]}
    )


def sign_checkpoint(
    signer: Signer, log_id: str, size: int, root: bytes, time: str, prev: Checkpoint | None
) -> Checkpoint:
    """A new checkpoint linked to ``prev`` and signed by ``signer``."""
    unsigned = Checkpoint(
        log_id, size, root, time, prev.digest() if prev else _NO_PREV, signer.key_id, b""
    )
    return replace(unsigned, signature=signer.sign(unsigned.body()))


def chain_link_ok(prev: Checkpoint | None, cp: Checkpoint) -> bool:
    """True when ``cp`` names ``prev`` as its predecessor."""
    return cp.prev == (prev.digest() if prev else _NO_PREV)


class ProofChain:
    """Every checkpoint of a log, in order, persisted as PROOFCHAIN.json and ROOT.txt."""

    def __init__(self, directory: Path, log_id: str, checkpoints: list[Checkpoint]) -> None:
        self._dir = directory
        self.log_id = log_id
        self._checkpoints = checkpoints
        self._by_size = {cp.tree_size: cp for cp in checkpoints}
        self._encoded = [orjson.dumps(cp.to_json()) for cp in checkpoints]

    @classmethod
    def load(cls, directory: Path, log_id: str) -> ProofChain:
        """Read PROOFCHAIN.json from ``directory`` (an empty chain when there is none)."""
        return cls(directory, log_id, read_chain(directory / CHAIN_FILE))

    @property
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        return list(self._checkpoints)

    @property
    def latest(self) -> Checkpoint | None:
        """The newest checkpoint, if any."""
        return self._checkpoints[-1] if self._checkpoints else None

    def at_size(self, size: int) -> Checkpoint | None:
        """The checkpoint of the tree of ``size``, if one was made."""
        return self._by_size.get(size)

    def append(self, cp: Checkpoint) -> None:
        """Add ``cp`` and rewrite PROOFCHAIN.json and ROOT.txt atomically."""
        encoded = orjson.dumps(cp.to_json())
        head = orjson.dumps({"version": 1, "format": FORMAT, "log_id": self.log_id})[:-1]
        items = b",\n".join([*self._encoded, encoded])
        atomic_write(self._dir / CHAIN_FILE, head + b',"checkpoints":[\n' + items + b"\n]}\n")
        atomic_write(self._dir / ROOT_FILE, cp.note().encode())
        self._checkpoints.append(cp)
        self._encoded.append(encoded)
        self._by_size[cp.tree_size] = cp


def read_chain(path: Path) -> list[Checkpoint]:
    """The checkpoints in a PROOFCHAIN.json file ([] when the file does not exist)."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError):
        raise CheckpointError(f"{path} is not readable JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
        raise CheckpointError(f"{path} has no checkpoint list")
    return [Checkpoint.from_json(item) for item in data["checkpoints"]]
