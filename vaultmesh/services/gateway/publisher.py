"""JetStream publishing for the gateway: an HTTP 2xx only after the stream acknowledged.

A lean publish-and-wait-for-ack for events and audit records: one reply
subscription for all publishes, a future per message, the ack read with orjson
(nats-py's ``js.publish`` does the same through a generic request path at about
twice the CPU per message). Heartbeats, the hot path, go through ingest/batcher.py
instead. Every bus failure (not
connected, no stream, no ack in time, server error) becomes ``Unavailable``
(HTTP 503), so a caller knows the write did not land and can retry.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from vaultmesh.shared.codec import MSG_ID_HEADER, STATUS_HEADER
from vaultmesh.shared.errors import PayloadTooLarge, Unavailable

log = logging.getLogger(__name__)

# JetStream's "message size exceeds maximum allowed" API error code.
_MSG_TOO_LARGE = 10054
_NO_RESPONDERS = "503"


class Publisher:
    """Publishes to JetStream and waits for the ack, within a timeout."""

    def __init__(self, nc: Client, timeout_s: float) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout_s)
        self._timeout = timeout_s
        self._prefix = ""
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Any]] = {}

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context of this connection (stream management, consumers)."""
        return self._js

    async def start(self) -> None:
        """Subscribe to the acks (idempotent)."""
        if self._prefix:
            return
        prefix = self._nc.new_inbox()
        await self._nc.subscribe(f"{prefix}.*", cb=self._on_ack)
        self._prefix = prefix

    async def publish(
        self, subject: str, payload: bytes, *, stream: str, msg_id: str | None = None
    ) -> int:
        """Publish ``payload`` and return its stream sequence once ``stream`` stored it."""
        if not self._nc.is_connected or not self._prefix:
            raise Unavailable("not connected to the bus; retry later")
        reply = f"{self._prefix}.{next(self._ids)}"
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[Any] = loop.create_future()
        self._pending[reply] = ack
        # A bare timer, not asyncio.wait_for: this runs for every heartbeat.
        timer = loop.call_later(self._timeout, _expire, ack)
        # Nats-Msg-Id lets the stream drop a duplicate within its window.
        headers = {MSG_ID_HEADER: msg_id} if msg_id is not None else None
        try:
            await self._nc.publish(subject, payload, reply=reply, headers=headers)
            msg = await ack
        except (NatsError, TimeoutError, OSError) as exc:
            raise Unavailable(
                f"no acknowledgement from stream {stream} within {self._timeout:g}s "
                f"({type(exc).__name__})"
            ) from None
        finally:
            timer.cancel()
            self._pending.pop(reply, None)
        return _sequence(msg, stream)

    async def _on_ack(self, msg: Any) -> None:
        waiter = self._pending.get(msg.subject)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)


def _expire(ack: asyncio.Future[Any]) -> None:
    if not ack.done():
        ack.set_exception(TimeoutError())


def _sequence(msg: Any, stream: str) -> int:
    """The stream sequence in an ack, or the typed error it reports."""
    if not msg.data and msg.headers and msg.headers.get(STATUS_HEADER) == _NO_RESPONDERS:
        raise Unavailable(f"stream {stream} is not answering")
    try:
        ack = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise Unavailable(f"stream {stream} sent an unreadable acknowledgement") from None
    error = ack.get("error") if isinstance(ack, dict) else None
    if error is not None:
        if error.get("err_code") == _MSG_TOO_LARGE:
            raise PayloadTooLarge("message is larger than the stream accepts")
        raise Unavailable(f"stream {stream} refused the message: {error.get('description')}")
    if not isinstance(ack, dict) or "seq" not in ack:
        raise Unavailable(f"stream {stream} sent an unexpected acknowledgement")
    return int(ack["seq"])
