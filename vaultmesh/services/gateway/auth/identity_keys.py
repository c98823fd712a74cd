"""Public keys an identity JWT may be signed with: PEM blocks or a JWKS document.

A file of one or more PEM public keys, or a JWKS (``{"keys": [...]}``, as an
access proxy publishes it) with RSA, EC P-256 and Ed25519 keys. Each key is
bound to the one JWS algorithm it may verify, so an RSA key can never be used
to check an ``ES256`` or ``HS256`` token (no algorithm confusion).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from vaultmesh.shared.config import ConfigError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class VerifyingKey:
    """A public key, the JWS ``alg`` it verifies, and its ``kid`` when known."""

    alg: str
    key: PublicKey
    kid: str | None = None


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (JWS/JWK encoding); raise ValueError on bad input."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _algorithm_for(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is too short")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"EC curve {key.curve.name} is not supported (only P-256)")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ValueError(f"{type(key).__name__} keys are not supported")


def _int(value: Any) -> int:
    return int.from_bytes(b64url_decode(str(value)), "big")


def _from_jwk(jwk: dict[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    if kty == "EC" and jwk.get("crv") == "P-256":
        numbers = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1())
        return numbers.public_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk["x"])))
    raise ValueError(f"unsupported JWK (kty={kty!r}, crv={jwk.get('crv')!r})")


def _jwks_keys(document: Any) -> list[VerifyingKey]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS document needs a "keys" list')
    found = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        key = _from_jwk(jwk)
        kid = jwk.get("kid")
        found.append(VerifyingKey(_algorithm_for(key), key, str(kid) if kid else None))
    return found


def _pem_keys(data: bytes) -> list[VerifyingKey]:
    found = []
    for block in _PEM.findall(data):
        key = serialization.load_pem_public_key(block)
        found.append(VerifyingKey(_algorithm_for(key), key))  # type: ignore[arg-type]
    return found


def parse_keys(data: bytes) -> list[VerifyingKey]:
    """Keys from PEM or JWKS bytes; raise ValueError when there are none or one is bad."""
    if data.lstrip().startswith(b"{"):
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ValueError("JWKS is not valid JSON") from None
        keys = _jwks_keys(document)
    else:
        keys = _pem_keys(data)
    if not keys:
        raise ValueError("no public key found (expected PEM 'PUBLIC KEY' blocks or a JWKS)")
    return keys


def load_keys(path: Path, variable: str) -> list[VerifyingKey]:
    """Read ``path`` and parse its keys; raise ConfigError naming ``variable``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    try:
        return parse_keys(data)
    except (ValueError, KeyError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{variable}: {path}: {exc}") from None
