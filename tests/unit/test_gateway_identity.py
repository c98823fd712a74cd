"""Identity JWT verification (RS256, ES256, EdDSA) with keys made in memory."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from vaultmesh.services.gateway.auth.identity import IdentityVerifier
from vaultmesh.services.gateway.auth.identity_keys import VerifyingKey, parse_keys
from vaultmesh.services.gateway.errors import InvalidIdentity
from vaultmesh.shared.clock import ManualClock

ISSUER = "https://team.example.cloudflareaccess.com"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: PrivateKey, alg: str, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(data)


def make_jwt(key: PrivateKey, alg: str, claims: dict[str, Any], **header: Any) -> str:
    """A compact JWS signed by ``key`` (test helper, also used by the HTTP tests)."""
    head = b64(orjson.dumps({"alg": alg, "typ": "JWT", **header}))
    body = b64(orjson.dumps(claims))
    signature = sign(key, alg, f"{head}.{body}".encode())
    return f"{head}.{body}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "user-1",
        "email": "ops@example.com",
        "aud": ["app-aud"],
        "iat": int(NOW.timestamp()) - 10,
        "exp": int(NOW.timestamp()) + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


KEYS: dict[str, PrivateKey] = {
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
}


def verifier(alg: str = "ES256", audience: str | None = None) -> IdentityVerifier:
    return IdentityVerifier(
        parse_keys(pem(KEYS[alg])), ISSUER, audience, leeway_s=30, clock=ManualClock(NOW)
    )


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_valid_tokens_verify(alg: str) -> None:
    identity = verifier(alg).verify(make_jwt(KEYS[alg], alg, claims()))
    assert identity.name == "ops@example.com"
    assert identity.subject == "user-1"


def test_audience_is_checked_when_configured() -> None:
    token = make_jwt(KEYS["ES256"], "ES256", claims())
    assert verifier(audience="app-aud").verify(token).email == "ops@example.com"
    with pytest.raises(InvalidIdentity, match="audience"):
        verifier(audience="other-app").verify(token)


def _tampered(token: str) -> str:
    head, body, sig = token.split(".")
    forged = orjson.loads(base64.urlsafe_b64decode(body + "=="))
    forged["email"] = "attacker@example.com"
    return f"{head}.{b64(orjson.dumps(forged))}.{sig}"


def _alg_none(_token: str) -> str:
    head = b64(orjson.dumps({"alg": "none"}))
    return f"{head}.{b64(orjson.dumps(claims()))}."


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(
            _tampered(make_jwt(KEYS["ES256"], "ES256", claims())), "signature", id="tamper"
        ),
        pytest.param(_alg_none(""), "algorithm", id="alg-none"),
        pytest.param(make_jwt(KEYS["ES256"], "ES256", claims(exp=None)), "exp", id="no-exp"),
        pytest.param(
            make_jwt(KEYS["ES256"], "ES256", claims(exp=int(NOW.timestamp()) - 60)),
            "expired",
            id="expired",
        ),
        pytest.param(
            make_jwt(KEYS["ES256"], "ES256", claims(nbf=int(NOW.timestamp()) + 600)),
            "not valid yet",
            id="nbf",
        ),
        pytest.param(
            make_jwt(KEYS["ES256"], "ES256", claims(iss="https://evil.example")), "issuer", id="iss"
        ),
        pytest.param(
            make_jwt(ec.generate_private_key(ec.SECP256R1()), "ES256", claims()),
            "signature",
            id="other-key",
        ),
        pytest.param(make_jwt(KEYS["ES256"], "ES256", claims(exp="soon")), "number", id="exp-type"),
        pytest.param("a.b", "compact", id="two-parts"),
        pytest.param("!!.e30.", "base64url", id="garbage-header"),
        pytest.param("x" * 20000, "too large", id="huge"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity, match=reason):
        verifier().verify(token)


def test_an_rsa_key_cannot_verify_a_token_claiming_another_algorithm() -> None:
    # Algorithm confusion: an HS256 token "signed" with the public key bytes as secret.
    import hashlib
    import hmac

    public = pem(KEYS["RS256"])
    head = b64(orjson.dumps({"alg": "HS256"}))
    body = b64(orjson.dumps(claims()))
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidIdentity, match="algorithm"):
        verifier("RS256").verify(f"{head}.{body}.{b64(mac)}")
    es_token = make_jwt(KEYS["ES256"], "ES256", claims())
    with pytest.raises(InvalidIdentity, match="signature"):
        verifier("RS256").verify(es_token)


def test_jwks_documents_are_read_with_kids() -> None:
    numbers = KEYS["ES256"].public_key().public_numbers()  # type: ignore[union-attr]
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "kid": "k1",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }
    keys = parse_keys(orjson.dumps({"keys": [jwk]}))
    assert keys == [VerifyingKey("ES256", keys[0].key, "k1")]
    check = IdentityVerifier(keys, ISSUER, clock=ManualClock(NOW))
    assert check.verify(make_jwt(KEYS["ES256"], "ES256", claims(), kid="k1")).subject == "user-1"
    with pytest.raises(InvalidIdentity, match="signature"):
        check.verify(make_jwt(KEYS["ES256"], "ES256", claims(), kid="k2"))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'{"keys": "nope"}', id="jwks-shape"),
        pytest.param(
            pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
            id="rsa-1024",
        ),
        pytest.param(pem(ec.generate_private_key(ec.SECP384R1())), id="p384"),
    ],
)
def test_unusable_key_material_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        parse_keys(data)
