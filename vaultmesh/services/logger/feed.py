"""One stream's durable pull consumer, and turning its messages into log input.

A ``Feed`` owns the durable consumer ``subjects.DURABLE_LOGGER`` on one stream and
a task that fetches batches into the writer's queue. ``anchor`` re-creates the
consumer at a given stream sequence (the log decides where to resume). While
idle the feed checks now and then that its consumer still exists; if it was
deleted (by an operator, or with its stream) the feed reports itself lost and
the writer re-anchors it; likewise when messages stay unacknowledged while it gets
none (another client holds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from vaultmesh.services.logger.entry import Incoming
from vaultmesh.shared import codec, subjects

log = logging.getLogger(__name__)

QUEUE_BATCHES = 4
RETRY_S = 1.0
_HEALTH_S = 2.0  # at least this long between consumer checks while idle


@dataclass(frozen=True)
class Fetched:
    """One fetch result, tagged with the consumer generation that produced it."""

    feed: Feed
    epoch: int
    messages: list[Msg]
    lost: bool = False  # the consumer is gone: re-anchor this feed


class Feed:
    """One stream's durable pull consumer and the task that fetches from it."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        batch: int,
        wait: float,
        out: asyncio.Queue[Fetched],
    ) -> None:
        self.stream = stream
        self.epoch = 0
        self._js, self._batch, self._wait, self._out = js, batch, wait, out
        self._task: asyncio.Task[None] | None = None

    def _config(self, start_seq: int) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=subjects.DURABLE_LOGGER,
            description="vaultmesh logger: acknowledges only what is fsynced",
            deliver_policy=DeliverPolicy.ALL if start_seq <= 1 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if start_seq <= 1 else start_seq,
            ack_policy=AckPolicy.ALL,
            ack_wait=60.0,
            max_ack_pending=self._batch * (QUEUE_BATCHES + 4),
            max_waiting=16,
        )

    async def anchor(self, start_seq: int) -> None:
        """(Re)create the consumer so delivery starts at stream sequence ``start_seq``."""
        await self.stop()
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self.stream, subjects.DURABLE_LOGGER)
        await self._js.add_consumer(self.stream, self._config(start_seq))
        sub = await self._js.pull_subscribe_bind(
            durable=subjects.DURABLE_LOGGER, stream=self.stream
        )
        self.epoch += 1
        self._task = asyncio.create_task(self._run(self.epoch, sub))
        log.info("consumer anchored", extra={"stream": self.stream, "start_seq": start_seq})

    async def _run(self, epoch: int, sub: JetStreamContext.PullSubscription) -> None:
        checked, seen = time.monotonic(), None
        try:
            while True:
                try:
                    messages = await sub.fetch(self._batch, timeout=self._wait)
                except (TimeoutError, NatsTimeoutError):
                    if time.monotonic() - checked < max(_HEALTH_S, 5 * self._wait):
                        continue
                except NatsError as exc:
                    log.warning(
                        "fetch failed: %s", type(exc).__name__, extra={"stream": self.stream}
                    )
                    await asyncio.sleep(RETRY_S)
                else:
                    await self._out.put(Fetched(self, epoch, messages))
                    if messages:
                        seen = None
                    continue
                checked = time.monotonic()
                state = await self._consumer_state()
                if state is None:
                    log.warning("consumer gone", extra={"stream": self.stream})
                    break
                if state == seen and state[1] > 0:
                    # Idle, yet messages wait for an acknowledgement twice at the same floor:
                    # another client holds them (a logger that stood down, a pull response
                    # lost on a reconnect). Re-anchoring redelivers them now, not after the
                    # ack wait; if they were this logger's own, they are skipped as repeats.
                    log.warning("messages held elsewhere", extra={"stream": self.stream})
                    break
                seen = state
            await self._out.put(Fetched(self, epoch, [], lost=True))
        finally:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def _consumer_state(self) -> tuple[int, int] | None:
        """(ack floor, messages awaiting acknowledgement) of the consumer; None: it is gone."""
        try:
            info = await self._js.consumer_info(self.stream, subjects.DURABLE_LOGGER)
        except NotFoundError:
            return None
        except NatsError:
            return (-1, 0)  # cannot tell now (e.g. reconnecting): assume all is well
        return (info.ack_floor.stream_seq if info.ack_floor else 0, info.num_ack_pending or 0)

    async def stop(self) -> None:
        """Stop fetching (idempotent); unacknowledged messages are redelivered later."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def ack_fields(reply: str) -> tuple[str, int, int]:
    """(stream, stream sequence, store time in ns) from a JetStream ack subject.

    Parsed here rather than with ``Msg.metadata``, which also builds datetimes and
    costs several times more on the hot path. Both layouts are handled:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` and the
    one with ``<domain>.<account hash>`` after ``$JS.ACK`` (and a random token at
    the end).
    """
    tokens = reply.split(".")
    try:
        if len(tokens) == 9 and tokens[0] == "$JS":
            return tokens[2], int(tokens[5]), int(tokens[7])
        if len(tokens) >= 11 and tokens[0] == "$JS":
            return tokens[4], int(tokens[7]), int(tokens[9])
    except ValueError:
        pass
    raise ValueError("not a JetStream ack subject")


def to_incoming(msg: Msg) -> Incoming:
    """The log's view of a JetStream message."""
    stream, stream_seq, stored_ns = ack_fields(msg.reply)
    return Incoming(
        stream=stream,
        stream_seq=stream_seq,
        subject=msg.subject,
        data=msg.data,
        stored_ns=stored_ns,
        msgpack=bool(msg.headers) and codec.format_of(msg.headers) is codec.WireFormat.MSGPACK,
    )
