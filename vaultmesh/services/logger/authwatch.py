"""The logger's watch on failed NATS logins (a bus adapter; see ``authfail``).

A second connection, as the ``monitor`` user of the system account (it may only
subscribe to the auth-failure advisories), receives every refused login of every
server in the cluster. Each admitted advisory is published as an audit record on
AUDIT through the logger's own connection, so it lands in the signed log like any
other record, and is counted in ``vaultmesh_logger_nats_auth_errors_total{result}``
(``recorded``, ``suppressed``, ``failed``, ``malformed``). Without monitor
credentials the watch is off (said once at start).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from vaultmesh.services.logger.authfail import ACTION, SERVICE, Throttle, auth_error_record
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.codec import MSG_ID_HEADER
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.runtime import Lifecycle

log = logging.getLogger(__name__)


class AuthWatch(Lifecycle):
    """Subscribes to auth-failure advisories and audits them; ``start``/``stop`` idempotent."""

    def __init__(
        self,
        settings: BusSettings | None,
        js: JetStreamContext,
        clock: Clock,
        metrics: ServiceMetrics,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._settings, self._js, self._clock = settings, js, clock
        self._throttle = Throttle(clock)
        self._timeout = timeout
        self._nc: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.counted = metrics.counter(
            "vaultmesh_logger_nats_auth_errors_total",
            "Refused NATS logins seen in the server's advisories, by what became of them.",
            ["result"],
        )
        self._service = metrics.service

    async def start(self) -> None:
        """Connect as the monitor and subscribe (off without monitor credentials)."""
        if self._nc is not None:
            return
        if self._settings is None:
            log.info("failed NATS logins are not audited: no monitor credentials")
            return
        try:
            self._nc = await bus.connect(self._settings, "vaultmesh-logger-monitor")
        except Unavailable as exc:
            # The log matters more than this watch: go on without it, loudly.
            log.error("failed NATS logins are not audited: %s", exc)
            return
        await self._nc.subscribe(subjects.NATS_AUTH_ERROR_ALL, cb=self._on_advisory)
        await self._nc.flush()

    async def stop(self) -> None:
        """Let pending records go out, then close the monitor connection."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._timeout)
        nc, self._nc = self._nc, None
        if nc is not None:
            await bus.close(nc)

    async def _on_advisory(self, msg: Msg) -> None:
        if not self._throttle.admit():
            self._count("suppressed")
            return
        try:
            advisory: Any = orjson.loads(msg.data)
            record = auth_error_record(advisory, self._clock, self._throttle.take_suppressed())
        except (orjson.JSONDecodeError, ValueError, TypeError):
            self._count("malformed")
            return
        task = asyncio.create_task(self._publish(record.model_dump_json().encode(), record.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, body: bytes, msg_id: str | None) -> None:
        try:
            await self._js.publish(
                subjects.audit(SERVICE, ACTION),
                body,
                timeout=self._timeout,
                stream=subjects.STREAM_AUDIT,
                headers={MSG_ID_HEADER: msg_id} if msg_id else None,
            )
        except (NatsError, TimeoutError) as exc:
            log.warning("failed login not audited", extra={"error": type(exc).__name__})
            self._count("failed")
            return
        self._count("recorded")

    def _count(self, result: str) -> None:
        self.counted.labels(self._service, result).inc()
