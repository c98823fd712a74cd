"""Admin access over real HTTP: bearer tokens, the sign-in cookie, and identity JWTs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.test_gateway_support import (
    ADMIN,
    ADMIN_TOKEN,
    Gateway,
    assert_error_shape,
    eventually,
    gateway_audit,
    running_gateway,
)
from tests.unit.test_gateway_identity import make_jwt, pem
from vaultmesh.services.gateway.auth.sessions import COOKIE_NAME
from vaultmesh.shared.natsserver import NatsServer

ISSUER = "https://access.example.com"
JWT_HEADER = "Cf-Access-Jwt-Assertion"
KEY = ec.generate_private_key(ec.SECP256R1())
ADMIN_PATHS = ["/api/nodes", "/api/fleet/counts", "/api/events", "/events"]


@pytest.fixture
async def gateway(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Gateway]:
    key_file = tmp_path / "access.pem"
    key_file.write_bytes(pem(KEY))
    async with running_gateway(
        nats_server.url,
        identity_jwt_issuer=ISSUER,
        identity_jwt_public_key_file=key_file,
    ) as gw:
        yield gw


@pytest.mark.parametrize("path", ADMIN_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"Authorization": "Bearer wrong-token-0123456789abcdef"}, id="wrong"),
        pytest.param({"Authorization": f"Basic {ADMIN_TOKEN}"}, id="not-bearer"),
        pytest.param({"Cookie": f"{COOKIE_NAME}=v1.9999999999.abc.def"}, id="forged-cookie"),
    ],
)
async def test_admin_apis_refuse_without_valid_credentials(
    gateway: Gateway, path: str, headers: dict[str, str]
) -> None:
    async with gateway.client() as client:
        reply = await client.get(path, headers=headers)
    assert_error_shape(reply, 401)
    assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_pages_send_browsers_to_the_sign_in_form(gateway: Gateway) -> None:
    async with gateway.client() as client:
        reply = await client.get("/console?node=abc")
        assert reply.status_code == 303
        assert reply.headers["location"] == "/login?next=/console%3Fnode%3Dabc"
        form = await client.get(reply.headers["location"])
    assert form.status_code == 200
    assert 'name="token"' in form.text
    assert 'value="/console?node=abc"' in form.text


async def test_sign_in_sets_an_http_only_cookie_that_opens_apis_and_events(
    gateway: Gateway,
) -> None:
    async with gateway.client() as client:
        reply = await client.post("/login", data={"token": ADMIN_TOKEN, "next": "/console"})
        assert reply.status_code == 303
        assert reply.headers["location"] == "/console"
        set_cookie = reply.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE_NAME}=")
        assert "httponly" in set_cookie.lower()
        assert "samesite=lax" in set_cookie.lower()
        assert ADMIN_TOKEN not in set_cookie
        assert (await client.get("/api/fleet/counts")).status_code == 200
        async with client.stream("GET", "/events") as stream:
            assert stream.status_code == 200
        assert (await client.get("/console")).status_code in (200, 503)

        out = await client.post("/logout")
        assert out.status_code == 303
        client.cookies.clear()  # what the browser does with the expired cookie
        assert_error_shape(await client.get("/api/fleet/counts"), 401)


async def test_a_logged_out_cookie_is_refused_by_every_replica(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    async with (
        running_gateway(nats_server.url, fleet=False) as other,
        gateway.client() as browser,
        other.client() as thief,
    ):
        assert (await browser.post("/login", data={"token": ADMIN_TOKEN})).status_code == 303
        stolen = {"Cookie": f"{COOKIE_NAME}={browser.cookies[COOKIE_NAME]}"}
        assert (await thief.get("/api/fleet/counts", headers=stolen)).status_code == 200
        assert (await browser.post("/logout")).status_code == 303

        async with gateway.client() as same_replica:
            assert_error_shape(await same_replica.get("/api/fleet/counts", headers=stolen), 401)
            page = await same_replica.get("/console", headers=stolen)
            assert page.status_code == 303  # back to the sign-in form

        async def refused_by_the_other() -> bool:
            return (await thief.get("/api/fleet/counts", headers=stolen)).status_code == 401

        await eventually(refused_by_the_other, "the other replica to refuse the cookie")
        assert_error_shape(await thief.get("/api/nodes", headers=stolen), 401)
        assert_error_shape(await thief.get("/events", headers=stolen), 401)

    # A replica started after the logout loads the revocation before it serves.
    async with running_gateway(nats_server.url, fleet=False) as late, late.client() as client:
        assert_error_shape(await client.get("/api/fleet/counts", headers=stolen), 401)
        value = gateway.metrics.registry.get_sample_value(
            "vaultmesh_gateway_session_revocations_total",
            {"service": "gateway", "result": "stored"},
        )
        assert value == 1


async def test_a_refused_sign_in_goes_back_to_the_form_without_a_cookie(gateway: Gateway) -> None:
    async with gateway.client() as client:
        reply = await client.post(
            "/login", data={"token": "wrong-token-0123456789abcdef", "next": "//evil.example"}
        )
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?failed=true&next=/"
    assert "set-cookie" not in reply.headers
    value = gateway.metrics.registry.get_sample_value(
        "vaultmesh_gateway_logins_total", {"service": "gateway", "outcome": "refused"}
    )
    assert value == 1


async def test_repeated_refused_sign_ins_are_throttled(
    nats_server: NatsServer,
) -> None:
    async with running_gateway(nats_server.url, login_attempts=3) as gw:
        async with gw.client() as client:
            for _ in range(3):
                reply = await client.post("/login", data={"token": "wrong-token-0123456789"})
                assert reply.status_code == 303
            # Blocked now: even the right token is refused, with a clear error and a wait.
            for token in ("wrong-token-0123456789", ADMIN_TOKEN):
                reply = await client.post("/login", data={"token": token})
                assert_error_shape(reply, 429)
                assert "retry in" in reply.json()["error"]
                assert 1 <= int(reply.headers["retry-after"]) <= 300
                assert "set-cookie" not in reply.headers
            # The bearer-token API is not affected.
            assert (await client.get("/api/events", headers=ADMIN)).status_code == 200
        throttled = gw.metrics.registry.get_sample_value(
            "vaultmesh_gateway_logins_total", {"service": "gateway", "outcome": "throttled"}
        )
        assert throttled == 2


async def test_sign_ins_and_sign_outs_are_audited_without_the_token(gateway: Gateway) -> None:
    # Other tests in this module signed in too: only count what this one adds.
    logins_before = len(await gateway_audit(gateway.nc, "login"))
    logouts_before = len(await gateway_audit(gateway.nc, "logout"))
    async with gateway.client() as client:
        await client.post("/login", data={"token": "wrong-token-0123456789abcdef"})
        await client.post("/login", data={"token": ADMIN_TOKEN})
        await client.post("/logout")

    async def two_logins() -> list[dict[str, Any]] | None:
        found = (await gateway_audit(gateway.nc, "login"))[logins_before:]
        return found if len(found) >= 2 else None

    refused, allowed = await eventually(two_logins, "two sign-in audit records")
    assert (refused["outcome"], refused["code"], refused["principal"]) == ("denied", "refused", "")
    assert (allowed["outcome"], allowed["principal"]) == ("allowed", "admin-token-1")
    for record in (refused, allowed):
        assert record["service"] == "gateway"
        assert record["detail"]["address"] == "127.0.0.1"
        assert ADMIN_TOKEN not in str(record)
        assert "wrong-token" not in str(record)
    assert refused["id"]
    assert allowed["id"]
    assert refused["id"] != allowed["id"]

    async def logout() -> list[dict[str, Any]] | None:
        return (await gateway_audit(gateway.nc, "logout"))[logouts_before:] or None

    (out,) = await eventually(logout, "a sign-out audit record")
    assert (out["outcome"], out["principal"]) == ("allowed", "admin-token-1")


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {"iss": ISSUER, "sub": "u1", "email": "ops@example.com"}
    claims.update({"iat": now, "exp": now + 300})
    claims.update(overrides)
    return claims


async def test_a_valid_identity_jwt_is_accepted(gateway: Gateway) -> None:
    token = make_jwt(KEY, "ES256", _claims())
    async with gateway.client() as client:
        reply = await client.get("/api/fleet/counts", headers={JWT_HEADER: token})
        assert reply.status_code == 200
        page = await client.get("/console", headers={JWT_HEADER: token})
        assert page.status_code in (200, 503)


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body[:-4]}AAAA.{sig}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(_tamper(make_jwt(KEY, "ES256", _claims())), "signature", id="tampered"),
        pytest.param(
            make_jwt(KEY, "ES256", _claims(exp=int(time.time()) - 600)), "expired", id="exp"
        ),
        pytest.param(
            make_jwt(KEY, "ES256", _claims(iss="https://evil.example")), "issuer", id="iss"
        ),
        pytest.param(
            make_jwt(ec.generate_private_key(ec.SECP256R1()), "ES256", _claims()),
            "signature",
            id="other-key",
        ),
    ],
)
async def test_bad_identity_jwts_are_refused(gateway: Gateway, token: str, reason: str) -> None:
    async with gateway.client() as client:
        reply = await client.get("/api/fleet/counts", headers={JWT_HEADER: token})
        message = assert_error_shape(reply, 401)
        assert reason in message
        page = await client.get("/console", headers={JWT_HEADER: token})
        assert page.status_code == 303


async def test_bearer_tokens_open_the_api(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=ADMIN) as client:
        assert (await client.get("/api/fleet/counts")).status_code == 200
