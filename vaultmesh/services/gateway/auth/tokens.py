"""Admin and agent tokens: held as digests, checked in constant time, never named.

Each candidate is hashed, then compared with every configured digest without
stopping at the first match, so the time taken says nothing about which
token, if any, matched. An admin is named by its token's position in the
configuration, never by the token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

MAX_TOKEN_LENGTH = 4096


class TokenSet:
    """A fixed set of secrets with constant-time membership checks."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._digests = [hashlib.sha256(token.encode()).digest() for token in tokens]

    def __len__(self) -> int:
        return len(self._digests)

    def match(self, candidate: str) -> int | None:
        """The index of ``candidate`` in the set, or None."""
        if not candidate or len(candidate) > MAX_TOKEN_LENGTH:
            return None
        digest = hashlib.sha256(candidate.encode()).digest()
        found = None
        for index, reference in enumerate(self._digests):
            if hmac.compare_digest(digest, reference):
                found = index
        return found


def token_principal(index: int) -> str:
    """How the admin holding configured token ``index`` is named (never the token)."""
    return f"admin-token-{index + 1}"


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
