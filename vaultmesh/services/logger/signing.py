"""Ed25519 keys for checkpoints: load the private key, publish and read public keys.

The private key comes from a file (a Docker secret in the stack): PKCS#8 PEM as
``openssl genpkey -algorithm ed25519`` writes it, or the raw 32-byte seed. Its
bytes never appear in an error or a log line. Public keys are written next to
the log as ``checkpoint.pub`` (PEM); after a key rotation the file holds every
key that ever signed a checkpoint, each named by its key id (the first 8 bytes
of SHA-256 of the raw public key, hex).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vaultmesh.services.logger.errors import SigningKeyError
from vaultmesh.shared.files import atomic_write, create_private

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The short, stable name of a public key."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> bytes:
    """``key`` as a PEM SubjectPublicKeyInfo block."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``; raise SigningKeyError naming the file only."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key file {path}: {exc.strerror}") from None
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(
            f"signing key file {path} is not an unencrypted PEM key or a raw 32-byte seed"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key file {path} does not hold an Ed25519 key")
    return key


def generate_key_file(path: Path) -> None:
    """Create a new Ed25519 key in ``path`` (mode 0600); an existing file is left alone."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        create_private(path, pem)


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM file, by key id."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key file {path}: {exc.strerror}") from None
    keys: dict[str, Ed25519PublicKey] = {}
    for block in _PEM_BLOCK.findall(data):
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError:
            raise SigningKeyError(f"public key file {path} holds a malformed key") from None
        if isinstance(key, Ed25519PublicKey):
            keys[key_id(key)] = key
    if not keys:
        raise SigningKeyError(f"public key file {path} holds no Ed25519 public key")
    return keys


def load_public_pem(pem: bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in one PEM block; raise SigningKeyError when it is not one."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise SigningKeyError("malformed public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("not an Ed25519 public key")
    return key


def publish_public_key(path: Path, key: Ed25519PublicKey) -> None:
    """Make sure ``path`` lists ``key`` (appending it after earlier keys, atomically)."""
    existing = path.read_bytes() if path.exists() else b""
    if path.exists() and key_id(key) in load_public_keys(path):
        return
    separator = b"" if not existing or existing.endswith(b"\n") else b"\n"
    atomic_write(path, existing + separator + public_pem(key))


class Signer:
    """Signs checkpoint bodies with one Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature of ``data``."""
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


def signature_ok(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``key``'s signature of ``data``."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
