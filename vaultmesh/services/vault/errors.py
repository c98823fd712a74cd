"""Errors of the vault, on top of the shared hierarchy.

Messages never carry a secret value, a key name or key material.
"""

from __future__ import annotations

from vaultmesh.shared.errors import Conflict, Forbidden, Internal, VaultMeshError, register_error

# The seed's exact denial text; callers match on it.
ACCESS_DENIED = "Access denied"


@register_error
class IntegrityError(VaultMeshError):
    """A stored ciphertext failed authentication (tampered or corrupted); only that key fails."""

    code = "integrity"
    http_status = 500


class AccessDenied(Forbidden):
    """The ACL does not allow this principal this operation on this key."""

    def __init__(self) -> None:
        super().__init__(ACCESS_DENIED)


class StaleWrite(Conflict):
    """A store write lost an optimistic-concurrency race; the caller re-reads and retries."""

    def __init__(self) -> None:
        super().__init__("the secret changed concurrently; retry")


class KeyringError(Internal):
    """The keyring cannot be used (unknown term, master key does not open it)."""
