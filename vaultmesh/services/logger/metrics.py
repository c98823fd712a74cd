"""The logger's own Prometheus metrics (in the service's registry)."""

from __future__ import annotations

from vaultmesh.services.logger.delivery import BatchPlan
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
        self.aged_out = metrics.counter(
            "vaultmesh_logger_aged_out_total",
            "Stream sequences gone (retention) before the logger read them.",
            ["stream"],
        )
        self.reanchors = metrics.counter(
            "vaultmesh_logger_reanchors_total", "Consumers re-created after a gap.", ["stream"]
        )
        self.checkpoints = metrics.counter("vaultmesh_logger_checkpoints_total", "Checkpoints.")
        self.write_errors = metrics.counter("vaultmesh_logger_write_errors_total", "Failed writes.")
        self.size = metrics.gauge("vaultmesh_logger_tree_size", "Entries in the log.")
        self.signed = metrics.gauge("vaultmesh_logger_signed_size", "Entries under a checkpoint.")
        self.service = name

    def record(self, plan: BatchPlan, log_size: int) -> None:
        """Count one committed batch."""
        for msg in plan.accept:
            self.written.labels(self.service, msg.stream).inc()
        for stream, count in plan.aged_out.items():
            self.aged_out.labels(self.service, stream).inc(count)
        if plan.duplicates:
            self.duplicates.labels(self.service).inc(plan.duplicates)
        self.size.labels(self.service).set(log_size)
