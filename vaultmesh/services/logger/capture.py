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

Every batch and checkpoint is stored in the replicated log (``replica``) before it
is written locally: on start the local log is first levelled with the replica and
the log claimed (``catchup``). A publish that gets no answer leaves the replica's
end unknown, so the writer stops, adopts what the replica holds and re-anchors; a
publish refused because another logger claimed the log (``WriterFenced``) ends the
writing for good (``fenced``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from vaultmesh.services.logger import catchup
from vaultmesh.services.logger.alerts import GapAlerts
from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.batch import Committed, Staged
from vaultmesh.services.logger.delivery import BatchPlan, plan_batch
from vaultmesh.services.logger.errors import LoggerError, WriterFenced
from vaultmesh.services.logger.feed import QUEUE_BATCHES, RETRY_S, Feed, Fetched, to_incoming
from vaultmesh.services.logger.metrics import CaptureMetrics
from vaultmesh.services.logger.replica import Replica
from vaultmesh.shared.errors import Unavailable
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
        replica: Replica,
        max_payload: int,
    ) -> None:
        self.log = auditlog
        self._js = js
        self._replica = replica
        self._max_payload = max_payload
        self._stale = False  # a publish went unanswered: level with the replica before more
        self.fenced = False  # another logger claimed the log: this one writes no more
        self.on_fenced: Callable[[], object] | None = None
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
        await self._replica.open(self._max_payload)
        async with self._io:
            adopted, _pushed = await catchup.level_and_claim(self.log, self._replica)
        self._count_adopted(adopted)
        for feed in self._feeds.values():
            await self._anchor(feed)
        self._writer = asyncio.create_task(self._write_loop())

    def _count_adopted(self, adopted: int) -> None:
        if adopted:
            self._metrics.adopted.labels(self._metrics.service).inc(adopted)
        self._metrics.size.labels(self._metrics.service).set(self.log.size)

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
        if not (self.fenced or self._stale):  # else the next start levels the log first
            await self.checkpoint()
        await self._alerts.flushed()

    async def checkpoint(self) -> None:
        """Sign a checkpoint now if the log grew (stored in the replica, then locally)."""
        async with self._io:
            cp = await asyncio.to_thread(self.log.next_checkpoint)
            if cp is not None and await self._replicate(
                self._replica.add_checkpoint(cp, dict(self.log.stream_created))
            ):
                await asyncio.to_thread(self.log.add_checkpoint, cp)
            else:
                cp = None
        self._next_checkpoint = time.monotonic() + self._interval
        if cp is not None:
            self._metrics.checkpoints.labels(self._metrics.service).inc()
            self._metrics.signed.labels(self._metrics.service).set(cp.tree_size)

    async def _replicate(self, publish: Coroutine[Any, Any, None]) -> bool:
        """Run a replica publish; False when it failed (fenced, or the replica's end unknown)."""
        if self.fenced or self._stale:
            publish.close()
            return False
        try:
            await publish
        except WriterFenced:
            self._fence()
            return False
        except NatsError as exc:
            log.warning("replicated log unavailable", extra={"error": type(exc).__name__})
            self._metrics.replica_errors.labels(self._metrics.service).inc()
            self._stale = True
            return False
        return True

    async def _write_staged(self, staged: Staged) -> Committed | None:
        """Store a staged batch in the replica, then locally; None when the replica failed."""
        if staged.lines and not await self._replicate(
            self._replica.append(staged.lines, staged.first)
        ):
            return None
        return await asyncio.to_thread(self.log.apply, staged)

    def _fence(self) -> None:
        if self.fenced:
            return
        log.error("another logger claimed the log; this one stops writing")
        self.fenced = True
        self._stopping.set()
        self._metrics.fenced.labels(self._metrics.service).set(1)
        if self.on_fenced is not None:
            self.on_fenced()

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
                staged = await asyncio.to_thread(self.log.stage_reset, stream)
                if await self._write_staged(staged) is None:
                    raise _NotWritten(stream)
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
            except (NatsError, Unavailable) as exc:
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
        while not self.fenced and not (self._stopping.is_set() and self._queue.empty()):
            try:
                if self._stale:
                    await self._resync()
                await self._write_once()
            except Exception:  # keep capturing; the next batch or a restart recovers
                log.exception("writer iteration failed")
                await asyncio.sleep(RETRY_S)
        if self.fenced:
            await self._hand_over()

    async def _hand_over(self) -> None:
        """Stop fetching and give back what was fetched, for the writer that took over."""
        for feed in self._feeds.values():
            await feed.stop()
        held: list[Msg] = []
        while not self._queue.empty():
            held += self._queue.get_nowait().messages
        await self._give_back(held)

    @staticmethod
    async def _give_back(messages: list[Msg]) -> None:
        # Redelivered at once (else only after the consumer's ack wait).
        try:
            for msg in messages:
                await msg.nak()
        except NatsError as exc:
            log.warning("giving messages back failed", extra={"error": type(exc).__name__})

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
                plan, staged = await asyncio.to_thread(self._plan_and_stage, messages)
                written = await self._write_staged(staged)
                if written is None:  # not acknowledged: redelivered to whoever writes next
                    if self.fenced:
                        await self._give_back(messages)
                    return
                committed, self._fresh = written, plan.fresh
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

    def _plan_and_stage(self, messages: list[Msg]) -> tuple[BatchPlan, Staged]:
        incoming = [to_incoming(m) for m in messages]
        hwm = {stream: self.log.hwm(stream) for stream in self._feeds}
        plan = plan_batch(incoming, hwm, self._fresh)
        return plan, self.log.stage(plan.accept)

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
        """Reopen the log from disk (as after a crash); the writer then levels it and re-anchors."""
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
        self._stale = True  # the replica may hold what the local write lost

    async def _resync(self) -> None:
        """Adopt what the replica holds beyond the local log (still the writer), re-anchor."""
        for feed in self._feeds.values():
            await feed.stop()
        while not self._stopping.is_set():
            try:
                async with self._io:
                    await self._replica.still_ours()
                    adopted, _head = await catchup.adopt(self.log, self._replica)
            except WriterFenced:
                self._fence()
                return
            except NatsError as exc:
                log.warning("levelling with the replica failed", extra={"error": str(exc)})
                await asyncio.sleep(RETRY_S)
                continue
            self._count_adopted(adopted)
            self._stale = False
            break
        for feed in self._feeds.values():
            await self._reanchor(feed)


class _NotWritten(Unavailable):
    """A stream-reset note could not be stored (the anchoring is retried)."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"the reset note of stream {stream} was not stored")
