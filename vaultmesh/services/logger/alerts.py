"""Raising the alarm about a gap: an audit record on AUDIT and an incident on EVENTS.

The gap entry in the log is the evidence (see ``gaps``); these are the alarm,
so that someone looks now rather than at the next ``logs verify``:

- ``audit.logger.stream_gap``, severity critical (the logger may publish
  ``audit.logger.*``): the logger captures it too, so it is also in the log;
- an ``incident`` event about no node (``fleet.event.incident._``) for the
  dashboard, when enabled (``VAULTMESH_LOGGER_GAP_INCIDENTS``; the logger's NATS
  identity needs permission to publish that subject).

Both are published in the background with a JetStream acknowledgement, so the
writer never waits on them; each outcome is counted in
``vaultmesh_logger_gap_alerts_total{channel, result}`` and a failure is logged.
The message id is derived from the gap, so a retried alert is stored once.
"""

from __future__ import annotations

import asyncio
import logging

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from vaultmesh.services.logger.gaps import GAP_EVENT, GAP_SEVERITY, Gap
from vaultmesh.services.logger.metrics import CaptureMetrics
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.codec import MSG_ID_HEADER
from vaultmesh.shared.models.audit import AuditRecord, Outcome
from vaultmesh.shared.models.events import EventEnvelope, EventKind

log = logging.getLogger(__name__)

SERVICE = "logger"
AUTHOR = "logger"
TAG = "audit-gap"


def gap_record(gap: Gap, log_seq: int, clock: Clock) -> AuditRecord:
    """The audit record announcing ``gap`` (recorded as log entry ``log_seq``)."""
    return AuditRecord(
        ts=clock.now(),
        id=f"{SERVICE}-gap-{gap.stream}-{gap.first}-{gap.last}",
        service=SERVICE,
        action=GAP_EVENT,
        outcome=Outcome.ERROR,
        severity=GAP_SEVERITY,
        code=GAP_EVENT,
        detail={**gap.to_json(), "log_seq": log_seq},
    )


def gap_incident(gap: Gap, log_seq: int, clock: Clock) -> EventEnvelope:
    """The incident event announcing ``gap``."""
    return EventEnvelope.create(
        kind=EventKind.INCIDENT,
        author=AUTHOR,
        severity=GAP_SEVERITY,
        body=(
            f"Audit log gap: {gap.describe()} missing (deleted, purged or aged out before "
            f"the logger read them); recorded as log entry {log_seq}."
        ),
        tags=[TAG],
        data={**gap.to_json(), "log_seq": log_seq},
        ts=clock.now(),
    )


class GapAlerts:
    """Publishes the alarms about gaps in the background."""

    def __init__(
        self,
        js: JetStreamContext,
        clock: Clock,
        metrics: CaptureMetrics,
        *,
        incidents: bool,
        timeout: float = 5.0,
    ) -> None:
        self._js, self._clock, self._metrics = js, clock, metrics
        self._incidents = incidents
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def raise_gap(self, gap: Gap, log_seq: int) -> None:
        """Queue the alarms for ``gap``; never blocks."""
        record = gap_record(gap, log_seq, self._clock)
        assert record.id is not None
        self._spawn(
            "audit",
            subjects.audit(SERVICE, GAP_EVENT),
            subjects.STREAM_AUDIT,
            record.model_dump_json().encode(),
            record.id,
        )
        if self._incidents:
            event = gap_incident(gap, log_seq, self._clock)
            self._spawn(
                "event",
                subjects.event(event.kind.value),
                subjects.STREAM_EVENTS,
                event.model_dump_json().encode(),
                event.id,
            )

    def _spawn(self, channel: str, subject: str, stream: str, body: bytes, msg_id: str) -> None:
        task = asyncio.create_task(self._publish(channel, subject, stream, body, msg_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(
        self, channel: str, subject: str, stream: str, body: bytes, msg_id: str
    ) -> None:
        try:
            await self._js.publish(
                subject,
                body,
                timeout=self._timeout,
                stream=stream,
                headers={MSG_ID_HEADER: msg_id},
            )
        except (NatsError, TimeoutError) as exc:
            log.warning(
                "gap alert not stored",
                extra={"subject": subject, "error": type(exc).__name__},
            )
            result = "failed"
        else:
            result = "stored"
        self._metrics.gap_alerts.labels(self._metrics.service, channel, result).inc()

    async def flushed(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) for the alerts being published."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
