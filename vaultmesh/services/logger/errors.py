"""Errors of the logger.

Domain errors (``LogCorrupt``, ``SigningKeyError``) are operator-facing: they name
the file or entry at fault and never carry key material. Bus-facing failures use
the shared hierarchy directly (``BadRequest``, ``NotFound`` ...); ``LoggerError``
sits under its root too, so one ``except VaultMeshError`` sees every VaultMesh error.
"""

from __future__ import annotations

from vaultmesh.shared.errors import VaultMeshError


class LoggerError(VaultMeshError):
    """Base of the logger's domain errors."""


class SigningKeyError(LoggerError):
    """The checkpoint signing key (or a public key file) is missing or unusable."""


class LogCorrupt(LoggerError):
    """The log on disk does not match its own checkpoints; the logger will not write to it."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class CheckpointError(LoggerError):
    """A checkpoint file is malformed."""


class WriterFenced(LoggerError):
    """Another logger wrote to the replicated log since this one: this one must stop writing."""
