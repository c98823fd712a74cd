"""The ``logs`` micro service's handlers: thin, over the audit log being written.

Handlers are thin: validate (the runtime does it with the request models),
resolve times against the injected clock, run the query or proof in a worker
thread (never blocking the writer), encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

from vaultmesh.services.logger import query, timespec
from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.capture import Capture
from vaultmesh.services.logger.merkle import ProofError
from vaultmesh.services.logger.models import (
    CheckpointRequest,
    EntryFilter,
    EntryList,
    ProofRequest,
    Stats,
    StatsRequest,
    ViewRequest,
)
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.errors import BadRequest, NotFound
from vaultmesh.shared.micro import Call, Endpoint


def make_filter(req: EntryFilter, now: Any, **cursors: int | None) -> query.Filter:
    """The scan filter for a request, with its times resolved at ``now``."""
    return query.Filter(
        kind=req.kind,
        node=req.node,
        subject=req.subject,
        since=timespec.resolve(req.since, now),
        until=timespec.resolve(req.until, now),
        min_severity=req.min_severity.value if req.min_severity else None,
        **cursors,
    )


class LogsApi:
    """Handlers of the ``logs`` endpoints."""

    def __init__(self, capture: Capture, clock: Clock) -> None:
        self._capture = capture
        self._clock = clock

    @property
    def _log(self) -> AuditLog:
        return self._capture.log

    def endpoints(self) -> list[Endpoint]:
        """The micro endpoints, on ``subjects.logs_api(op)``; each may wait, so none is inline."""
        on = subjects.logs_api
        return [
            Endpoint("view", on("view"), self.view, ViewRequest, concurrent=True),
            Endpoint("stats", on("stats"), self.stats, StatsRequest, concurrent=True),
            Endpoint("proof", on("proof"), self.proof, ProofRequest, concurrent=True),
            Endpoint(
                "checkpoint", on("checkpoint"), self.checkpoint, CheckpointRequest, concurrent=True
            ),
        ]

    async def view(self, call: Call[ViewRequest]) -> EntryList:
        """Entries matching the filters; with ``after_seq`` and ``wait_s``, a long poll."""
        req = call.payload
        wait = req.wait_s if req.after_seq is not None else 0.0
        deadline = time.monotonic() + wait
        newest = req.order == "newest"
        while True:
            committed = self._capture.next_commit()
            flt = make_filter(
                req, self._clock.now(), after_seq=req.after_seq, before_seq=req.before_seq
            )
            snap = self._log.snapshot()
            entries = await asyncio.to_thread(query.view, snap, flt, req.limit, newest)
            left = deadline - time.monotonic()
            if entries or left <= 0 or self._capture.closing:
                return EntryList(entries=entries, size=snap.size)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(committed.wait(), left)

    async def stats(self, call: Call[StatsRequest]) -> Stats:
        """Counts per node, kind and severity over a window."""
        req = call.payload
        flt = make_filter(req, self._clock.now())
        snap = self._log.snapshot()
        counts = await asyncio.to_thread(query.stats, snap, flt)
        return Stats(**counts, since=flt.since, until=flt.until, size=snap.size)

    async def proof(self, call: Call[ProofRequest]) -> dict[str, Any]:
        """An inclusion or consistency proof."""
        req = call.payload
        try:
            if req.type == "inclusion":
                assert req.seq is not None
                work = functools.partial(self._log.inclusion, req.seq, req.tree_size)
            else:
                assert req.first is not None
                work = functools.partial(self._log.consistency, req.first, req.second)
            return {"type": req.type, **await asyncio.to_thread(work)}
        except ProofError as exc:
            raise BadRequest(str(exc)) from None

    async def checkpoint(self, call: Call[CheckpointRequest]) -> dict[str, Any]:
        """The latest (or a given) signed checkpoint and the key that verifies it."""
        req = call.payload
        if req.create:
            await self._capture.checkpoint()
        chain = self._log.chain
        cp = chain.latest if req.tree_size is None else chain.at_size(req.tree_size)
        if cp is None:
            raise NotFound("no such checkpoint" if req.tree_size else "no checkpoint yet")
        return {
            "checkpoint": cp.to_json(),
            "note": cp.note(),
            "public_key": self._log.public_key_pem,
            "size": self._log.size,
        }
