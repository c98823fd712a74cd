"""The key layout of the vault's KV bucket: ``s.<base64url(path)>`` per secret, ``t.<n>`` per
key term. Key paths allow characters KV keys do not (``: @ +``), hence the encoding."""

from __future__ import annotations

import base64

SECRET = "s."  # noqa: S105 (a key prefix)
TERM = "t."


def secret_key(path: str) -> str:
    """The KV key of the secret at ``path``."""
    return SECRET + base64.urlsafe_b64encode(path.encode("utf-8")).decode("ascii").rstrip("=")


def secret_path(key: str) -> str | None:
    """The path of secret key ``key``; None for any other key."""
    if not key.startswith(SECRET):
        return None
    text = key[len(SECRET) :]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


def term_key(term: int) -> str:
    """The KV key of key term ``term``."""
    return f"{TERM}{term}"


def term_number(key: str) -> int | None:
    """The term of term key ``key``; None for any other key."""
    if not key.startswith(TERM) or not key[len(TERM) :].isdigit():
        return None
    return int(key[len(TERM) :])
