"""An index of the vault's KV bucket (a bus adapter): the secret paths and key terms stored.

``list`` and ``status`` must not read every key of the bucket per request, so each
vault replica follows the bucket with one headers-only ordered consumer (every
key's last message at start, then each write as it happens) and keeps the live
secret paths sorted in memory: a prefix is a bisection, the count a length.

The index must never be stale: a write acknowledged by another replica must show
at once. ``sync`` asks the stream for its last sequence (``STREAM.INFO``, answered
by the stream leader, which acknowledged that write) and waits until the
consumer has delivered that far; it is usually there already. If it does not get
there in time (the consumer was lost, or the last message no longer exists), the
index is rebuilt from a new consumer, whose initial delivery reflects the bucket
as of a moment after the ``STREAM.INFO``.

Why not ``KeyValue.keys()`` (what listed keys before): nats-py's watcher decides
that there are no keys when the consumer's info, fetched after subscribing, shows
nothing pending and this client has not yet received a message. The server
delivers the messages and answers the info request on separate paths, so the info
can arrive first while saying the messages were already sent (``num_pending=0``,
``delivered.consumer_seq=4`` with 0 received, seen in a reproduction): ``keys()``
then ends at once and the list is empty. That was the ``assert [] == [...]``
flake (nats-io/nats.py issue 842; still in nats-py 2.16). Each call also left its
consumer on the server for 5 minutes. Here the initial delivery ends only once
this client has received what the consumer's info counts as sent or pending, and
a message says nothing more is pending.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from vaultmesh.services.vault import kv_keys
from vaultmesh.shared import subjects
from vaultmesh.shared.errors import Unavailable

log = logging.getLogger(__name__)
# How long ``sync`` waits for the consumer before rebuilding it, and a rebuild's own bound.
SYNC_WAIT_S = 5.0
LOAD_WAIT_S = 30.0
# A consumer left behind by a dead process is removed by the server after this.
_INACTIVE_S = 60.0
# Headers that mark a key as removed: a client's delete or purge, or a server marker.
_KV_OP = "KV-Operation"
_REMOVED_OPS = ("DEL", "PURGE")
_MARKER_REASON = "Nats-Marker-Reason"


def _removed(msg: Msg) -> bool:
    headers = msg.headers or {}
    return headers.get(_KV_OP) in _REMOVED_OPS or _MARKER_REASON in headers


class KeyIndex:
    """The live secret paths (sorted) and key terms of KV bucket ``bucket``."""

    def __init__(self, js: JetStreamContext, bucket: str) -> None:
        self._js = js
        self._stream = subjects.kv_stream(bucket)
        self._prefix = subjects.kv_all(bucket).removesuffix(">")
        self._paths: list[str] = []
        self._terms: set[int] = set()
        self._seen = 0  # stream sequence of the last message applied
        self._received = 0  # messages applied from the current consumer
        self._pending = -1  # num_pending of the last one
        self._boundary = -1  # messages in the initial delivery at least (-1: not known yet)
        self._loaded = asyncio.Event()
        self._moved = asyncio.Event()  # replaced on every message: wakes every waiter
        self._sub: JetStreamContext.PushSubscription | None = None
        self._since = 0.0  # when the current consumer was made (monotonic)
        self._rebuilding = asyncio.Lock()
        self.rebuilds = 0

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the bucket and wait until every key stored now is in the index."""
        if self._sub is None:
            await self._follow()

    async def stop(self) -> None:
        """Stop following (the server removes the consumer)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            # On a failure the connection is going away, and the consumer with it.
            with contextlib.suppress(NatsError, TimeoutError):
                await sub.unsubscribe()

    async def _follow(self) -> None:
        self._paths, self._terms, self._seen = [], set(), 0
        self._received, self._pending, self._boundary = 0, -1, -1
        self._loaded = asyncio.Event()
        self._since = time.monotonic()
        try:
            self._sub = await self._js.subscribe(
                f"{self._prefix}>",
                stream=self._stream,
                cb=self._on_message,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                headers_only=True,
                inactive_threshold=_INACTIVE_S,
            )
            # The initial delivery holds at least what the consumer had sent or still had to
            # send when asked (possibly not yet received here); an empty bucket sends nothing.
            info = await self._sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered else 0
            self._boundary = (info.num_pending or 0) + delivered
            self._check_loaded()
            await asyncio.wait_for(self._loaded.wait(), LOAD_WAIT_S)
        except (NatsError, TimeoutError) as exc:
            await self.stop()
            raise Unavailable(f"vault storage index unavailable: {type(exc).__name__}") from None

    async def _on_message(self, msg: Msg) -> None:
        meta = msg.metadata
        key = msg.subject[len(self._prefix) :]
        removed = _removed(msg)
        path = kv_keys.secret_path(key)
        if path is not None:
            self._apply_path(path, removed)
        term = kv_keys.term_number(key)
        if term is not None and not removed:
            self._terms.add(term)
        self._seen = max(self._seen, meta.sequence.stream)
        self._received += 1
        self._pending = meta.num_pending
        self._check_loaded()
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def _check_loaded(self) -> None:
        # Both conditions: a message's num_pending alone can touch 0 and rise again on a
        # cluster (nats-io/nats.py PR 995), and the boundary alone misses writes made since.
        if self._boundary == 0 or (
            self._boundary > 0 and self._received >= self._boundary and self._pending == 0
        ):
            self._loaded.set()

    def _apply_path(self, path: str, removed: bool) -> None:
        at = bisect.bisect_left(self._paths, path)
        present = at < len(self._paths) and self._paths[at] == path
        if removed and present:
            del self._paths[at]
        elif not removed and not present:
            self._paths.insert(at, path)

    # ---- reads -------------------------------------------------------------------------

    async def sync(self) -> None:
        """Make the index include every write acknowledged before this call."""
        asked = time.monotonic()
        try:
            target = (await self._js.stream_info(self._stream)).state.last_seq
        except (NatsError, TimeoutError) as exc:
            raise Unavailable(
                f"vault storage (JetStream KV) unavailable: {type(exc).__name__}"
            ) from None
        if await self._reached(target, SYNC_WAIT_S):
            return
        async with self._rebuilding:
            if self._loaded.is_set() and self._since > asked:
                return  # rebuilt meanwhile, from a consumer made after ``target`` was read
            log.warning("vault key index behind its bucket; rebuilding", extra={"seq": target})
            self.rebuilds += 1
            await self.stop()
            await self._follow()

    async def _reached(self, target: int, wait_s: float) -> bool:
        # While a rebuild's initial delivery runs, the index holds only part of the keys.
        deadline = time.monotonic() + wait_s
        while self._seen < target or not self._loaded.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._moved.wait(), left)
            except TimeoutError:
                return False
        return True

    def paths(self, prefix: str = "") -> list[str]:
        """Secret paths starting with ``prefix``, sorted (call ``sync`` first)."""
        start = bisect.bisect_left(self._paths, prefix)
        end = start
        while end < len(self._paths) and self._paths[end].startswith(prefix):
            end += 1
        return self._paths[start:end]

    @property
    def count(self) -> int:
        """How many secrets are stored (call ``sync`` first)."""
        return len(self._paths)

    @property
    def terms(self) -> list[int]:
        """Every stored key term, oldest first (call ``sync`` first)."""
        return sorted(self._terms)
