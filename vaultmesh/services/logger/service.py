"""The running logger (stream capture, the ``logs`` service, the auth watch) and ``build_for``."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import StreamConfig

from vaultmesh.services.logger.alerts import GapAlerts
from vaultmesh.services.logger.api import LogsApi
from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.authwatch import AuthWatch
from vaultmesh.services.logger.capture import Capture
from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.errors import LogCorrupt, SigningKeyError, WriterFenced
from vaultmesh.services.logger.metrics import CaptureMetrics
from vaultmesh.services.logger.replica import Replica
from vaultmesh.services.logger.signing import Signer, load_signing_key
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import MicroService
from vaultmesh.shared.runtime import Builder, Lifecycle
from vaultmesh.shared.streams import StreamLimits, audit_config, events_config, logger_log_config


class LoggerService(Lifecycle):
    """The logger component: stream capture plus the query service."""

    def __init__(
        self, capture: Capture, micro: MicroService, nc: Client, watch: AuthWatch | None = None
    ) -> None:
        self._nc = nc
        self._capture = capture
        self._micro = micro
        self.watch = watch
        self._standing_down: asyncio.Task[None] | None = None
        capture.on_fenced = self._fenced

    @property
    def fenced(self) -> bool:
        """True once another logger claimed the log and this one stopped writing."""
        return self._capture.fenced

    def _fenced(self) -> None:
        self._standing_down = asyncio.get_running_loop().create_task(self._stand_down())

    async def _stand_down(self) -> None:
        # Queries would read a log that no longer grows: leave them to the new writer. The
        # process stays (idle, ``vaultmesh_logger_fenced`` 1) until it is stopped: ending it
        # would have a restart policy start it again, and the restarted one would claim the
        # log back from the writer that replaced it.
        if self.watch is not None:
            await self.watch.stop()
        await self._micro.stop()

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
        except WriterFenced as exc:
            raise Unavailable(str(exc)) from None
        except LogCorrupt as exc:
            raise ConfigError(
                f"log in {self.log.directory} refused: {exc}; inspect it with "
                f"`vaultmesh logs verify --dir {self.log.directory}`, or move it aside: "
                "the logger then rebuilds it from the replicated log"
            ) from None
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


def _writer_id() -> str:
    """Names this process in its claim of the log (for an operator reading the stream)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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


async def _build(
    nc: Client, metrics: ServiceMetrics, settings: LoggerSettings, clock: Clock
) -> LoggerService:
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
    limits = StreamLimits(replicas=settings.stream_replicas)
    replica = Replica(js, logger_log_config(limits), writer=_writer_id())
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
        replica=replica,
        max_payload=nc.max_payload,
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
    """The logger's builder for ``settings`` (the real clock by default)."""

    async def build(nc: Client, metrics: ServiceMetrics) -> LoggerService:
        return await _build(nc, metrics, settings, clock or SystemClock())

    return build
