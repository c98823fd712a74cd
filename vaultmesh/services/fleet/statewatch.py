"""Following the FLEET_STATE bucket: load it at start, then learn what other replicas write.

One ordered KV watch (the last value of every key, then live updates). The
initial values are the restore: records and tombstones, with their revisions.
After that every write to the bucket arrives here, the replica's own included:
a tombstone is a removal to apply (a delete served by another replica, or the
holder's expiry), a record moves the node's revision on, and a deleted lease key
means its holder stopped. What the entries mean is the service's business; this
module only delivers them, in bucket order.

``snapshot`` reads the bucket once more, for a replica taking over as the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from vaultmesh.shared.runtime import Lifecycle

from .replication import StateEntry

log = logging.getLogger(__name__)


Handler = Callable[[StateEntry], None]


def entry_of(entry: KeyValue.Entry) -> StateEntry:
    """A StateEntry from nats-py's KV entry."""
    # nats-py annotates ``created`` as int but fills it with the message's datetime.
    created: object = entry.created
    stored_at = created.timestamp() if isinstance(created, datetime) else None
    deleted = entry.operation in (KV_DEL, KV_PURGE)
    return StateEntry(entry.key, entry.value or b"", entry.revision or 0, deleted, stored_at)


class StateWatch(Lifecycle):
    """Delivers the bucket's current values (``load``), then every later write (``start``)."""

    def __init__(self, kv: KeyValue, handler: Handler, timeout_s: float) -> None:
        self._kv = kv
        self._handler = handler
        self._timeout_s = timeout_s
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None

    async def load(self, restore: Handler) -> int:
        """Deliver every current value to ``restore``; returns how many (the watch stays
        open, holding later writes for ``start``)."""
        self._watcher = await self._kv.watchall()
        loaded = 0
        try:
            while True:
                entry = await self._watcher.updates(timeout=self._timeout_s)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                restore(entry_of(entry))
                loaded += 1
        except NatsTimeoutError:
            log.warning("derived state load timed out; continuing with what was read")
        return loaded

    async def start(self) -> None:
        """Deliver later writes to the handler as they come (idempotent; after ``load``)."""
        if self._task is None and self._watcher is not None:
            self._task = asyncio.create_task(self._follow(self._watcher))

    async def stop(self) -> None:
        """Stop the watch (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:
                continue
            try:
                self._handler(entry_of(entry))
            except Exception:
                log.exception("state entry not applied", extra={"key": entry.key})


async def snapshot(kv: KeyValue, timeout_s: float) -> AsyncIterator[StateEntry]:
    """Every current value of the bucket (raises nats' TimeoutError when it stalls)."""
    watcher = await kv.watchall()
    try:
        while True:
            entry = await watcher.updates(timeout=timeout_s)  # type: ignore[no-untyped-call]
            if entry is None:
                return
            yield entry_of(entry)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
