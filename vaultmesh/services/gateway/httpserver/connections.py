"""What every HTTP connection of one gateway shares: the cap on open ones, deadlines, refusals.

Both protocols (ingest/frontdoor.py, bounded_httptools.py) hold one ``ConnectionGuard``.
A connection past the cap is answered 503 and closed as soon as it is
accepted, before anything is read or parsed. Request deadlines are checked by
one periodic sweep over the open connections — not a timer per request — so
the heartbeat hot path only notes when a request that is not yet whole began;
the sweep runs while there are connections and stops when there are none.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

import orjson

from vaultmesh.services.gateway.httpserver.answers import Reply, encode
from vaultmesh.services.gateway.httpserver.limits import HttpLimits, Refusal
from vaultmesh.services.gateway.metrics import GatewayMetrics

MAX_SWEEP_INTERVAL_S = 1.0


@runtime_checkable
class HasDeadline(Protocol):
    """A connection that refuses its request when it has not arrived whole in time."""

    def expire_if_late(self, now: float) -> None:
        """Refuse (408) and close if the request being received began too long before ``now``."""


def refusal_reply(refusal: Refusal) -> Reply:
    """The ``{"error"}`` answer to ``refusal``."""
    return Reply(refusal.status, orjson.dumps({"error": refusal.message}))


class ConnectionGuard:
    """The limits of one app's connections, as one object all its connections share."""

    def __init__(self, limits: HttpLimits, metrics: GatewayMetrics) -> None:
        self.limits = limits
        self.interval_s = min(MAX_SWEEP_INTERVAL_S, limits.request_timeout_s / 4)
        self._metrics = metrics
        self._refused = metrics.connections_refused.labels(metrics.service)
        metrics.http_connections.labels(metrics.service).set_function(self.open_count)
        self._connections: set[Any] = set()  # uvicorn's set of open connections, once seen
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        refusal = Refusal(503, "too_many_connections", "too many connections; retry later")
        # Built once, without a date: refusing must stay cheap when many arrive at once.
        self._too_many = encode(refusal_reply(refusal), [], keep_alive=False)

    def admit(
        self,
        connections: set[Any],
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
    ) -> bool:
        """Whether a new connection may stay; if not, it is answered 503 and closed."""
        if len(connections) >= self.limits.connections:
            self._refused.inc()
            transport.write(self._too_many)
            transport.close()
            return False
        self._connections = connections
        if self._sweep is None:
            self._loop = loop
            self._sweep = loop.call_later(self.interval_s, self._check_deadlines)
        return True

    def refuse(
        self,
        transport: asyncio.Transport,
        refusal: Refusal,
        default_headers: list[tuple[bytes, bytes]],
        answer: bool = True,
    ) -> None:
        """Count ``refusal``, answer it (unless ``answer`` is false) and close the connection."""
        self._metrics.count_bad_input("http", refusal.code)
        if answer and not transport.is_closing():
            transport.write(encode(refusal_reply(refusal), default_headers, keep_alive=False))
        if transport.get_write_buffer_size():
            # The client does not read what it was sent: closing would wait on it for ever.
            transport.abort()
        else:
            transport.close()

    def open_count(self) -> float:
        """HTTP connections open now (the gauge's value)."""
        return float(len(self._connections))

    def _check_deadlines(self) -> None:
        self._sweep = None
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        now = loop.time()
        for connection in list(self._connections):
            if isinstance(connection, HasDeadline):
                connection.expire_if_late(now)
        if self._connections:
            self._sweep = loop.call_later(self.interval_s, self._check_deadlines)
