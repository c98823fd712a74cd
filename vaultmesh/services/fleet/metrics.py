"""fleet-state's own Prometheus metrics, next to the shared ``ServiceMetrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.fleet import NodeStatus, RemovalReason

HEARTBEAT_SOURCE = "heartbeat"
EVENTS_SOURCE = "events_stream"


class FleetMetrics:
    """Counters and gauges of fleet-state (label values come from fixed sets)."""

    def __init__(self, base: ServiceMetrics) -> None:
        self.base = base
        service = base.service
        # Heartbeat counts are plain ints on the hot path, read when Prometheus scrapes.
        self.heartbeats_accepted = 0
        self.heartbeats_rejected = 0
        base.registry.register(_HeartbeatCounts(self))
        self.events_skipped = base.counter(
            "vaultmesh_fleet_events_skipped_total",
            "EVENTS stream messages that are not valid EventEnvelopes.",
        ).labels(service)
        self.kv_writes = base.counter(
            "vaultmesh_fleet_state_writes_total", "Derived-state writes to the FLEET_STATE bucket."
        ).labels(service)
        self.attention_events = base.counter(
            "vaultmesh_fleet_attention_events_total", "Attention transitions published."
        ).labels(service)
        self.resyncs = base.counter(
            "vaultmesh_fleet_stream_resyncs_total",
            "Times a stream reader restarted after missing messages.",
            ["stream"],
        )
        self._removed = base.counter(
            "vaultmesh_fleet_nodes_removed_total",
            "Nodes removed from the registry, by reason (deleted or expired).",
            ["reason"],
        )
        self._nodes = base.gauge("vaultmesh_fleet_nodes", "Registered nodes by status.", ["status"])
        self._writer = base.gauge(
            "vaultmesh_fleet_writer",
            "1 while this replica holds the writer lease (it writes FLEET_STATE and events).",
        ).labels(service)

    def reject(self, source: str, code: str) -> None:
        """Count one rejected input."""
        if source == HEARTBEAT_SOURCE:
            self.heartbeats_rejected += 1
        else:
            self.events_skipped.inc()
        self.base.count_bad_input(source, code)

    def removed(self, reason: RemovalReason) -> None:
        """Count one node removed for ``reason``."""
        self._removed.labels(self.base.service, reason.value).inc()

    def resynced(self, stream: str) -> Callable[[], None]:
        """A callback counting one resync of the reader of ``stream``."""
        return self.resyncs.labels(self.base.service, stream).inc

    def set_writer(self, holding: bool) -> None:
        """Publish whether this replica is the writer."""
        self._writer.set(1 if holding else 0)

    def set_nodes(self, counts: dict[NodeStatus, int]) -> None:
        """Publish the per-status node gauges."""
        for status, count in counts.items():
            self._nodes.labels(self.base.service, status.value).set(count)


class _HeartbeatCounts(Collector):
    """Exposes ``vaultmesh_fleet_heartbeats_total{outcome}`` from FleetMetrics' ints."""

    def __init__(self, metrics: FleetMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """One counter family with the accepted and rejected totals."""
        family = CounterMetricFamily(
            "vaultmesh_fleet_heartbeats",
            "Heartbeats read from the HEARTBEATS stream, by outcome.",
            labels=["service", "outcome"],
        )
        service = self._metrics.base.service
        family.add_metric([service, "accepted"], self._metrics.heartbeats_accepted)
        family.add_metric([service, "rejected"], self._metrics.heartbeats_rejected)
        yield family
