"""Errors only the gateway raises (everything else comes from ``vaultmesh.shared.errors``)."""

from __future__ import annotations

from vaultmesh.shared.errors import BadRequest, Unauthorized, Unavailable, VaultMeshError


class InvalidInput(BadRequest):
    """Well-formed JSON that does not match the expected model (HTTP 422)."""

    code = "invalid"
    http_status = 422


class UnsupportedMediaType(BadRequest):
    """The body is not in a format the endpoint reads."""

    code = "unsupported_media_type"
    http_status = 415


class TooManyClients(Unavailable):
    """The event stream already serves as many clients as it is allowed to."""

    code = "too_many_clients"
    http_status = 503


class TooManyAttempts(VaultMeshError):
    """Too many refused sign-ins from one address: wait ``retry_after_s`` seconds."""

    code = "too_many_attempts"
    http_status = 429

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many refused sign-ins; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class InvalidIdentity(Unauthorized):
    """An identity JWT was presented but is not valid (bad signature, issuer, expiry ...)."""

    code = "invalid_identity"


class LoginRequired(VaultMeshError):
    """A browser page needs a signed-in user: answered with a 303 to /login (http_errors.py)."""

    code = "login_required"
    http_status = 303

    def __init__(self, next_path: str) -> None:
        super().__init__("login required")
        self.next_path = next_path


class BadGateway(VaultMeshError):
    """fleet-state answered with something that is not the reply the contract promises."""

    code = "bad_gateway"
    http_status = 502
