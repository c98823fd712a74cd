"""Audit records of vault requests, published to JetStream (stream AUDIT) with acknowledgement.

A record names the principal, the operation, an HMAC of the key name (never the
name or the value; the HMAC key is derived from the master key), the outcome
and the latency. Two modes:

- best effort (default): ``submit`` queues the record and returns at once; a
  background task publishes what is queued as one JetStream fast-ingest batch
  (one acknowledgement per burst, see ``shared/fastpub.py``), retrying with
  backoff while JetStream is away, in the order the requests were served.
  Records survive a NATS outage (up to ``queue_size``, beyond that they are
  dropped and counted) but not a crash of the vault process before they are
  acknowledged. Delivery is at least once: every record carries a unique ``id``,
  and a batch re-sent after its acknowledgement was lost may store some records
  twice, with the same id (a ``Nats-Msg-Id`` per record would let the stream drop
  those, but costs the vault and the server about a tenth of a ``get``).
- fail-closed: the service awaits ``write`` (publish + ack) and fails the request
  when it raises, so no secret is returned and no change is made without a stored
  record (see ``service.py`` for the order of events).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import uuid4

import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError

from vaultmesh.shared import subjects
from vaultmesh.shared.clock import rfc3339
from vaultmesh.shared.codec import MSG_ID_HEADER
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.fastpub import BatchPublisher, Message
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.audit import Outcome
from vaultmesh.shared.models.common import Severity
from vaultmesh.shared.runtime import Lifecycle
from vaultmesh.shared.streams import StreamLimits, audit_config, ensure_stream

log = logging.getLogger(__name__)
SERVICE = "vault"
_MAX_BACKOFF = 5.0
_MAX_BATCH = 256  # records per fast-ingest batch
_DIGESTS_KEPT = 4096  # key-name HMACs remembered
_SERIOUS = frozenset({"integrity", "internal"})


@dataclass(slots=True)
class AuditEntry:
    """What happened; ``key`` stays in memory and is HMAC'd when the record is built."""

    ts: datetime
    principal: str
    action: str
    outcome: Outcome
    key: str | None = None
    code: str | None = None
    latency_ms: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


# (number, entry): the number orders retries and makes the record id.
Queued = tuple[int, AuditEntry]


def _severity(entry: AuditEntry) -> Severity:
    if entry.outcome is Outcome.ALLOWED:
        return Severity.INFO
    if entry.outcome is Outcome.DENIED:
        return Severity.WARNING
    return Severity.ERROR if entry.code in _SERIOUS else Severity.NOTICE


class AuditTrail(Lifecycle):
    """Builds audit records and gets them into stream AUDIT."""

    def __init__(
        self,
        nc: Client,
        metrics: ServiceMetrics,
        *,
        fail_closed: bool = False,
        timeout: float = 2.0,
        queue_size: int = 10_000,
        replicas: int = 1,
    ) -> None:
        self.fail_closed = fail_closed
        self._js = nc.jetstream()
        self._pipe: BatchPublisher[Queued] = BatchPublisher(nc, self._stored, self._failed, timeout)
        self._hmac_key: bytes | None = None  # set by use_hmac_key once the keyring is open
        self._digests: dict[str, str] = {}
        self._subjects: dict[str, str] = {}
        self._timeout = timeout
        self._replicas = replicas
        self._queue: deque[Queued] = deque()
        self._ids = itertools.count(1)
        self._dropped = 0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._id_prefix = uuid4().hex[:16] + "-"
        self._queue_size = queue_size
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._records = metrics.counter(
            "vaultmesh_vault_audit_records_total",
            "Audit records by result: stored, retried (a failed attempt) or dropped.",
            ["result"],
        )
        self._service = metrics.service

    async def flushed(self) -> None:
        """Wait until every queued record has been acknowledged."""
        await self._drained.wait()

    @property
    def pending(self) -> int:
        """Records queued or in flight, not yet acknowledged."""
        return len(self._queue) + self._pipe.in_flight

    def use_hmac_key(self, hmac_key: bytes) -> None:
        """Set the key of ``key_hmac`` (the keyring's ``audit_key``, once it is loaded)."""
        self._hmac_key = hmac_key
        self._digests.clear()

    def key_hmac(self, key: str) -> str:
        """HMAC-SHA256 of a key name (hex), comparable across records, not reversible."""
        found = self._digests.get(key)
        if found is None:
            if self._hmac_key is None:
                raise RuntimeError("the audit HMAC key is not set (the vault is not open)")
            # Services read the same keys over and over: keep the last few thousand.
            if len(self._digests) >= _DIGESTS_KEPT:
                self._digests.clear()
            found = hmac.digest(self._hmac_key, key.encode("utf-8"), "sha256").hex()
            self._digests[key] = found
        return found

    def record(self, entry: AuditEntry, record_id: str | None = None) -> dict[str, Any]:
        """The wire form of ``entry``: the fields of ``AuditRecord`` (built without the model,
        as this runs once per request; the tests check it validates as one)."""
        return {
            "ts": rfc3339(entry.ts),
            "id": record_id,
            "service": SERVICE,
            "action": entry.action,
            "principal": entry.principal,
            # String enums: orjson writes them as their values (no .value lookups here).
            "outcome": entry.outcome,
            "severity": _severity(entry),
            "node_id": None,
            "key_hmac": None if entry.key is None else self.key_hmac(entry.key),
            "code": entry.code,
            "latency_ms": entry.latency_ms,
            "detail": dict(entry.detail),
        }

    async def start(self) -> None:
        """Ensure stream AUDIT exists and start the background publisher (idempotent)."""
        if self._tasks:
            return
        try:
            await ensure_stream(self._js, audit_config(StreamLimits(replicas=self._replicas)))
        except (NatsError, TimeoutError) as exc:
            if self.fail_closed:
                raise Unavailable("cannot reach stream AUDIT (fail-closed audit)") from None
            log.warning("stream AUDIT not ensured; will retry", extra={"error": type(exc).__name__})
        await self._pipe.start()
        self._tasks = [
            asyncio.create_task(self._run(), name="vault-audit"),
            asyncio.create_task(self._sweep(), name="vault-audit-timeouts"),
        ]

    async def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued (up to ``timeout``), then stop; idempotent."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lost = len(self._queue) + len(await self._pipe.stop())
        if lost:
            log.error("audit records not published at stop", extra={"count": lost})
            self._records.labels(self._service, "dropped").inc(lost)

    def submit(self, entry: AuditEntry) -> None:
        """Queue ``entry`` for publishing (best effort); never blocks."""
        if len(self._queue) >= self._queue_size:
            self._records.labels(self._service, "dropped").inc()
            self._dropped += 1
            if self._dropped % 1000 == 1:  # log the first drop, then every thousandth
                log.error("audit queue full; records dropped", extra={"dropped": self._dropped})
            return
        self._queue.append((next(self._ids), entry))
        self._drained.clear()
        if not self._pipe.full:
            self._wake.set()

    async def write(self, entry: AuditEntry) -> None:
        """Publish ``entry`` and wait for its acknowledgement; Unavailable when it fails."""
        number = next(self._ids)
        # One publish, one ack: here the stream can drop a repeat by its id.
        headers = {MSG_ID_HEADER: self._record_id(number)}
        try:
            await self._js.publish(
                self._subject(entry.action),
                self._encoded(entry, number),
                timeout=self._timeout,
                headers=headers,
            )
        except (NatsError, TimeoutError) as exc:
            self._records.labels(self._service, "retried").inc()
            log.error("audit record not stored", extra={"error": type(exc).__name__})
            raise Unavailable("audit log unavailable; request refused (fail-closed)") from None
        self._records.labels(self._service, "stored").inc()

    def _record_id(self, number: int) -> str:
        return f"{self._id_prefix}{number}"

    def _encoded(self, entry: AuditEntry, number: int) -> bytes:
        return orjson.dumps(self.record(entry, self._record_id(number)))

    def _subject(self, action: str) -> str:
        subject = self._subjects.get(action)
        if subject is None:  # actions are a small fixed set (operations + "unknown")
            subject = self._subjects[action] = subjects.audit(SERVICE, action)
        return subject

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the reply that queued this record be flushed first
            if self._retry_at > loop.time():
                await asyncio.sleep(self._retry_at - loop.time())
            while self._queue and not self._pipe.full:
                take = min(len(self._queue), _MAX_BATCH)
                batch = [self._message(self._queue.popleft()) for _ in range(take)]
                try:
                    await self._pipe.publish(batch)
                except (NatsError, TimeoutError):
                    self._failed([m.item for m in batch])
                    break
            self._check_drained()

    def _message(self, item: Queued) -> Message[Queued]:
        # Encoded only now, after the reply that queued it went out. The record id is
        # the same on every attempt; no Nats-Msg-Id (see the module docstring).
        number, entry = item
        return Message(item, self._subject(entry.action), self._encoded(entry, number))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._timeout / 2)
            self._pipe.expire()

    def _stored(self, items: list[Queued]) -> None:
        """Records the stream acknowledged (one batch)."""
        self._records.labels(self._service, "stored").inc(len(items))
        self._backoff = 0.0
        if self._queue:
            self._wake.set()
        self._check_drained()

    def _failed(self, items: list[Queued]) -> None:
        """Records to publish again, ahead of newer ones and in the order they were served."""
        if self._queue and self._queue[0][0] < items[-1][0]:
            self._queue = deque(sorted([*items, *self._queue], key=lambda item: item[0]))
        else:
            self._queue.extendleft(reversed(items))
        self._records.labels(self._service, "retried").inc(len(items))
        if self._backoff == 0.0:
            log.warning("audit records not acknowledged; retrying with backoff")
        self._backoff = min(max(self._backoff * 2, 0.1), _MAX_BACKOFF)
        self._retry_at = asyncio.get_running_loop().time() + self._backoff
        self._wake.set()

    def _check_drained(self) -> None:
        if not self._queue and self._pipe.in_flight == 0:
            self._drained.set()
