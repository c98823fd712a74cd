"""Browser sessions: a stateless, signed cookie tied to the admin token that opened it.

The cookie is ``v1.<expiry>.<nonce>.<mac>``: the MAC is an HMAC-SHA256 keyed by
a key derived from one admin token, so no server-side state is needed (every
gateway replica can check it), the token itself never travels in the cookie,
and removing a token from the configuration ends every session it opened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from vaultmesh.shared.clock import Clock, SystemClock

COOKIE_NAME = "vaultmesh_session"
_VERSION = "v1"
_MAX_COOKIE = 256


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
        """The index of the token that signed ``cookie``, or None if invalid or expired."""
        if len(cookie) > _MAX_COOKIE:
            return None
        payload, _, mac = cookie.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        if int(parts[1]) <= self._now():
            return None
        found = None
        # Check every key (no early exit), so timing does not tell which one matched.
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(self._mac(key, payload), mac):
                found = index
        return found

    @staticmethod
    def _mac(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
