"""The error hierarchy shared by every service.

Each error carries a stable machine ``code`` (used in reply envelopes, micro
error headers and metrics labels) and a human ``message``. Messages are written
for the caller: they never contain ``repr()`` of an exception, a secret, or a
stack trace.
"""

from __future__ import annotations

from typing import ClassVar


class VaultMeshError(Exception):
    """Base of every error a VaultMesh service reports to a caller."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(VaultMeshError):
    """The request could not be decoded or failed validation."""

    code = "bad_request"
    http_status = 400


class PayloadTooLarge(BadRequest):
    """The request body is larger than the service accepts."""

    code = "payload_too_large"
    http_status = 413


class UnknownOperation(BadRequest):
    """The request names an operation the service does not have."""

    code = "unknown_operation"
    http_status = 400


class Unauthorized(VaultMeshError):
    """The caller did not prove who it is."""

    code = "unauthorized"
    http_status = 401


class Forbidden(VaultMeshError):
    """The caller is known but not allowed to do this."""

    code = "forbidden"
    http_status = 403


class NotFound(VaultMeshError):
    """The thing asked for does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(VaultMeshError):
    """The request conflicts with the current state (for example a CAS mismatch)."""

    code = "conflict"
    http_status = 409


class Unavailable(VaultMeshError):
    """A dependency (usually the bus) is down or did not answer in time."""

    code = "unavailable"
    http_status = 503


class Internal(VaultMeshError):
    """An unexpected failure; details are logged, never sent to the caller."""

    code = "internal"
    http_status = 500


_BY_CODE: dict[str, type[VaultMeshError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        PayloadTooLarge,
        UnknownOperation,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        Unavailable,
        Internal,
    )
}


def error_for_code(code: str, message: str) -> VaultMeshError:
    """Rebuild a typed error from a reply envelope's ``code`` (unknown codes become Internal)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err: VaultMeshError = VaultMeshError(message)
        err.code = code  # type: ignore[misc]
        return err
    return cls(message)


def register_error(cls: type[VaultMeshError]) -> type[VaultMeshError]:
    """Make a service-specific error code rebuildable by ``error_for_code`` (a decorator)."""
    _BY_CODE[cls.code] = cls
    return cls
