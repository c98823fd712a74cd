"""Request counts and latencies as a scrape sees them (``ServiceMetrics.count_request``)."""

from __future__ import annotations

from prometheus_client import generate_latest

from vaultmesh.shared.metrics import ServiceMetrics


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"service": "svc", **labels})


def test_requests_are_counted_by_endpoint_and_outcome() -> None:
    metrics = ServiceMetrics("svc")
    for _ in range(3):
        metrics.count_request("get", "ok", 0.0002)
    metrics.count_request("get", "not_found", 0.0002)
    metrics.count_request("set", "ok", 0.002)
    assert sample(metrics, "vaultmesh_requests_total", endpoint="get", outcome="ok") == 3
    assert sample(metrics, "vaultmesh_requests_total", endpoint="get", outcome="not_found") == 1
    assert sample(metrics, "vaultmesh_requests_total", endpoint="set", outcome="ok") == 1
    assert sample(metrics, "vaultmesh_requests_total", endpoint="list", outcome="ok") is None


def test_latency_buckets_are_cumulative_with_inclusive_bounds() -> None:
    metrics = ServiceMetrics("svc")
    for seconds in (0.0001, 0.0005, 0.0007, 0.003, 2.0):
        metrics.count_request("get", "ok", seconds)

    def bucket(le: str) -> float | None:
        return sample(metrics, "vaultmesh_request_seconds_bucket", endpoint="get", le=le)

    assert bucket("0.0005") == 2  # 0.0001 and exactly 0.0005
    assert bucket("0.001") == 3
    assert bucket("0.005") == 4
    assert bucket("1.0") == 4
    assert bucket("+Inf") == 5
    assert sample(metrics, "vaultmesh_request_seconds_count", endpoint="get") == 5
    total = sample(metrics, "vaultmesh_request_seconds_sum", endpoint="get")
    assert total is not None
    assert abs(total - 2.0043) < 1e-9


def test_the_exposition_names_both_families() -> None:
    metrics = ServiceMetrics("svc")
    metrics.count_request("GET /api/nodes", "200", 0.01)
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE vaultmesh_requests_total counter" in text
    assert "# TYPE vaultmesh_request_seconds histogram" in text
    line = 'vaultmesh_requests_total{endpoint="GET /api/nodes",outcome="200",service="svc"} 1.0'
    assert line in text
