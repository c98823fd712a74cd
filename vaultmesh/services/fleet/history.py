"""Heartbeat history, served from the HEARTBEATS stream itself (nothing kept in memory).

The stream keeps the last ``heartbeat_history`` messages per node subject; one
JetStream batched direct get (``next_by_subj`` from the start, up to that
depth) returns them oldest first, in one request, from any replica.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError

from vaultmesh.shared import subjects
from vaultmesh.shared.codec import STATUS_HEADER
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.models.heartbeat import Heartbeat

_SEQUENCE = "Nats-Sequence"
_END = {"204", "404"}  # end of batch; no message on that subject


class HeartbeatHistoryReader:
    """Reads a node's stored heartbeats from the stream."""

    def __init__(self, nc: Client, depth: int, timeout: float = 5.0) -> None:
        self._nc = nc
        self._depth = depth
        self._timeout = timeout

    async def newest(self, node_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` valid heartbeats of ``node_id``, newest first, as JSON objects."""
        raw = await self._read(subjects.heartbeat(node_id))
        beats = []
        for data in reversed(raw):
            try:
                hb = Heartbeat.model_validate_json(data)
            except ValidationError:
                continue  # rejected at ingest too; history shows what fleet-state accepted
            if str(hb.node_id) != node_id:
                continue
            beats.append(hb.model_dump(mode="json"))
            if len(beats) >= limit:
                break
        return beats

    async def _read(self, subject: str) -> deque[bytes]:
        """The subject's messages, oldest first, keeping the newest ``depth``."""
        kept: deque[bytes] = deque(maxlen=self._depth)
        seq = 0
        while True:
            batch, last = await self._batch(subject, seq)
            kept.extend(batch)
            if len(batch) < self._depth:
                return kept
            seq = last + 1  # the subject holds more than one batch (deeper stream config)

    async def _batch(self, subject: str, seq: int) -> tuple[list[bytes], int]:
        request = orjson.dumps({"seq": seq, "next_by_subj": subject, "batch": self._depth})
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, max_msgs=self._depth + 1)
        found: list[bytes] = []
        last = seq
        try:
            await self._nc.publish(
                subjects.js_direct_get(subjects.STREAM_HEARTBEATS), request, reply=inbox
            )
            while len(found) < self._depth:
                msg = await sub.next_msg(timeout=self._timeout)
                headers = msg.headers or {}
                if headers.get(STATUS_HEADER) in _END:
                    break
                if STATUS_HEADER in headers:
                    raise Unavailable(
                        f"heartbeat history read failed: status {headers[STATUS_HEADER]}"
                    )
                found.append(msg.data)
                last = int(headers.get(_SEQUENCE, last))
        except NatsTimeoutError:
            raise Unavailable("heartbeat history: the stream did not answer in time") from None
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return found, last
