"""The gateway's own Prometheus metrics, in the service registry served at ``/metrics``."""

from __future__ import annotations

from typing import Any

from vaultmesh.shared.metrics import ServiceMetrics


class GatewayMetrics:
    """Shared service metrics plus what only the gateway has (SSE clients, logins, publishes)."""

    def __init__(self, base: ServiceMetrics) -> None:
        self.base = base
        self.sse_clients = base.gauge(
            "vaultmesh_gateway_sse_clients", "Event-stream clients connected now."
        )
        self.sse_events = base.counter(
            "vaultmesh_gateway_sse_events_total", "Events sent to event-stream clients.", ["kind"]
        )
        self.published = base.counter(
            "vaultmesh_gateway_published_total",
            "Messages published to JetStream and acknowledged.",
            ["stream"],
        )
        self.logins = base.counter(
            "vaultmesh_gateway_logins_total", "Browser sign-in attempts.", ["outcome"]
        )
        self.http_connections = base.gauge(
            "vaultmesh_gateway_http_connections", "HTTP connections open now."
        )
        self.connections_refused = base.counter(
            "vaultmesh_gateway_connections_refused_total",
            "HTTP connections refused because VAULTMESH_HTTP_MAX_CONNECTIONS were open.",
        )
        # labels() looks children up under a lock; the hot path keeps its own.
        self._published: dict[str, Any] = {}

    @property
    def service(self) -> str:
        """The service label value."""
        return self.base.service

    def count_bad_input(self, source: str, code: str) -> None:
        """Count one rejected input."""
        self.base.count_bad_input(source, code)

    def count_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration (``endpoint`` is "METHOD /path")."""
        self.base.count_request(endpoint, str(status), seconds)

    def count_published(self, stream: str, count: int = 1) -> None:
        """Count ``count`` acknowledged publishes to ``stream``."""
        child = self._published.get(stream)
        if child is None:
            child = self._published[stream] = self.published.labels(self.service, stream)
        child.inc(count)

    def count_sse_event(self, kind: str) -> None:
        """Count one event delivered to one client."""
        self.sse_events.labels(self.service, kind).inc()

    def count_login(self, outcome: str) -> None:
        """Count a sign-in attempt ("ok", "refused" or "throttled")."""
        self.logins.labels(self.service, outcome).inc()
