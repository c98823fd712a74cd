"""Verification of the signed identity JWT a fronting access proxy adds to each request.

Only asymmetric algorithms are accepted (RS256, ES256, EdDSA), each only with a
key of its own type; the signature is checked before any claim is trusted, then
``iss`` must equal the configured issuer, ``exp`` must be in the future (``nbf``,
when present, in the past, both with a small leeway), and ``aud`` must contain
the configured audience when one is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from vaultmesh.services.gateway.auth.identity_keys import VerifyingKey, b64url_decode
from vaultmesh.services.gateway.errors import InvalidIdentity
from vaultmesh.shared.clock import Clock, SystemClock

MAX_TOKEN_BYTES = 16 * 1024
ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})


@dataclass(frozen=True)
class Identity:
    """Who the access proxy says the caller is."""

    subject: str
    email: str | None
    claims: dict[str, Any]

    @property
    def name(self) -> str:
        """A readable principal name: the e-mail when present, else the subject."""
        return self.email or self.subject


def _json_part(text: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(text))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidIdentity(f"identity token {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise InvalidIdentity(f"identity token {what} is not a JSON object")
    return value


def _signature_ok(key: VerifyingKey, signature: bytes, signed: bytes) -> bool:
    try:
        if isinstance(key.key, rsa.RSAPublicKey):
            key.key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key.key, ec.EllipticCurvePublicKey):
            # JWS carries ES256 signatures as raw r || s (32 bytes each), not DER.
            if len(signature) != 64:
                return False
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key.key, ed25519.Ed25519PublicKey):
            key.key.verify(signature, signed)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidIdentity(f"identity token claim {name} is not a number")
    return float(value)


class IdentityVerifier:
    """Checks identity JWTs against configured keys, issuer and (optional) audience."""

    def __init__(
        self,
        keys: list[VerifyingKey],
        issuer: str,
        audience: str | None = None,
        leeway_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._clock = clock or SystemClock()

    def verify(self, token: str) -> Identity:
        """The identity in ``token``; raise InvalidIdentity saying what is wrong."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidIdentity("identity token is too large")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidIdentity("identity token is not a compact JWS")
        header = _json_part(parts[0], "header")
        self._check_signature(header, parts)
        claims = _json_part(parts[1], "claims")
        self._check_claims(claims)
        subject = claims.get("sub")
        email = claims.get("email")
        return Identity(
            subject=str(subject) if subject is not None else "",
            email=str(email) if isinstance(email, str) else None,
            claims=claims,
        )

    def _check_signature(self, header: dict[str, Any], parts: list[str]) -> None:
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidIdentity(f"identity token algorithm {str(alg)[:16]!r} is not accepted")
        try:
            signature = b64url_decode(parts[2])
        except ValueError:
            raise InvalidIdentity("identity token signature is not base64url") from None
        signed = f"{parts[0]}.{parts[1]}".encode("ascii", errors="replace")
        kid = header.get("kid")
        candidates = [
            k for k in self._keys if k.alg == alg and (kid is None or k.kid in (None, kid))
        ]
        if not any(_signature_ok(key, signature, signed) for key in candidates):
            raise InvalidIdentity("identity token signature does not verify")

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self._clock.now().timestamp()
        if claims.get("iss") != self._issuer:
            raise InvalidIdentity("identity token issuer is not the configured issuer")
        expires = _number(claims, "exp")
        if expires is None:
            raise InvalidIdentity("identity token has no exp claim")
        if now > expires + self._leeway:
            raise InvalidIdentity("identity token has expired")
        not_before = _number(claims, "nbf")
        if not_before is not None and now < not_before - self._leeway:
            raise InvalidIdentity("identity token is not valid yet")
        if self._audience is not None:
            audience = claims.get("aud")
            allowed = audience if isinstance(audience, list) else [audience]
            if self._audience not in allowed:
                raise InvalidIdentity("identity token audience does not match")
