"""Capture: the single writer that turns fetched batches into durable log entries.

Each stream has a ``Feed`` (a durable pull consumer, ``AckPolicy.ALL``, see
``feed``). The log on disk, not the consumer, is the source of truth for where
to resume: at start, after a gap, or when a consumer vanished, the consumer is
re-created at the log's high-water mark + 1, so a crash never waits for an ack
timeout and never reorders. Feeds put batches on a bounded queue; the writer
plans each batch (see ``delivery``), commits it in a worker thread (one write,
one fsync, the tree), and only then acknowledges: one ack per stream per batch.
Between batches the writer signs checkpoints on schedule. A gap in a stream's
sequence is written as a gap entry (``gaps``), signed at once, and announced
(``alerts``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from vaultmesh.services.logger.alerts import GapAlerts
from vaultmesh.services.logger.auditlog import AuditLog, Committed
from vaultmesh.services.logger.delivery import BatchPlan, plan_batch
from vaultmesh.services.logger.errors import LoggerError
from vaultmesh.services.logger.feed import QUEUE_BATCHES, RETRY_S, Feed, Fetched, to_incoming
from vaultmesh.services.logger.metrics import CaptureMetrics
from vaultmesh.shared.runtime import Lifecycle
from vaultmesh.shared.streams import ensure_stream
from vaultmesh.shared.subjects import STREAM_AUDIT

log = logging.getLogger(__name__)


class Capture(Lifecycle):
    """The feeds plus the single writer task."""

    def __init__(
        self,
        js: JetStreamContext,
        auditlog: AuditLog,
        *,
        streams: list[StreamConfig],
        batch_size: int,
        fetch_wait: float,
        checkpoint_interval: float,
        metrics: CaptureMetrics,
        alerts: GapAlerts,
        reopen: Callable[[], AuditLog],
    ) -> None:
        self.log = auditlog
        self._js = js
        self._io = asyncio.Lock()  # one commit, checkpoint or reset at a time
        self._queue: asyncio.Queue[Fetched] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self._configs = {str(config.name): config for config in streams}
        self._feeds = {
            name: Feed(js, name, batch_size, fetch_wait, self._queue) for name in self._configs
        }
        self._batch = batch_size
        self._interval = checkpoint_interval
        self._metrics = metrics
        self._alerts = alerts
        self._reopen = reopen
        self._fresh: set[str] = set()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Set (and replaced) after every commit: what long-polling queries wait on.
        self._committed = asyncio.Event()
        self.closing = False
        self._next_checkpoint = time.monotonic() + checkpoint_interval

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Create the streams if needed, anchor every consumer, start writing (idempotent)."""
        if self._writer is not None:
            return
        for feed in self._feeds.values():
            await self._anchor(feed)
        self._writer = asyncio.create_task(self._write_loop())

    def next_commit(self) -> asyncio.Event:
        """An event set by the next commit (take it before reading the log, then wait)."""
        return self._committed

    def release_waiters(self) -> None:
        """Answer every long-polling query now (the service is stopping)."""
        self.closing = True
        self._announce()

    def _announce(self) -> None:
        committed, self._committed = self._committed, asyncio.Event()
        committed.set()

    async def stop(self) -> None:
        """Stop fetching, write what was fetched, sign a last checkpoint (idempotent)."""
        for feed in self._feeds.values():
            await feed.stop()
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._stopping.set()
        await writer
        await self.checkpoint()
        await self._alerts.flushed()

    async def checkpoint(self) -> None:
        """Sign a checkpoint now if the log grew."""
        async with self._io:
            cp = await asyncio.to_thread(self.log.checkpoint)
        self._next_checkpoint = time.monotonic() + self._interval
        if cp is not None:
            self._metrics.checkpoints.labels(self._metrics.service).inc()
            self._metrics.signed.labels(self._metrics.service).set(cp.tree_size)

    # ---- anchoring -------------------------------------------------------------------

    async def _anchor(self, feed: Feed) -> None:
        stream = feed.stream
        # It may have been deleted. The logger owns AUDIT's tuning; EVENTS belongs to fleet-state.
        await ensure_stream(self._js, self._configs[stream], owner=stream == STREAM_AUDIT)
        mark, info = self.log.hwm(stream), await self._js.stream_info(stream)
        created = info.created.isoformat() if info.created else ""
        known = self.log.stream_created.get(stream, created)
        # A stream that was deleted and re-created starts its sequence again.
        if mark and (created != known or info.state.last_seq < mark):
            log.warning("stream was re-created", extra={"stream": stream, "mark": mark})
            async with self._io:
                await asyncio.to_thread(self.log.reset_stream, stream)
            mark = 0
        self.log.stream_created[stream] = created
        await feed.anchor(mark + 1)
        self._fresh.add(feed.stream)

    async def _reanchor(self, feed: Feed) -> None:
        """Anchor ``feed`` again, retrying while the bus is unhappy."""
        while not self._stopping.is_set():
            try:
                await self._anchor(feed)
                return
            except NatsError as exc:
                log.warning("re-anchoring failed", extra={"stream": feed.stream, "error": str(exc)})
                await asyncio.sleep(RETRY_S)

    # ---- writing ---------------------------------------------------------------------

    async def _next_items(self) -> list[Fetched]:
        timeout = max(0.0, self._next_checkpoint - time.monotonic())
        try:
            first = await asyncio.wait_for(self._queue.get(), min(timeout, 0.5))
        except TimeoutError:
            return []
        items, count = [first], len(first.messages)
        while count < self._batch and not self._queue.empty():
            item = self._queue.get_nowait()
            items.append(item)
            count += len(item.messages)
        return items

    async def _write_loop(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            try:
                await self._write_once()
            except Exception:  # keep capturing; the next batch or a restart recovers
                log.exception("writer iteration failed")
                await asyncio.sleep(RETRY_S)

    async def _write_once(self) -> None:
        items = [it for it in await self._next_items() if it.epoch == it.feed.epoch]
        messages = [m for it in items for m in it.messages]
        if messages:
            await self._commit(messages)
        for item in items:
            if item.lost:
                await self._reanchor(item.feed)
        if time.monotonic() >= self._next_checkpoint:
            await self.checkpoint()

    async def _commit(self, messages: list[Msg]) -> None:
        try:
            async with self._io:
                plan, committed = await asyncio.to_thread(self._plan_and_write, messages)
        except OSError:
            log.exception("log write failed; reopening the log")
            self._metrics.write_errors.labels(self._metrics.service).inc()
            await self._recover()
            return
        try:
            for index in plan.ack.values():
                await messages[index].ack()
        except NatsError as exc:  # written but not acked: redelivered later, then skipped
            log.warning("ack failed", extra={"error": type(exc).__name__})
        self._metrics.record(plan, [gap for _seq, gap in committed.gaps], self.log.size)
        if plan.accept:
            self._announce()
        if committed.gaps:
            await self._gaps_found(committed)
        for stream in plan.reanchor:
            log.warning("delivery gap; re-anchoring", extra={"stream": stream})
            self._metrics.reanchors.labels(self._metrics.service, stream).inc()
            await self._reanchor(self._feeds[stream])

    def _plan_and_write(self, messages: list[Msg]) -> tuple[BatchPlan, Committed]:
        incoming = [to_incoming(m) for m in messages]
        hwm = {stream: self.log.hwm(stream) for stream in self._feeds}
        plan = plan_batch(incoming, hwm, self._fresh)
        committed = self.log.commit(plan.accept)
        self._fresh = plan.fresh
        return plan, committed

    async def _gaps_found(self, committed: Committed) -> None:
        """Raise the alarm, and sign the gap entries now rather than at the next interval."""
        for seq, gap in committed.gaps:
            log.error(
                "stream gap: messages missing before the logger read them; recorded in the log",
                extra={**gap.to_json(), "log_seq": seq},
            )
            self._alerts.raise_gap(gap, seq)
        await self.checkpoint()

    async def _recover(self) -> None:
        """Reopen the log from disk (as after a crash) and re-anchor every consumer."""
        for feed in self._feeds.values():
            await feed.stop()
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                old, self.log = self.log, await asyncio.to_thread(self._reopen)
            except (OSError, LoggerError):
                log.exception("reopening the log failed; retrying")
                continue
            old.close()
            break
        for feed in self._feeds.values():
            await self._reanchor(feed)
