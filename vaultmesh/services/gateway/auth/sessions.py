"""Browser sessions: a signed cookie tied to the admin token that opened it, and revocations.

The cookie is ``v1.<expiry>.<nonce>.<mac>``: the MAC is an HMAC-SHA256 keyed by
a key derived from one admin token, so every gateway replica can check it
without asking anyone, the token itself never travels in the cookie, and
removing a token from the configuration ends every session it opened.

The nonce is the session's id. Logging out revokes it: the id goes into
``RevokedSessions`` until the cookie would have expired anyway, and every
replica learns of it through the bus (revocations.py), so a copied cookie stops
working after logout. Only the ids of logged-out, unexpired sessions are kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from vaultmesh.shared.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COOKIE_NAME = "vaultmesh_session"
_VERSION = "v1"
_MAX_COOKIE = 256
# Revoked ids kept at most (only admins' logouts add any; expired ones go first).
MAX_REVOKED = 100_000


@dataclass(frozen=True, slots=True)
class Session:
    """A valid session: which admin token opened it, its id, and its expiry (epoch s)."""

    token_index: int
    session_id: str
    expires: int


class RevokedSessions:
    """Ids of logged-out sessions, each kept until its cookie's own expiry."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._expiry: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._expiry

    def add(self, session_id: str, expires: int) -> None:
        """Revoke ``session_id`` (its cookie expires at ``expires``, epoch seconds)."""
        if len(self._expiry) >= MAX_REVOKED:
            self.prune()
            if len(self._expiry) >= MAX_REVOKED:
                log.warning("revoked-session list full; oldest entry dropped")
                del self._expiry[next(iter(self._expiry))]
        self._expiry[session_id] = expires

    def prune(self) -> None:
        """Forget revocations whose cookies have expired (they are refused anyway)."""
        now = int(self._clock.now().timestamp())
        self._expiry = {sid: exp for sid, exp in self._expiry.items() if exp > now}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key(token: str) -> bytes:
    # Domain-separated, so the session key is never the raw token.
    return hashlib.sha256(b"vaultmesh-session-v1\x00" + token.encode()).digest()


class SessionSigner:
    """Issues and checks session cookies for a fixed set of admin tokens."""

    def __init__(self, tokens: tuple[str, ...], ttl_s: int, clock: Clock | None = None) -> None:
        self._keys = [_key(token) for token in tokens]
        self._ttl = ttl_s
        self._clock = clock or SystemClock()
        self.revoked = RevokedSessions(self._clock)

    @property
    def ttl_s(self) -> int:
        """How long a new session lasts."""
        return self._ttl

    def _now(self) -> int:
        now: datetime = self._clock.now()
        return int(now.timestamp())

    def issue(self, token_index: int) -> str:
        """A fresh cookie value for the admin token at ``token_index``."""
        payload = f"{_VERSION}.{self._now() + self._ttl}.{_b64(secrets.token_bytes(12))}"
        return f"{payload}.{self._mac(self._keys[token_index], payload)}"

    def verify(self, cookie: str) -> int | None:
        """The index of the token that signed ``cookie``, or None if invalid, expired or revoked."""
        session = self.check(cookie)
        return None if session is None else session.token_index

    def check(self, cookie: str) -> Session | None:
        """The session ``cookie`` proves, or None if invalid, expired or revoked."""
        if len(cookie) > _MAX_COOKIE:
            return None
        payload, _, mac = cookie.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        expires = int(parts[1])
        if expires <= self._now():
            return None
        found = None
        # Check every key (no early exit), so timing does not tell which one matched.
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(self._mac(key, payload), mac):
                found = index
        if found is None or parts[2] in self.revoked:
            return None
        return Session(found, parts[2], expires)

    @staticmethod
    def _mac(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
