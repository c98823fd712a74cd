"""What the vault stores: sealed values, versions, secrets and key terms (no plaintext)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Sealed:
    """One AES-256-GCM ciphertext and the key term that sealed it."""

    term: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Version:
    """One retained version of a secret."""

    number: int
    created: datetime
    sealed: Sealed


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret's metadata and its retained versions, oldest first.

    ``rev`` is the store's revision, used for optimistic concurrency (0: not stored yet).
    """

    path: str
    created: datetime
    updated: datetime
    current: int
    versions: tuple[Version, ...]
    rev: int = 0

    def version(self, number: int | None = None) -> Version | None:
        """Version ``number`` (default: the current one), or None when not retained."""
        wanted = self.current if number is None else number
        for version in reversed(self.versions):
            if version.number == wanted:
                return version
        return None

    def older_than(self, term: int) -> bool:
        """Whether any retained version is sealed under a term before ``term``."""
        return any(version.sealed.term < term for version in self.versions)


@dataclass(frozen=True, slots=True)
class TermRecord:
    """A data key ("term") sealed by the master key, as stored."""

    term: int
    nonce: bytes
    sealed_key: bytes
    created: datetime
