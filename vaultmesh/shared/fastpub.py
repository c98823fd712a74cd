"""JetStream fast-ingest batches: many publishes, one acknowledgement (a bus adapter).

A stream configured with ``allow_batched`` (nats-server 2.14+) accepts
*fast-ingest* batches: every message is stored as it arrives, and the server
answers the batch's last message with one acknowledgement that counts how many
of the batch it took. Publishing a burst of N records that way costs one ack
for the publisher and the server to handle instead of N, which is most of the
per-record cost in Python. The batch is described by the reply subject alone::

    <inbox>.<batch id>.<flow>.fail.<batch sequence>.<operation>.$FI

with operation 0 (first message), 1 (more) or 2 (last message, commit). In
``fail`` mode the server abandons a batch at the first hole or rejected message,
and its final ack then counts only the messages before it; the rest are
reported as failed so the caller can retry them. A batch whose final ack never
comes is ambiguous (the server may have stored part of it): with a ``msg_id`` per
message the stream drops the copies it already has when the caller retries;
without one, the retry is delivered at least once.

When the stream does not allow batches (an older stream or server), the server
says so and this publisher falls back to one ordinary acknowledged publish per
message, so nothing depends on the feature being present.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from vaultmesh.shared.codec import MSG_ID_HEADER, STATUS_HEADER

T = TypeVar("T")
log = logging.getLogger(__name__)
# JetStream error codes of fast-ingest batches (disabled, bad pattern, bad or unknown id):
# any of them means "publish one message at a time instead".
_NOT_BATCHED = frozenset({10205, 10206, 10207, 10208})
_START, _ADD, _COMMIT = 0, 1, 2


@dataclass(slots=True)
class Message(Generic[T]):
    """One message to publish, and what it stands for (reported back in order)."""

    item: T
    subject: str
    data: bytes
    msg_id: str | None = None  # sent as Nats-Msg-Id: the stream drops repeats


@dataclass(slots=True)
class _Batch(Generic[T]):
    items: list[T]
    sent: float


def batch_count(msg: Msg, expected: int, *, batched: bool = True) -> int:
    """How many messages of a batch of ``expected`` the stream stored, from its final reply:
    its ``count``, or ``expected`` for the plain ack of an unbatched publish; 0 for an
    error, an unreadable reply, or a batch answered like a plain publish (a server that
    does not know batches acknowledged only the first message)."""
    if msg.headers and msg.headers.get(STATUS_HEADER):  # 503: no stream took the message
        return 0
    try:
        ack = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(ack, dict) or "error" in ack or "seq" not in ack:
        return 0
    count = ack.get("count", None if batched else expected)
    return max(0, min(int(count), expected)) if isinstance(count, int) else 0


def _plain_ack(msg: Msg) -> bool:
    """A positive acknowledgement without batch fields (from a server without batches)."""
    return msg.data.startswith(b'{"stream"') and b'"batch"' not in msg.data


def not_batched(msg: Msg) -> bool:
    """Whether a reply says the stream does not take fast-ingest batches."""
    if not msg.data.startswith(b'{"error"'):
        return False
    try:
        error = orjson.loads(msg.data)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and error.get("err_code") in _NOT_BATCHED


def _headers(message: Message[T]) -> dict[str, str] | None:
    return None if message.msg_id is None else {MSG_ID_HEADER: message.msg_id}


class BatchPublisher(Generic[T]):
    """Publishes bursts as fast-ingest batches and reports each item stored or failed.

    ``on_stored`` and ``on_failed`` receive the items of one batch in publish
    order; a batch without a final ack within ``timeout`` (see ``expire``) fails.
    At most ``max_batches`` batches are in flight (``full``).
    """

    def __init__(
        self,
        nc: Client,
        on_stored: Callable[[list[T]], None],
        on_failed: Callable[[list[T]], None],
        timeout: float,
        max_batches: int = 8,
    ) -> None:
        self._nc = nc
        self._on_stored = on_stored
        self._on_failed = on_failed
        self._timeout = timeout
        self._max_batches = max_batches
        self._ids = itertools.count(1)
        self._batches: dict[str, _Batch[T]] = {}
        self._in_flight = 0
        self._prefix = ""
        self._sub: object | None = None
        self.batched = True  # False once the stream said it takes no batches

    @property
    def in_flight(self) -> int:
        """Messages published and not yet acknowledged."""
        return self._in_flight

    @property
    def oldest_sent(self) -> float | None:
        """When the oldest unacknowledged batch was published (loop time), if any."""
        # Batches are kept in publish order: the first is the oldest.
        return next((batch.sent for batch in self._batches.values()), None)

    @property
    def full(self) -> bool:
        """Whether as many batches as allowed await their acknowledgement."""
        return len(self._batches) >= self._max_batches

    async def start(self) -> None:
        """Subscribe to the acknowledgements (idempotent)."""
        if self._sub is None:
            self._prefix = self._nc.new_inbox() + "."
            self._sub = await self._nc.subscribe(self._prefix + ">", cb=self._on_reply)

    async def stop(self) -> list[T]:
        """Stop listening; return the items still unacknowledged, in publish order."""
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()  # type: ignore[attr-defined]
        left = [item for batch in self._batches.values() for item in batch.items]
        self._batches.clear()
        self._in_flight = 0
        return left

    async def publish(self, messages: Sequence[Message[T]]) -> None:
        """Publish ``messages`` as one batch (one plain publish each without batches)."""
        if not self.batched:
            for message in messages:
                await self._publish_batch([message])
            return
        if messages:
            await self._publish_batch(messages)

    async def _publish_batch(self, messages: Sequence[Message[T]]) -> None:
        bid = str(next(self._ids))
        items = [m.item for m in messages]
        self._batches[bid] = _Batch(items, asyncio.get_running_loop().time())
        self._in_flight += len(items)
        try:
            if not self.batched:
                (only,) = messages
                await self._nc.publish(
                    only.subject, only.data, reply=self._prefix + bid, headers=_headers(only)
                )
                return
            size, last = len(messages), len(messages) - 1
            base = f"{self._prefix}{bid}.{size}.fail."
            for n, message in enumerate(messages):
                op = _COMMIT if n == last else (_START if n == 0 else _ADD)
                await self._nc.publish(
                    message.subject,
                    message.data,
                    reply=f"{base}{n + 1}.{op}.$FI",
                    headers=_headers(message),
                )
        except BaseException:
            self._forget(bid)
            raise

    def expire(self) -> None:
        """Report the items of batches unacknowledged for longer than the timeout as failed."""
        now = asyncio.get_running_loop().time()
        late = [bid for bid, batch in self._batches.items() if now - batch.sent > self._timeout]
        for bid in late:
            batch = self._forget(bid)
            if batch is not None:
                self._on_failed(batch.items)

    def _forget(self, bid: str) -> _Batch[T] | None:
        batch = self._batches.pop(bid, None)
        if batch is not None:
            self._in_flight -= len(batch.items)
        return batch

    async def _on_reply(self, msg: Msg) -> None:
        rest = msg.subject[len(self._prefix) :]
        bid = rest.split(".", 1)[0]
        if bid not in self._batches:
            return  # a late reply to a batch already settled
        if msg.data.startswith(b'{"type"'):
            return  # flow ack, gap or rejected message: the batch's final ack follows
        batch = self._forget(bid)
        assert batch is not None
        batched = self.batched
        if batched and (not_batched(msg) or _plain_ack(msg)):
            self.batched = False
            log.warning("stream takes no fast-ingest batches; publishing one message at a time")
        count = batch_count(msg, len(batch.items), batched=batched)
        if count:
            self._on_stored(batch.items[:count])
        if count < len(batch.items):
            self._on_failed(batch.items[count:])
