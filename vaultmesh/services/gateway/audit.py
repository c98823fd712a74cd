"""Audit records of what people do through the gateway: sign-ins, posted events, deletions.

DESIGN.md has every service publish ``audit.<service>.<action>``; the logger
keeps stream AUDIT in its tamper-evident log. The gateway records

- ``audit.gateway.login``: each sign-in attempt — allowed (principal
  ``admin-token-<n>``), denied (``code`` "refused") or throttled — with the
  client address; never the token;
- ``audit.gateway.logout``;
- ``audit.gateway.event``: each event a person or bot posted (principal, kind,
  node, event id);
- ``audit.gateway.node_delete``: each node an admin deleted (principal, node,
  its hostname); fleet-state records ``audit.fleet.node_delete`` as well.

Best effort: the record is published (acknowledged by JetStream) in the
background, so a sign-in or a post does not wait on it; a record that cannot be
stored is logged (without its content) and counted in
``vaultmesh_gateway_audit_records_total{result="failed"}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import uuid4

from vaultmesh.services.gateway.metrics import GatewayMetrics
from vaultmesh.services.gateway.publisher import Publisher
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.errors import VaultMeshError
from vaultmesh.shared.models.audit import AuditRecord, Outcome
from vaultmesh.shared.models.common import Severity

log = logging.getLogger(__name__)
SERVICE = "gateway"
_MAX_PRINCIPAL = 128  # AuditRecord's limit; identity names are cut, not refused
_SEVERITY = {Outcome.ALLOWED: Severity.INFO, Outcome.DENIED: Severity.WARNING}


class GatewayAudit:
    """Publishes the gateway's audit records to stream AUDIT in the background."""

    def __init__(self, publisher: Publisher, clock: Clock, metrics: GatewayMetrics) -> None:
        self._publisher = publisher
        self._clock = clock
        self._records = metrics.base.counter(
            "vaultmesh_gateway_audit_records_total",
            "Gateway audit records by result: stored or failed.",
            ["result"],
        )
        self._service = metrics.service
        self._tasks: set[asyncio.Task[None]] = set()

    def record(
        self,
        action: str,
        principal: str,
        outcome: Outcome,
        *,
        code: str | None = None,
        **detail: Any,
    ) -> None:
        """Queue one record of ``action`` (a subject token) for publishing; never blocks."""
        record_id = uuid4().hex
        entry = AuditRecord(
            ts=self._clock.now(),
            id=record_id,
            service=SERVICE,
            action=action,
            principal=principal[:_MAX_PRINCIPAL],
            outcome=outcome,
            severity=_SEVERITY.get(outcome, Severity.ERROR),
            code=code,
            detail=detail,
        )
        subject = subjects.audit(SERVICE, action)
        body = entry.model_dump_json().encode()
        task = asyncio.create_task(self._publish(subject, body, record_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flushed(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) for the records being published."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _publish(self, subject: str, body: bytes, record_id: str) -> None:
        try:
            await self._publisher.publish(
                subject, body, stream=subjects.STREAM_AUDIT, msg_id=record_id
            )
        except VaultMeshError as exc:
            log.warning("audit record not stored", extra={"subject": subject, "code": exc.code})
            self._records.labels(self._service, "failed").inc()
            return
        self._records.labels(self._service, "stored").inc()
