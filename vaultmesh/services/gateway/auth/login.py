"""Browser sign-in: ``GET/POST /login`` and ``POST /logout``.

A browser cannot add an ``Authorization`` header to an EventSource, so a person
signs in once with an admin token and gets the HttpOnly ``vaultmesh_session``
cookie (SameSite=Lax, Secure over https). A refused token sends the browser
back to the form with a notice rather than an error page. Logging out revokes
the session on every replica (sessions.py, revocations.py), so a copy of the
cookie stops working too.
"""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vaultmesh.services.gateway.auth.authenticator import authenticator
from vaultmesh.services.gateway.auth.sessions import COOKIE_NAME
from vaultmesh.services.gateway.auth.tokens import token_principal
from vaultmesh.services.gateway.bodies import form_fields
from vaultmesh.services.gateway.errors import InvalidInput, TooManyAttempts
from vaultmesh.services.gateway.http_errors import error_responses
from vaultmesh.services.gateway.state import gateway_state
from vaultmesh.shared.models.audit import Outcome

router = APIRouter(tags=["sign-in"])

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>VaultMesh - sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;background:#0b1020;color:#e6e9f2;display:grid;
place-items:center;min-height:100vh;margin:0}}
form{{background:#141b33;padding:2rem;border-radius:8px;min-width:20rem}}
input{{width:100%;box-sizing:border-box;padding:.5rem;margin:.5rem 0 1rem}}
button{{padding:.5rem 1rem}} .notice{{color:#ffb4a9}}
</style></head>
<body><form method="post" action="/login">
<h1>VaultMesh</h1>{notice}
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></body></html>
"""
_FORM_SPEC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"token": {"type": "string"}, "next": {"type": "string"}},
                    "required": ["token"],
                }
            }
        },
    }
}


def safe_next(target: str | None) -> str:
    """A same-site path to go to after sign-in (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    # Browsers ignore tabs/newlines and read "\\" as "/": "/\t/evil" would leave the site.
    if "\\" in target or any(ord(char) < 0x21 or ord(char) == 0x7F for char in target):
        return "/"
    return target


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/login", response_class=HTMLResponse, responses=error_responses(422))
async def login_form(
    next_path: Annotated[str | None, Query(alias="next", max_length=2048)] = None,
    failed: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """The sign-in form."""
    notice = '<p class="notice">That token was not accepted.</p>' if failed else ""
    page = _FORM.format(notice=notice, next=html.escape(safe_next(next_path), quote=True))
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.post(
    "/login",
    status_code=303,
    response_class=RedirectResponse,
    response_description="Signed in (to `next`), or refused (back to the form)",
    responses=error_responses(413, 422, 429),
    openapi_extra=_FORM_SPEC,
)
async def login(request: Request) -> Response:
    """Check the token and set the session cookie (throttled per client address)."""
    form = form_fields(await request.body())
    if "token" not in form:
        # Not the sign-in form (whose field is required in the browser): a plain error.
        raise InvalidInput("form field 'token' is required")
    token = form["token"][0]
    target = safe_next((form.get("next") or ["/"])[0])
    auth, state = authenticator(request), gateway_state(request)
    address = request.client.host if request.client else "unknown"
    try:
        state.login_throttle.check(address)
    except TooManyAttempts:
        state.metrics.count_login("throttled")
        state.audit.record("login", "", Outcome.DENIED, code="throttled", address=address)
        raise
    index = auth.admin.match(token)
    if index is None:
        state.login_throttle.refused(address)
        state.metrics.count_login("refused")
        state.audit.record("login", "", Outcome.DENIED, code="refused", address=address)
        return _redirect(f"/login?failed=true&next={quote(target, safe='/')}")
    state.login_throttle.succeeded(address)
    state.metrics.count_login("ok")
    state.audit.record("login", token_principal(index), Outcome.ALLOWED, address=address)
    response = _redirect(target)
    response.set_cookie(
        COOKIE_NAME,
        auth.sessions.issue(index),
        max_age=auth.sessions.ttl_s,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    return response


@router.post(
    "/logout",
    status_code=303,
    response_class=RedirectResponse,
    response_description="Signed out (to the form)",
)
async def logout(request: Request) -> Response:
    """End the session: revoke it on every replica and clear the cookie."""
    cookie = request.cookies.get(COOKIE_NAME)
    session = authenticator(request).sessions.check(cookie) if cookie else None
    if session is not None:
        state = gateway_state(request)
        stored = await state.revocations.revoke(session)
        principal = token_principal(session.token_index)
        state.audit.record("logout", principal, Outcome.ALLOWED, revoked=stored)
    response = _redirect("/login")
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


def _secure(request: Request) -> bool:
    configured = gateway_state(request).settings.cookie_secure
    if configured is not None:
        return configured
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"
