"""Following a JetStream stream in order: replay, catch up, then stay live.

An ordered push consumer (ephemeral, no acks, recreated by nats-py after a
lost heartbeat or a sequence gap) delivers to one callback. Two things are
added here:

- ``caught_up``: set once the replay reaches the end of the stream as it was
  (the consumer reports ``num_pending == 0``), so a service can answer only
  after it has rebuilt its state;
- resync after a client-side drop: nats-py discards messages when a
  subscription's pending queue overflows (a long replay into a slow handler).
  A jump in the consumer sequence reveals it; a drop of the very last messages
  shows as the server having delivered past what was handled while nothing is
  queued (checked by a slow watchdog). Either way the tail restarts from the
  last stream sequence it actually handled, so no stored message is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from vaultmesh.shared.runtime import Lifecycle

log = logging.getLogger(__name__)

# (subject, data, stream sequence, stream timestamp in ns)
Handler = Callable[[str, bytes, int, int], None]

_V1_TOKENS = 9  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>


def parse_ack_reply(reply: str) -> tuple[int, int, int, int]:
    """(stream seq, consumer seq, timestamp ns, pending) from a JetStream reply subject."""
    tokens = reply.split(".")
    base = 5 if len(tokens) == _V1_TOKENS else 7  # v2 adds domain and account hash
    return int(tokens[base]), int(tokens[base + 1]), int(tokens[base + 2]), int(tokens[base + 3])


class StreamTail(Lifecycle):
    """Delivers every message of ``stream`` matching ``subject`` to ``handler``, in order."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        subject: str,
        handler: Handler,
        policy: DeliverPolicy = DeliverPolicy.ALL,
        start_seq: int | None = None,
        pending_msgs_limit: int = 65_536,
        pending_bytes_limit: int = 64 * 1024 * 1024,
        on_resync: Callable[[], None] | None = None,
        watch_s: float = 5.0,
    ) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._handler = handler
        self._policy = policy
        self._start_seq = start_seq
        self._limits = (pending_msgs_limit, pending_bytes_limit)
        self._on_resync = on_resync
        self._sub: JetStreamContext.PushSubscription | None = None
        self._next_dseq = 1
        self._resyncing = False
        self._resync_task: asyncio.Task[None] | None = None
        self._watch_s = watch_s
        self._watchdog: asyncio.Task[None] | None = None
        self.last_seq = 0
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        """Create the consumer and start delivering (idempotent)."""
        if self._sub is not None:
            return
        await self._subscribe(self._policy, self._start_seq)
        assert self._sub is not None
        info = await self._sub.consumer_info()
        if info.num_pending == 0 and not info.delivered.consumer_seq:
            self.caught_up.set()  # nothing to replay
        self._watchdog = asyncio.create_task(self._watch())

    async def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the replay is done; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop delivering (idempotent); the ephemeral consumer is removed by the server."""
        for task in (self._watchdog, self._resync_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watchdog = self._resync_task = None
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _subscribe(self, policy: DeliverPolicy, start_seq: int | None) -> None:
        config = ConsumerConfig(opt_start_seq=start_seq) if start_seq else None
        if start_seq:
            policy = DeliverPolicy.BY_START_SEQUENCE
        self._next_dseq = 1
        self._sub = await self._js.subscribe(
            self._subject,
            stream=self._stream,
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            pending_msgs_limit=self._limits[0],
            pending_bytes_limit=self._limits[1],
        )

    async def _on_msg(self, msg: Msg) -> None:
        if self._resyncing or not msg.reply:
            return
        # Inline parse_ack_reply (this runs per message); v2 replies have two more tokens.
        tokens = msg.reply.split(".")
        base = 5 if len(tokens) == _V1_TOKENS else 7
        sseq = int(tokens[base])
        dseq = int(tokens[base + 1])
        # dseq restarts at 1 whenever nats-py recreates the consumer; any other jump is a drop.
        if dseq != self._next_dseq and dseq != 1:
            self._begin_resync()
            return
        self._next_dseq = dseq + 1
        if sseq > self.last_seq:
            self.last_seq = sseq
            try:
                self._handler(msg.subject, msg.data, sseq, int(tokens[base + 2]))
            except Exception:
                log.exception("stream handler failed", extra={"stream": self._stream, "seq": sseq})
        if tokens[base + 3] == "0" and not self.caught_up.is_set():
            self.caught_up.set()

    async def _watch(self) -> None:
        """Resync when the server delivered past what was handled and nothing is queued.

        Required twice in a row with the same delivered sequence, so messages
        still on the wire are not mistaken for lost ones.
        """
        suspect = 0
        while True:
            await asyncio.sleep(self._watch_s)
            delivered = await self._delivered_unhandled()
            if delivered and delivered == suspect:
                self._begin_resync()
                delivered = 0
            suspect = delivered

    async def _delivered_unhandled(self) -> int:
        """The server's last delivered stream sequence when it is beyond what was handled."""
        sub = self._sub
        if sub is None or self._resyncing or sub.pending_msgs:
            return 0
        try:
            info = await sub.consumer_info()
        except Exception:  # a consumer being recreated, a reconnect: look again next time
            return 0
        delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
        return delivered if delivered > self.last_seq and not sub.pending_msgs else 0

    def _begin_resync(self) -> None:
        self._resyncing = True
        if self._on_resync is not None:
            self._on_resync()
        log.warning(
            "stream reader missed messages; resuming",
            extra={"stream": self._stream, "from_seq": self.last_seq + 1},
        )
        self._resync_task = asyncio.create_task(self._resync())

    async def _resync(self) -> None:
        old, self._sub = self._sub, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._resyncing = False
        if self.last_seq:
            await self._subscribe(DeliverPolicy.BY_START_SEQUENCE, self.last_seq + 1)
        else:
            await self._subscribe(self._policy, self._start_seq)
