"""Heartbeats from every connection, published together as JetStream fast-ingest batches.

An acknowledged publish costs nats-server about the same whether it carries
one message or dozens (see docs/DESIGN-NOTES.md), and costs the gateway a
future, a timer and an ack to read. So heartbeats, from any number of
connections, are published as fast-ingest batches (fastpub.py), which the
stream answers with one ack saying how many of the batch it stored. Each
heartbeat's ``done`` callback then hears whether it was stored: True only when
the ack covers it, so a 200 still means that heartbeat is in the stream.

One batch at a time awaits its ack (``max_batches``): the heartbeats that
arrive meanwhile make up the next one, so batches grow with the load and a
lone heartbeat waits for nobody (group commit). Batches of a dozen or more cut
the bus's CPU per heartbeat to a fraction of one publish each. A connection has
at most one heartbeat waiting here (the front door answers requests in order),
so the wait is bounded by the number of connections. A batch without its ack
within the publish timeout fails (503, retry) at that moment, and so do the
heartbeats queued behind it: the bus has acknowledged nothing for a whole
timeout. While the connection is down nothing is published (nats-py would hold
it until it reconnects): every waiting heartbeat is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError

from vaultmesh.shared.fastpub import BatchPublisher, Message

log = logging.getLogger(__name__)

Done = Callable[[bool], None]  # called once: True when the stream stored the heartbeat
MAX_BATCH = 256  # heartbeats per batch; more wait for the next turn
REPROBE_S = 60.0  # how often a stream without batches is asked again
PROBE_TIMEOUT_S = 1.0
# The expiry timer fires this much after a batch's deadline: expire() fails only
# batches strictly older than the timeout.
EXPIRY_SLACK_S = 0.001


class HeartbeatBatcher:
    """Publishes submitted heartbeats in batches and reports each one stored or not."""

    def __init__(
        self,
        nc: Client,
        timeout_s: float,
        *,
        stream: str | None = None,
        on_stored: Callable[[int], None] = lambda count: None,
        max_batches: int = 1,
        reprobe_s: float = REPROBE_S,
    ) -> None:
        self._nc = nc
        self._stream = stream  # read for allow_batched at start, and again while it is off
        self._js = nc.jetstream(timeout=min(timeout_s, PROBE_TIMEOUT_S))
        self._reprobe_s = reprobe_s
        self._next_probe = 0.0
        self._on_stored = on_stored  # how many heartbeats a batch's ack covered (metrics)
        self._timeout = timeout_s
        self._pub: BatchPublisher[Done] = BatchPublisher(
            nc, self._stored, self._failed, timeout_s, max_batches
        )
        self._waiting: list[Message[Done]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._started = False

    @property
    def batched(self) -> bool:
        """False once the stream said it takes no batches (one publish per heartbeat then)."""
        return self._pub.batched

    async def start(self) -> None:
        """Subscribe to the acknowledgements and read the stream's configuration (idempotent)."""
        await self._pub.start()
        await self._probe()
        self._started = True

    async def _probe(self) -> None:
        """Publish in batches only if the stream takes them (``allow_batched``).

        A stream made by an older release takes none until its owner (fleet-state)
        updates it; until then heartbeats go one at a time, and the configuration
        is read again every ``reprobe_s``. When the stream cannot be read, the
        first answer to a batch decides (fastpub.py).
        """
        if self._stream is None:
            return
        self._next_probe = asyncio.get_running_loop().time() + self._reprobe_s
        try:
            info = await self._js.stream_info(self._stream)
        except (NatsError, TimeoutError, OSError):
            return
        batched = bool(info.config.allow_batched)
        if batched != self._pub.batched:
            log.info("stream %s takes batches: %s", self._stream, batched)
        self._pub.batched = batched

    def submit(self, subject: str, data: bytes, done: Done) -> None:
        """Publish ``data`` on ``subject`` with the next batch; ``done`` gets the outcome."""
        if not self._started or not self._nc.is_connected:
            done(False)
            return
        self._waiting.append(Message(done, subject, data))
        self._schedule()

    def _schedule(self) -> None:
        if self._flushing is None and self._waiting and not self._pub.full:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        if not self._nc.is_connected:
            queued, self._waiting = self._waiting, []
            self._flushing = None
            _settle([message.item for message in queued], False)
            return
        if not self._pub.batched and asyncio.get_running_loop().time() >= self._next_probe:
            await self._probe()
        batch = self._waiting[:MAX_BATCH]
        del self._waiting[:MAX_BATCH]
        try:
            await self._pub.publish(batch)
        except (NatsError, OSError) as exc:
            log.warning("heartbeat batch not published: %s", type(exc).__name__)
            self._failed([message.item for message in batch])
        except Exception:
            log.exception("heartbeat batch not published")
            self._failed([message.item for message in batch])
        finally:
            self._flushing = None
            self._arm_expiry()
            self._schedule()

    def _arm_expiry(self) -> None:
        """Wake when the oldest unacknowledged batch reaches its deadline."""
        oldest = self._pub.oldest_sent
        if self._expiry is None and oldest is not None:
            when = oldest + self._timeout + EXPIRY_SLACK_S
            self._expiry = asyncio.get_running_loop().call_at(when, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        oldest = self._pub.oldest_sent
        if oldest is not None and asyncio.get_running_loop().time() - oldest > self._timeout:
            # Queued behind a batch the bus did not acknowledge: answer them now rather
            # than publish them for another whole timeout.
            queued, self._waiting = self._waiting, []
            self._pub.expire()  # fails batches older than the timeout (calls _failed)
            _settle([message.item for message in queued], False)
        self._arm_expiry()

    def _stored(self, items: list[Done]) -> None:
        self._on_stored(len(items))
        _settle(items, True)
        self._schedule()

    def _failed(self, items: list[Done]) -> None:
        _settle(items, False)
        self._schedule()


def _settle(items: list[Done], stored: bool) -> None:
    """Tell each heartbeat's sender; one that fails does not keep the others waiting."""
    for done in items:
        try:
            done(stored)
        except Exception:
            log.exception("answering a heartbeat failed")
