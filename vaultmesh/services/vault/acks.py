"""Pipelined JetStream publishing with a per-message acknowledgement (a bus adapter).

nats-py's ``publish_async`` costs several times a plain publish per message (a
future, a semaphore and random tokens each); this keeps one reply subscription
and a dict of what is in flight, which is all the audit trail needs. Each
message still gets its own JetStream acknowledgement (or error, or timeout).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg

T = TypeVar("T")
STATUS = "Status"


def acknowledged(msg: Msg) -> bool:
    """Whether a reply to a JetStream publish is a positive acknowledgement."""
    if msg.headers and msg.headers.get(STATUS):  # 503: no stream took the message
        return False
    return msg.data.startswith(b"{") and b'"error"' not in msg.data


class AckPipeline(Generic[T]):
    """Publishes with a reply subject and reports each item's outcome to ``on_done``."""

    def __init__(
        self,
        nc: Client,
        on_done: Callable[[T, bool], None],
        timeout: float,
        window: int = 1024,
    ) -> None:
        self._nc = nc
        self._on_done = on_done
        self._timeout = timeout
        self._window = window
        self._tokens = itertools.count(1)
        self._pending: dict[str, tuple[T, float]] = {}
        self._prefix = ""
        self._sub: object | None = None

    @property
    def in_flight(self) -> int:
        """Items published and not yet acknowledged."""
        return len(self._pending)

    @property
    def full(self) -> bool:
        """Whether the window of unacknowledged items is full."""
        return len(self._pending) >= self._window

    async def start(self) -> None:
        """Subscribe to the acknowledgements (idempotent)."""
        if self._sub is None:
            self._prefix = self._nc.new_inbox() + "."
            self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def stop(self) -> list[T]:
        """Stop listening; return the items still unacknowledged."""
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()  # type: ignore[attr-defined]
        left = [item for item, _sent in self._pending.values()]
        self._pending.clear()
        return left

    async def publish(self, item: T, subject: str, data: bytes, headers: dict[str, str]) -> None:
        """Publish ``data``; ``on_done(item, ok)`` follows when the acknowledgement arrives."""
        token = str(next(self._tokens))
        self._pending[token] = (item, asyncio.get_running_loop().time())
        try:
            await self._nc.publish(subject, data, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._pending[token]
            raise

    def expire(self) -> None:
        """Report items unacknowledged for longer than the timeout as failed."""
        now = asyncio.get_running_loop().time()
        late = [t for t, (_item, sent) in self._pending.items() if now - sent > self._timeout]
        for token in late:
            item, _sent = self._pending.pop(token)
            self._on_done(item, False)

    async def _on_reply(self, msg: Msg) -> None:
        found = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if found is not None:
            self._on_done(found[0], acknowledged(msg))
