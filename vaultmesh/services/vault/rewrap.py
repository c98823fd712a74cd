"""Background rewrap: re-seal versions written under older key terms with the newest one.

It runs one pass per target term; a rotation during a pass makes it start over
with the newer target. Versions that fail their integrity check are left as
they are and counted; a storage failure stops the pass (state ``failed``) until
the next rotation or restart.

Replicas sharing a store rewrap one at a time: a pass runs only while this
replica holds the store's rewrap lease (``lease``), renewed as the pass goes.
Every replica that learns of a new term wants a pass to it; the others wait
(state ``waiting``) and ask again every quarter of the lease's lifetime, so if
the holder dies, another one takes over once its lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vaultmesh.services.vault.lease import Lease, LocalLease
from vaultmesh.shared.clock import Clock, rfc3339
from vaultmesh.shared.errors import VaultMeshError

log = logging.getLogger(__name__)
# Yield to request handling every few records, so a long rewrap never starves it.
_YIELD_EVERY = 16

FindStale = Callable[[int], Awaitable[list[str]]]
RewrapOne = Callable[[str, int], Awaitable[int]]


@dataclass
class RewrapProgress:
    """Where the current (or last) rewrap pass is."""

    state: str = "idle"
    target_term: int = 0
    total: int = 0
    done: int = 0
    failed_versions: int = 0
    started: datetime | None = None
    finished: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the status reply."""
        return {
            "state": self.state,
            "target_term": self.target_term,
            "total": self.total,
            "done": self.done,
            "failed_versions": self.failed_versions,
            "started": rfc3339(self.started) if self.started else None,
            "finished": rfc3339(self.finished) if self.finished else None,
        }


class _LeaseTaken(Exception):
    """Another replica holds the rewrap lease."""


class Rewrapper:
    """Runs rewrap passes in a background task, while holding the rewrap lease."""

    def __init__(
        self,
        find_stale: FindStale,
        rewrap_one: RewrapOne,
        clock: Clock,
        lease: Lease | None = None,
    ) -> None:
        self._find_stale = find_stale
        self._rewrap_one = rewrap_one
        self._clock = clock
        self._lease: Lease = lease or LocalLease()
        self._held = False
        self._target = 0
        self._task: asyncio.Task[None] | None = None
        self.progress = RewrapProgress()

    def start(self, target: int) -> None:
        """Make sure every record ends up sealed under ``target`` or newer."""
        self._target = max(self._target, target)
        if self._task is None or self._task.done():
            self.progress = RewrapProgress("running", self._target, started=self._clock.now())
            self._task = asyncio.create_task(self._run(), name="vault-rewrap")

    async def wait(self) -> None:
        """Wait until no pass is running."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Cancel a running pass (it resumes from the store on the next start)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._hold()
                    async with self._renewing():
                        await self._passes()
                    return
                except _LeaseTaken:
                    self.progress.state = "waiting"
                    await asyncio.sleep(self._lease.ttl / 4)
                except VaultMeshError as exc:
                    self.progress.state = "failed"
                    log.error(
                        "rewrap failed", extra={"code": exc.code, "target_term": self._target}
                    )
                    return
        finally:
            if self._held:
                self._held = False
                await self._lease.release()

    async def _passes(self) -> None:
        while True:
            target = self._target
            if await self._pass(target) and self._target == target:
                self.progress.state = "done"
                self.progress.finished = self._clock.now()
                log.info("rewrap done", extra={"target_term": target, **self._counts()})
                return

    async def _hold(self) -> None:
        """Take the lease; _LeaseTaken when another replica has it."""
        self._held = await self._lease.claim()
        if not self._held:
            raise _LeaseTaken

    @contextlib.asynccontextmanager
    async def _renewing(self) -> AsyncIterator[None]:
        """Renew the lease every third of its lifetime while the body runs (finding stale
        records alone can outlast the lease); if a renewal fails, stop the body."""
        worker = asyncio.current_task()
        assert worker is not None
        lost = False

        async def renew() -> None:
            nonlocal lost
            while True:
                await asyncio.sleep(self._lease.ttl / 3)
                try:
                    held = await self._lease.claim()
                except VaultMeshError:
                    held = False  # it may lapse before the bus is back: stop rather than overlap
                if not held:
                    lost = True
                    worker.cancel()
                    return

        keeper = asyncio.create_task(renew(), name="vault-rewrap-lease")
        try:
            yield
        except asyncio.CancelledError:
            if not lost:
                raise
            worker.uncancel()
            self._held = False
            raise _LeaseTaken from None
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    def _counts(self) -> dict[str, int]:
        return {"records": self.progress.done, "failed_versions": self.progress.failed_versions}

    async def _pass(self, target: int) -> bool:
        self.progress = RewrapProgress("running", target, started=self._clock.now())
        paths = await self._find_stale(target)
        self.progress.total = len(paths)
        for index, path in enumerate(paths):
            if self._target != target:
                return False
            self.progress.failed_versions += await self._rewrap_one(path, target)
            self.progress.done += 1
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return True
