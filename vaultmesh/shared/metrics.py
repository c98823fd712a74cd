"""Prometheus metrics: one registry per service process and its /metrics endpoint.

Label values are bounded (operation names and error codes from fixed sets);
nothing from a request body or a secret is ever used as a label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)


@dataclass
class ServiceMetrics:
    """The metrics every service exports, in its own registry."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "vaultmesh_requests_total",
            "Requests handled, by endpoint and outcome.",
            ["service", "endpoint", "outcome"],
            registry=self.registry,
        )
        self.bad_input = Counter(
            "vaultmesh_bad_input_total",
            "Inputs rejected as malformed, oversized, unknown or forbidden, by source and code.",
            ["service", "source", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vaultmesh_request_seconds",
            "Request handling time, by endpoint.",
            ["service", "endpoint"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.up = Gauge(
            "vaultmesh_up", "1 while the service is ready.", ["service"], registry=self.registry
        )

    def count_bad_input(self, source: str, code: str) -> None:
        """Count one rejected input from ``source`` (an endpoint or subscription name)."""
        self.bad_input.labels(self.service, source, code).inc()

    def counter(self, name: str, doc: str, labels: list[str] | None = None) -> Counter:
        """A service-specific counter in this registry."""
        return Counter(name, doc, ["service", *(labels or [])], registry=self.registry)

    def gauge(self, name: str, doc: str, labels: list[str] | None = None) -> Gauge:
        """A service-specific gauge in this registry."""
        return Gauge(name, doc, ["service", *(labels or [])], registry=self.registry)


def serve_metrics(metrics: ServiceMetrics, host: str, port: int) -> Any | None:
    """Serve /metrics on ``host:port`` (0: any free port; -1: off); return the server."""
    if port < 0:
        return None
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("metrics endpoint up", extra={"port": server.server_port})
    return server
