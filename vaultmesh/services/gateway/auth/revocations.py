"""Logged-out sessions, shared by every gateway replica through the SESSION_REVOCATIONS bucket.

Replicas share nothing but NATS, so a logout is written to a KV bucket (key: the
session id, value: the cookie's expiry) with a per-message TTL of what is left
of the cookie's life, and every replica watches the bucket into its
``RevokedSessions``. A replica loads the bucket before it serves; afterwards a
revocation reaches the other replicas as fast as a KV watch delivers (typically
milliseconds). The replica that handled the logout refuses the cookie at once,
even if the bucket cannot be written (that failure is logged and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from vaultmesh.services.gateway.auth.sessions import RevokedSessions, Session
from vaultmesh.services.gateway.metrics import GatewayMetrics
from vaultmesh.shared import buckets, streams, subjects
from vaultmesh.shared.clock import Clock

log = logging.getLogger(__name__)
_LOAD_TIMEOUT_S = 10.0
_ERRORS = (NatsError, TimeoutError, OSError)


class SessionRevocations:
    """Writes this replica's logouts to the bus and follows everyone's."""

    def __init__(
        self, js: JetStreamContext, revoked: RevokedSessions, clock: Clock, metrics: GatewayMetrics
    ) -> None:
        self._js = js
        self._revoked = revoked
        self._clock = clock
        self._results = metrics.base.counter(
            "vaultmesh_gateway_session_revocations_total",
            "Logouts written to the SESSION_REVOCATIONS bucket, by result: stored or failed.",
            ["result"],
        )
        self._service = metrics.service
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the bucket, load every revocation, then follow new ones (idempotent)."""
        if self._kv is not None:
            return
        kv = await streams.open_bucket(self._js, buckets.session_revocations_config())
        watcher = await kv.watchall()
        loaded = 0
        with contextlib.suppress(NatsTimeoutError):
            while (entry := await watcher.updates(timeout=_LOAD_TIMEOUT_S)) is not None:  # type: ignore[no-untyped-call]
                loaded += self._apply(entry)
        self._kv = kv
        self._task = asyncio.create_task(self._follow(watcher), name="session-revocations")
        log.info("session revocations loaded", extra={"count": loaded})

    def stop(self) -> None:
        """Stop following (the connection's close ends the watch itself); start loads afresh."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._kv = None

    async def revoke(self, session: Session) -> bool:
        """Revoke ``session`` here at once and on every replica; False if not stored on the bus."""
        self._revoked.add(session.session_id, session.expires)
        left = session.expires - int(self._clock.now().timestamp())
        try:
            if self._kv is None:
                raise NatsError("not started")
            await self._kv.create(
                subjects.token(session.session_id),
                str(session.expires).encode(),
                msg_ttl=max(1, left),
            )
        except KeyWrongLastSequenceError:
            pass  # revoked already (a second logout with the same cookie)
        except _ERRORS as exc:
            log.warning("session revocation not stored", extra={"error": type(exc).__name__})
            self._results.labels(self._service, "failed").inc()
            return False
        self._results.labels(self._service, "stored").inc()
        return True

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(entry)

    def _apply(self, entry: KeyValue.Entry) -> int:
        if entry.operation in (KV_DEL, KV_PURGE):
            return 0
        try:
            expires = int(entry.value or b"")
        except ValueError:
            log.warning("unreadable session revocation skipped")
            return 0
        self._revoked.add(entry.key, expires)
        return 1
