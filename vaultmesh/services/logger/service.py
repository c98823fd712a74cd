"""The logger's bus side: the ``logs`` micro service, and the builder that wires it up.

Handlers are thin: validate (the runtime does it with the request models),
resolve times against the injected clock, run the query or proof in a worker
thread (never blocking the writer), encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import StreamConfig
from pydantic import BaseModel

from vaultmesh.services.logger import query, timespec
from vaultmesh.services.logger.alerts import GapAlerts
from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.authwatch import AuthWatch
from vaultmesh.services.logger.capture import Capture
from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.errors import LogCorrupt, SigningKeyError
from vaultmesh.services.logger.merkle import ProofError
from vaultmesh.services.logger.metrics import CaptureMetrics
from vaultmesh.services.logger.models import (
    CheckpointRequest,
    EntryFilter,
    EntryList,
    ProofRequest,
    Stats,
    StatsRequest,
    ViewRequest,
)
from vaultmesh.services.logger.signing import Signer, load_signing_key
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import BadRequest, NotFound, Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import Call, Endpoint, Handler, MicroService
from vaultmesh.shared.runtime import Builder
from vaultmesh.shared.streams import StreamLimits, audit_config, events_config


def make_filter(req: EntryFilter, now: Any, **cursors: int | None) -> query.Filter:
    """The scan filter for a request, with its times resolved at ``now``."""
    return query.Filter(
        kind=req.kind,
        node=req.node,
        subject=req.subject,
        since=timespec.resolve(req.since, now),
        until=timespec.resolve(req.until, now),
        min_severity=req.min_severity.value if req.min_severity else None,
        **cursors,
    )


class LogsApi:
    """Handlers of the ``logs`` endpoints."""

    def __init__(self, capture: Capture, clock: Clock) -> None:
        self._capture = capture
        self._clock = clock

    @property
    def _log(self) -> AuditLog:
        return self._capture.log

    def endpoints(self) -> list[Endpoint]:
        """The micro endpoints, on ``subjects.logs_api(op)``."""
        ops: list[tuple[str, Handler, type[BaseModel]]] = [
            ("view", self.view, ViewRequest),
            ("stats", self.stats, StatsRequest),
            ("proof", self.proof, ProofRequest),
            ("checkpoint", self.checkpoint, CheckpointRequest),
        ]
        return [
            Endpoint(name, subjects.logs_api(name), handler, model, concurrent=True)
            for name, handler, model in ops
        ]

    async def view(self, call: Call) -> EntryList:
        """Entries matching the filters; with ``after_seq`` and ``wait_s``, a long poll."""
        req: ViewRequest = call.payload
        wait = req.wait_s if req.after_seq is not None else 0.0
        deadline = time.monotonic() + wait
        newest = req.order == "newest"
        while True:
            committed = self._capture.next_commit()
            flt = make_filter(
                req, self._clock.now(), after_seq=req.after_seq, before_seq=req.before_seq
            )
            snap = self._log.snapshot()
            entries = await asyncio.to_thread(query.view, snap, flt, req.limit, newest)
            left = deadline - time.monotonic()
            if entries or left <= 0 or self._capture.closing:
                return EntryList(entries=entries, size=snap.size)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(committed.wait(), left)

    async def stats(self, call: Call) -> Stats:
        """Counts per node, kind and severity over a window."""
        req: StatsRequest = call.payload
        flt = make_filter(req, self._clock.now())
        snap = self._log.snapshot()
        counts = await asyncio.to_thread(query.stats, snap, flt)
        return Stats(**counts, since=flt.since, until=flt.until, size=snap.size)

    async def proof(self, call: Call) -> dict[str, Any]:
        """An inclusion or consistency proof."""
        req: ProofRequest = call.payload
        try:
            if req.type == "inclusion":
                assert req.seq is not None
                work = functools.partial(self._log.inclusion, req.seq, req.tree_size)
            else:
                assert req.first is not None
                work = functools.partial(self._log.consistency, req.first, req.second)
            return {"type": req.type, **await asyncio.to_thread(work)}
        except ProofError as exc:
            raise BadRequest(str(exc)) from None

    async def checkpoint(self, call: Call) -> dict[str, Any]:
        """The latest (or a given) signed checkpoint and the key that verifies it."""
        req: CheckpointRequest = call.payload
        if req.create:
            await self._capture.checkpoint()
        chain = self._log.chain
        cp = chain.latest if req.tree_size is None else chain.at_size(req.tree_size)
        if cp is None:
            raise NotFound("no such checkpoint" if req.tree_size else "no checkpoint yet")
        return {
            "checkpoint": cp.to_json(),
            "note": cp.note(),
            "public_key": self._log.public_key_pem,
            "size": self._log.size,
        }


class LoggerService:
    """The logger component: stream capture plus the query service."""

    def __init__(
        self, capture: Capture, micro: MicroService, nc: Client, watch: AuthWatch | None = None
    ) -> None:
        self._nc = nc
        self._capture = capture
        self._micro = micro
        self.watch = watch

    @property
    def log(self) -> AuditLog:
        """The audit log being written."""
        return self._capture.log

    async def start(self) -> None:
        """Create the streams if needed, start capturing, then answer queries."""
        try:
            await self._capture.start()
        except NatsError as exc:
            raise Unavailable(f"JetStream is not usable: {type(exc).__name__}") from None
        await self._micro.start()
        if self.watch is not None:
            await self.watch.start()
        # Ready means the server has the endpoint subscriptions, not just that they were sent.
        await self._nc.flush()

    async def stop(self) -> None:
        """Stop answering, write what was fetched, sign a last checkpoint, close."""
        self._capture.release_waiters()
        if self.watch is not None:
            await self.watch.stop()
        await self._micro.stop()
        await self._capture.stop()
        self._capture.log.close()


def _signer(settings: LoggerSettings) -> Signer:
    try:
        return Signer(load_signing_key(settings.logger_signing_key_file))
    except SigningKeyError as exc:
        raise ConfigError(f"VAULTMESH_LOGGER_SIGNING_KEY_FILE: {exc}") from None


def _streams(settings: LoggerSettings) -> list[StreamConfig]:
    limits = StreamLimits(replicas=settings.stream_replicas)
    configs = [audit_config(limits)]
    if settings.logger_capture_events:
        configs.append(events_config(limits))
    return configs


async def _open(open_log: Callable[[], AuditLog], directory: Path) -> AuditLog:
    try:
        return await asyncio.to_thread(open_log)
    except LogCorrupt as exc:
        raise ConfigError(
            f"log in {directory} refused: {exc}; "
            f"inspect it with `vaultmesh logs verify --dir {directory}`"
        ) from None


async def build_logger(
    nc: Client, metrics: ServiceMetrics, settings: LoggerSettings, clock: Clock
) -> LoggerService:
    """Wire the logger from a connection, metrics, settings and a clock."""
    open_log = functools.partial(
        AuditLog.open,
        settings.data_dir,
        signer=_signer(settings),
        clock=clock,
        log_id=settings.logger_log_id,
        segment_bytes=settings.logger_segment_bytes,
    )
    js = nc.jetstream()
    capture_metrics = CaptureMetrics(metrics)
    capture = Capture(
        js,
        await _open(open_log, settings.data_dir),
        streams=_streams(settings),
        batch_size=settings.logger_batch_size,
        fetch_wait=settings.logger_fetch_wait_s,
        checkpoint_interval=settings.logger_checkpoint_interval_s,
        metrics=capture_metrics,
        alerts=GapAlerts(js, clock, capture_metrics, incidents=settings.logger_gap_incidents),
        reopen=open_log,
    )
    micro = MicroService(
        nc,
        name=subjects.SERVICE_LOGS,
        description="VaultMesh audit log: view, stats, proofs, checkpoints",
        endpoints=LogsApi(capture, clock).endpoints(),
        metrics=metrics,
        queue_group=subjects.QUEUE_LOGS,
        max_request_bytes=settings.max_request_bytes,
    )
    watch = AuthWatch(settings.monitor_settings(), js, clock, metrics)
    return LoggerService(capture, micro, nc, watch)


def build_for(settings: LoggerSettings, clock: Clock | None = None) -> Builder:
    """The runtime ``Builder`` for ``settings``."""

    async def build(nc: Client, metrics: ServiceMetrics) -> LoggerService:
        """Build the logger on ``nc``."""
        return await build_logger(nc, metrics, settings, clock or SystemClock())

    return build
