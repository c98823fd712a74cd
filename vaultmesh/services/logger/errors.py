"""Errors of the logger.

Domain errors (``LogCorrupt``, ``SigningKeyError``) are operator-facing: they name
the file or entry at fault and never carry key material. Bus-facing failures use
the shared ``VaultMeshError`` hierarchy (``BadRequest``, ``NotFound`` ...).
"""

from __future__ import annotations


class LoggerError(Exception):
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
