"""A whole HTTP/1.1 answer, written by the gateway's own protocols in one piece.

The front door (ingest/frontdoor.py) answers plain heartbeat posts with it, and
the connection guard (connections.py) its refusals; uvicorn writes every other
answer itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from http import HTTPStatus

_JSON = b"content-type: application/json\r\n"
_CLOSE = b"connection: close\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole HTTP answer: status, JSON body, and any extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


@functools.cache
def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())


def encode(reply: Reply, default_headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    """The whole HTTP/1.1 response for ``reply`` (``default_headers``: date, server)."""
    parts = [_status_line(reply.status)]
    for name, value in (*default_headers, *reply.headers):
        parts += (name, b": ", value, b"\r\n")
    parts += (_JSON, b"content-length: %d\r\n" % len(reply.body))
    if not keep_alive:
        parts.append(_CLOSE)
    parts += (b"\r\n", reply.body)
    return b"".join(parts)
