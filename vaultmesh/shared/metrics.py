"""Prometheus metrics: one registry per service process and its /metrics endpoint.

Label values are bounded (operation names and error codes from fixed sets);
nothing from a request body or a secret is ever used as a label.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class RequestStats(Collector):
    """``vaultmesh_requests_total`` and ``vaultmesh_request_seconds``, kept as plain
    numbers and turned into Prometheus families only when scraped.

    Counting a request is on every service's hot path: here it is two dict
    lookups and a bisect, where prometheus_client's labelled children cost
    several locked updates (about 5 µs a request in the vault). The scrape runs
    in the metrics thread and reads copies, so it never sees a dict change size.
    """

    def __init__(self, service: str) -> None:
        self._service = service
        self._counts: dict[tuple[str, str], int] = {}
        # endpoint -> [count per bucket (le=LATENCY_BUCKETS..., +Inf), sum of seconds]
        self._latency: dict[str, list[float]] = {}

    def observe(self, endpoint: str, outcome: str, seconds: float) -> None:
        """Count one request to ``endpoint`` with ``outcome`` that took ``seconds``."""
        key = (endpoint, outcome)
        self._counts[key] = self._counts.get(key, 0) + 1
        spread = self._latency.get(endpoint)
        if spread is None:
            spread = self._latency[endpoint] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        spread[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        spread[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        """The two metric families, from a copy of the current numbers."""
        requests = CounterMetricFamily(
            "vaultmesh_requests",
            "Requests handled, by endpoint and outcome.",
            labels=["service", "endpoint", "outcome"],
        )
        for (endpoint, outcome), count in self._counts.copy().items():
            requests.add_metric([self._service, endpoint, outcome], count)
        yield requests
        latency = HistogramMetricFamily(
            "vaultmesh_request_seconds",
            "Request handling time, by endpoint.",
            labels=["service", "endpoint"],
        )
        for endpoint, spread in self._latency.copy().items():
            counts, total = spread[:-1], spread[-1]
            buckets: list[tuple[str, float]] = []
            running = 0.0
            for bound, seen in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += seen
                buckets.append((bound, running))
            latency.add_metric([self._service, endpoint], buckets, total)
        yield latency


@dataclass
class ServiceMetrics:
    """The metrics every service exports, in its own registry."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.request_stats = RequestStats(self.service)
        self.registry.register(self.request_stats)
        self.bad_input = Counter(
            "vaultmesh_bad_input_total",
            "Inputs rejected as malformed, oversized, unknown or forbidden, by source and code.",
            ["service", "source", "code"],
            registry=self.registry,
        )
        self.up = Gauge(
            "vaultmesh_up", "1 while the service is ready.", ["service"], registry=self.registry
        )

    def count_request(self, endpoint: str, outcome: str, seconds: float) -> None:
        """Count one handled request (``outcome``: "ok", an error code or an HTTP status)."""
        self.request_stats.observe(endpoint, outcome, seconds)

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
