"""Who may call the gateway: admin tokens, session cookies, identity JWTs, agent tokens.

Admin APIs and pages accept ``Authorization: Bearer <admin token>``, the
``vaultmesh_session`` cookie set by ``POST /login`` (EventSource cannot send
headers), or a verified identity JWT from a fronting access proxy. Agent ingest
has its own tokens (``X-Host-Token`` or a bearer token); every token check is
constant-time (tokens.py). ``require_admin`` and ``require_admin_page`` are the
FastAPI dependencies routes declare.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import Headers

from vaultmesh.services.gateway.auth.identity import IdentityVerifier
from vaultmesh.services.gateway.auth.identity_keys import load_keys
from vaultmesh.services.gateway.auth.sessions import COOKIE_NAME, SessionSigner
from vaultmesh.services.gateway.auth.tokens import TokenSet, bearer, token_principal
from vaultmesh.services.gateway.config import GatewaySettings, load_tokens
from vaultmesh.services.gateway.errors import InvalidIdentity, LoginRequired
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import Unauthorized

log = logging.getLogger(__name__)

AGENT_TOKEN_HEADER = "x-host-token"  # noqa: S105 - a header name, not a secret


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and how it proved who it is."""

    name: str
    method: str  # "token", "session" or "identity"


class Authenticator:
    """Decides who a request comes from; built once per app from the settings."""

    def __init__(
        self,
        *,
        admin: TokenSet,
        agent: TokenSet,
        sessions: SessionSigner,
        identity: IdentityVerifier | None = None,
        identity_header: str = "",
        ingest_open: bool = False,
    ) -> None:
        self.admin = admin
        self.agent = agent
        self.sessions = sessions
        self._identity = identity
        self._identity_header = identity_header.lower()
        self.ingest_open = ingest_open

    @classmethod
    def from_settings(cls, settings: GatewaySettings, clock: Clock | None = None) -> Authenticator:
        """Load tokens and keys; raise ConfigError naming the bad variable."""
        admin = load_tokens(
            settings.admin_tokens, settings.admin_tokens_file, "VAULTMESH_ADMIN_TOKENS"
        )
        agent = load_tokens(
            settings.agent_tokens, settings.agent_tokens_file, "VAULTMESH_AGENT_TOKENS"
        )
        identity = _identity_verifier(settings, clock)
        if not admin and identity is None:
            log.warning("no admin token and no identity JWT configured: admin routes refuse all")
        if not agent and not settings.agent_ingest_open:
            log.warning("no agent token configured and ingest is closed: heartbeats get 401")
        return cls(
            admin=TokenSet(admin),
            agent=TokenSet(agent),
            sessions=SessionSigner(admin, settings.session_ttl_s, clock),
            identity=identity,
            identity_header=settings.identity_jwt_header,
            ingest_open=settings.agent_ingest_open,
        )

    def admin_principal(self, request: Request) -> Principal | None:
        """The admin behind ``request``, or None; raise InvalidIdentity for a bad JWT."""
        token = bearer(request.headers)
        if token is not None:
            index = self.admin.match(token)
            if index is not None:
                return Principal(token_principal(index), "token")
        return self.session_principal(request) or self._identity_principal(request.headers)

    def session_principal(self, request: Request) -> Principal | None:
        """The admin whose valid session cookie ``request`` carries, or None."""
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            index = self.sessions.verify(cookie)
            if index is not None:
                return Principal(token_principal(index), "session")
        return None

    def _identity_principal(self, headers: Headers) -> Principal | None:
        if self._identity is None:
            return None
        assertion = headers.get(self._identity_header)
        if not assertion:
            return None
        return Principal(self._identity.verify(assertion).name, "identity")

    def check_agent(self, headers: Mapping[str, str]) -> None:
        """Raise Unauthorized unless the request carries a valid agent token (or ingest is open)."""
        if self.ingest_open:
            return
        token = headers.get(AGENT_TOKEN_HEADER) or bearer(headers)
        if token is None:
            raise Unauthorized("agent token required (header X-Host-Token)")
        if self.agent.match(token) is None:
            raise Unauthorized("agent token not accepted")


def _identity_verifier(settings: GatewaySettings, clock: Clock | None) -> IdentityVerifier | None:
    issuer, key_file = settings.identity_jwt_issuer, settings.identity_jwt_public_key_file
    if issuer is None and key_file is None:
        return None
    if issuer is None or key_file is None:
        raise ConfigError(
            "VAULTMESH_IDENTITY_JWT_ISSUER and VAULTMESH_IDENTITY_JWT_PUBLIC_KEY_FILE "
            "must be set together"
        )
    keys = load_keys(key_file, "VAULTMESH_IDENTITY_JWT_PUBLIC_KEY_FILE")
    return IdentityVerifier(
        keys, issuer, settings.identity_jwt_audience, settings.identity_jwt_leeway_s, clock
    )


def authenticator(request: Request) -> Authenticator:
    """The app's Authenticator."""
    auth: Authenticator = request.app.state.auth
    return auth


async def require_admin(request: Request) -> Principal:
    """FastAPI dependency for admin JSON APIs: 401 ``{"error": ...}`` when not signed in."""
    principal = authenticator(request).admin_principal(request)
    if principal is None:
        raise Unauthorized("authentication required: send a bearer token or sign in at /login")
    return principal


async def require_admin_page(request: Request) -> Principal:
    """FastAPI dependency for HTML pages: a 303 to /login when not signed in."""
    try:
        principal = authenticator(request).admin_principal(request)
    except InvalidIdentity:
        principal = None
    if principal is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise LoginRequired(target)
    return principal
