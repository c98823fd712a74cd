"""The writer lease: which fleet-state replica writes derived state, held in KV.

One key of the ``FLEET_STATE`` bucket (``leader``; node keys are UUIDs, so it
cannot clash) names the holder. It is created only where absent (compare-and-set
on "no value"), stored with a per-message TTL, and renewed every third of the
TTL by compare-and-set on the holder's own revision. A holder that dies stops
renewing and the server drops the key when the TTL runs out; a holder that stops
cleanly deletes it, and the others, which watch the bucket, try at once (``poke``).

The holder counts itself the holder only until a safe fraction of the TTL after
it *sent* its last successful renewal: the server's TTL starts when it stored
that renewal, later, so by the time another replica can create the key this
one has stopped writing (up to clock rate differences, which the margin covers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from vaultmesh.shared import codec, subjects
from vaultmesh.shared.runtime import Lifecycle

from .replication import LEASE_KEY

log = logging.getLogger(__name__)

# Count the lease as ours for this share of the TTL after sending the renewal.
_SAFE_SHARE = 0.8
_RELEASE_TIMEOUT_S = 2.0
_ERRORS = (NatsError, TimeoutError, OSError)


class Lease(Lifecycle):
    """Takes, renews and releases the writer lease; calls back on gain and loss."""

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        *,
        holder: str,
        ttl_s: int,
        on_gain: Callable[[], Awaitable[None]],
        on_loss: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._js = js
        self._kv = kv
        self._holder = holder.encode()
        self._ttl_s = ttl_s
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._monotonic = monotonic
        self._subject = subjects.kv_key(subjects.KV_FLEET_STATE, LEASE_KEY)
        self._stream = subjects.kv_stream(subjects.KV_FLEET_STATE)
        self._rev = 0  # the lease key's revision while we hold it
        self._until = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._gaining: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        """True while this replica holds the lease (by its own clock, with a margin)."""
        return bool(self._rev) and self._monotonic() < self._until

    async def start(self) -> None:
        """Try once now (taking over before returning if the lease was free), then keep
        renewing or trying (idempotent)."""
        if self._task is not None:
            return
        acquired = await self._attempt_acquire()
        self._task = asyncio.create_task(self._loop())
        if acquired:
            await self._gain()

    def poke(self) -> None:
        """Try now instead of at the next tick (the key was deleted: its holder stopped)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop renewing and trying; release the lease if held, so another takes over
        at once instead of after the TTL (idempotent)."""
        for task in (self._task, self._gaining):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._gaining = None
        if self._rev:
            rev, self._rev = self._rev, 0
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(self._kv.delete(LEASE_KEY, last=rev), _RELEASE_TIMEOUT_S)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._ttl_s / 3)
            self._wake.clear()
            if self._rev:
                await self._renew()
            elif await self._attempt_acquire():
                self._gaining = asyncio.create_task(self._gain())

    async def _attempt_acquire(self) -> bool:
        sent = self._monotonic()
        try:
            rev = await self._kv.create(LEASE_KEY, self._holder, msg_ttl=self._ttl_s)
        except KeyWrongLastSequenceError:
            return False  # someone holds it
        except _ERRORS as exc:
            log.debug("writer lease not taken", extra={"error_type": type(exc).__name__})
            return False
        self._rev = rev
        self._until = sent + self._ttl_s * _SAFE_SHARE
        log.info("writer lease taken", extra={"ttl_s": self._ttl_s})
        return True

    async def _gain(self) -> None:
        try:
            await self._on_gain()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without a completed takeover this replica must not write: let another try.
            log.warning("takeover failed; releasing", extra={"error_type": type(exc).__name__})
            rev = self._rev
            self._lose()
            with contextlib.suppress(*_ERRORS):
                await self._kv.delete(LEASE_KEY, last=rev)

    async def _renew(self) -> None:
        sent = self._monotonic()
        try:
            ack = await self._js.publish(
                self._subject,
                self._holder,
                stream=self._stream,
                headers={codec.EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER: str(self._rev)},
                msg_ttl=self._ttl_s,
            )
        except _ERRORS as exc:
            if codec.wrong_last_sequence(exc):
                log.warning("writer lease lost to another replica")
                self._lose()
            elif not self.held:
                log.warning("writer lease lapsed", extra={"error_type": type(exc).__name__})
                self._lose()
            return
        self._rev = int(ack.seq)
        self._until = sent + self._ttl_s * _SAFE_SHARE

    def _lose(self) -> None:
        self._rev = 0
        if self._gaining is not None and self._gaining is not asyncio.current_task():
            self._gaining.cancel()
        self._on_loss()
