"""The logger's own Prometheus metrics (in the service's registry)."""

from __future__ import annotations

from vaultmesh.services.logger.delivery import BatchPlan
from vaultmesh.services.logger.gaps import Gap
from vaultmesh.shared.metrics import ServiceMetrics


class CaptureMetrics:
    """The logger's own metrics."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        name = metrics.service
        self.written = metrics.counter(
            "vaultmesh_logger_entries_total", "Entries written to the log.", ["stream"]
        )
        self.duplicates = metrics.counter(
            "vaultmesh_logger_duplicates_total", "Redelivered messages skipped."
        )
        self.gaps = metrics.counter(
            "vaultmesh_logger_stream_gaps_total",
            "Gaps in a stream's sequence, each recorded as a signed gap entry.",
            ["stream"],
        )
        self.missing = metrics.counter(
            "vaultmesh_logger_missing_messages_total",
            "Stream sequences gone (aged out, deleted or purged) before the logger read them.",
            ["stream"],
        )
        self.gap_alerts = metrics.counter(
            "vaultmesh_logger_gap_alerts_total",
            "Alerts about gaps published: audit record or incident event, stored or failed.",
            ["channel", "result"],
        )
        self.reanchors = metrics.counter(
            "vaultmesh_logger_reanchors_total", "Consumers re-created after a gap.", ["stream"]
        )
        self.checkpoints = metrics.counter("vaultmesh_logger_checkpoints_total", "Checkpoints.")
        self.write_errors = metrics.counter("vaultmesh_logger_write_errors_total", "Failed writes.")
        self.adopted = metrics.counter(
            "vaultmesh_logger_adopted_entries_total",
            "Entries copied from the replicated log into the local one (restore or catch-up).",
        )
        self.replica_errors = metrics.counter(
            "vaultmesh_logger_replica_errors_total",
            "Publishes to the replicated log that failed (the writer then levels and retries).",
        )
        self.fenced = metrics.gauge(
            "vaultmesh_logger_fenced", "1 when another logger claimed the log and this one stopped."
        )
        self.size = metrics.gauge("vaultmesh_logger_tree_size", "Entries in the log.")
        self.signed = metrics.gauge("vaultmesh_logger_signed_size", "Entries under a checkpoint.")
        self.service = name

    def record(self, plan: BatchPlan, gaps: list[Gap], log_size: int) -> None:
        """Count one committed batch."""
        for msg in plan.accept:
            self.written.labels(self.service, msg.stream).inc()
        for gap in gaps:
            self.gaps.labels(self.service, gap.stream).inc()
            self.missing.labels(self.service, gap.stream).inc(gap.missing)
        if plan.duplicates:
            self.duplicates.labels(self.service).inc(plan.duplicates)
        self.size.labels(self.service).set(log_size)
