"""The keyring: data keys ("terms") sealed by the master key, and AES-256-GCM with them.

Every ciphertext names its term, so ``rotate`` only adds a term: new writes use
it, old data stays readable, and a background rewrap moves old records over.
Associated data binds a ciphertext to its key path and version, so a ciphertext
copied to another key or version does not decrypt.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultmesh.services.vault.errors import IntegrityError, KeyringError
from vaultmesh.services.vault.records import Sealed, TermRecord

NONCE_BYTES = 12
DATA_KEY_BYTES = 32
_AAD_PREFIX = b"vaultmesh/vault/v1\x00"
_TERM_AAD = b"vaultmesh/vault/term/"
_HMAC_INFO = b"vaultmesh/vault/audit-hmac/v2"


def associated_data(path: str, version: int) -> bytes:
    """The associated data binding a ciphertext to ``path`` and ``version``."""
    return _AAD_PREFIX + path.encode("utf-8") + b"\x00" + struct.pack(">Q", version)


def audit_hmac_key(first_term_key: bytes) -> bytes:
    """The key for HMAC'ing key names in audit records, derived from the data key of the
    first term: it survives a change of master key, so a key name keeps its HMAC."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HMAC_INFO)
    return hkdf.derive(first_term_key)


def _term_aad(term: int) -> bytes:
    return _TERM_AAD + str(term).encode("ascii")


def _unseal(master: AESGCM, record: TermRecord, aad: bytes) -> bytes | None:
    try:
        return master.decrypt(record.nonce, record.sealed_key, aad)
    except InvalidTag:
        return None


@dataclass(frozen=True)
class Resealed:
    """A key term as stored (sealed by the previous master key) and sealed anew."""

    old: TermRecord
    new: TermRecord


class Keyring:
    """The unsealed data keys of every term; the newest term seals new writes.

    With a *previous* master key (the one being replaced), a term the master key
    does not open is opened with the previous one and sealed again under the
    master key; ``load`` returns those re-sealed records for the store to keep.
    """

    def __init__(self, master_key: bytes, previous_key: bytes | None = None) -> None:
        self._master = AESGCM(master_key)
        self._previous = AESGCM(previous_key) if previous_key is not None else None
        self._keys: dict[int, AESGCM] = {}
        self._audit_key: tuple[int, bytes] | None = None  # (term, key) of the first term

    @property
    def audit_key(self) -> bytes:
        """The audit HMAC key (see ``audit_hmac_key``); KeyringError before a term is loaded."""
        if self._audit_key is None:
            raise KeyringError("no key term is loaded yet")
        return self._audit_key[1]

    @property
    def active(self) -> int:
        """The term new writes are sealed with (0 while the keyring is empty)."""
        return max(self._keys, default=0)

    @property
    def terms(self) -> list[int]:
        """Every known term, oldest first."""
        return sorted(self._keys)

    @property
    def has_previous(self) -> bool:
        """Whether a previous master key was given."""
        return self._previous is not None

    def knows(self, term: int) -> bool:
        """Whether ``term`` is in the keyring."""
        return term in self._keys

    def load(self, records: Iterable[TermRecord]) -> list[Resealed]:
        """Unseal and add ``records``; KeyringError when no given master key opens one.

        Returns the terms only the previous master key opened, each sealed again
        under the master key (a fresh nonce): store them in place of the old ones.
        """
        resealed = []
        for record in records:
            if record.term in self._keys:
                continue
            aad = _term_aad(record.term)
            key = _unseal(self._master, record, aad)
            if key is None and self._previous is not None:
                key = _unseal(self._previous, record, aad)
                if key is not None:
                    nonce = os.urandom(NONCE_BYTES)
                    sealed = self._master.encrypt(nonce, key, aad)
                    resealed.append(
                        Resealed(record, replace(record, nonce=nonce, sealed_key=sealed))
                    )
            if key is None:
                raise KeyringError(self._cannot_open(record.term))
            self._keys[record.term] = AESGCM(key)
            if self._audit_key is None or record.term < self._audit_key[0]:
                self._audit_key = (record.term, audit_hmac_key(key))
        return resealed

    def _cannot_open(self, term: int) -> str:
        if self._previous is None:
            return f"the master key does not open key term {term} (wrong master key?)"
        return (
            f"neither the master key nor the previous master key opens key term {term} "
            "(wrong master key?)"
        )

    def create(self, term: int, now: datetime) -> TermRecord:
        """A new random data key for ``term``, sealed by the master key (not yet loaded)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._master.encrypt(nonce, AESGCM.generate_key(256), _term_aad(term))
        return TermRecord(term=term, nonce=nonce, sealed_key=sealed, created=now)

    def seal(self, path: str, version: int, plaintext: bytes, term: int | None = None) -> Sealed:
        """Encrypt ``plaintext`` for ``path``@``version`` under ``term`` (default: active)."""
        use = self.active if term is None else term
        cipher = self._keys.get(use)
        if cipher is None:
            raise KeyringError(f"key term {use} is not in the keyring")
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = cipher.encrypt(nonce, plaintext, associated_data(path, version))
        return Sealed(term=use, nonce=nonce, ciphertext=ciphertext)

    def open(self, path: str, version: int, sealed: Sealed) -> bytes:
        """Decrypt ``sealed``; IntegrityError when it was tampered with or moved."""
        cipher = self._keys.get(sealed.term)
        if cipher is None:
            raise KeyringError(f"key term {sealed.term} is not in the keyring")
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext, associated_data(path, version))
        except (InvalidTag, ValueError):
            raise IntegrityError("the stored secret failed its integrity check") from None
