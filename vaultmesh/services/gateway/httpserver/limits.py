"""The limits every HTTP request and connection of the gateway is held to, and the refusals.

Without them one connection could send a head without end and grow the
process until it is killed, or thousands could trickle a byte at a time and be
held for ever. They apply to both of the gateway's HTTP protocols: the front
door (ingest/frontdoor.py, the heartbeat hot path) and uvicorn's protocol it hands
every other request to (bounded_httptools.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from vaultmesh.services.gateway.config import GatewaySettings


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP error answered by the protocol itself, before any app code runs."""

    status: int
    code: str  # the vaultmesh_bad_input_total code
    message: str


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How big, how many and how long, per request and per process."""

    body_bytes: int = 64 * 1024
    head_bytes: int = 16 * 1024  # request line and headers
    headers: int = 100
    request_timeout_s: float = 10.0  # from a request's first byte to its last
    connections: int = 500  # open at once, per process

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> HttpLimits:
        """The limits configured by ``VAULTMESH_MAX_BODY_BYTES`` and ``VAULTMESH_HTTP_*``."""
        return cls(
            body_bytes=settings.max_body_bytes,
            head_bytes=settings.http_max_head_bytes,
            headers=settings.http_max_headers,
            request_timeout_s=settings.http_request_timeout_s,
            connections=settings.http_max_connections,
        )

    @property
    def head_too_large(self) -> Refusal:
        """The answer to a head over ``head_bytes``."""
        message = f"request head is larger than the limit of {self.head_bytes} bytes"
        return Refusal(431, "head_too_large", message)

    @property
    def too_many_headers(self) -> Refusal:
        """The answer to a head with more than ``headers`` header fields."""
        return Refusal(431, "too_many_headers", f"more than {self.headers} request headers")

    @property
    def too_slow(self) -> Refusal:
        """The answer to a request not received whole within ``request_timeout_s``."""
        message = f"request not received within {self.request_timeout_s:g} s"
        return Refusal(408, "request_timeout", message)


MALFORMED = Refusal(400, "bad_request", "malformed HTTP request")
