"""The log's replicated copy in JetStream (stream ``LOGGER_LOG``), and its single writer.

Three kinds of message, in one stream so their order is one order:

    logger.log.entries     the entries' lines as a byte stream (see ``chunks``), headers
                           Vm-Log-Entry / Vm-Log-Offset / Vm-Log-End
    logger.log.checkpoint  a signed checkpoint, with the streams' creation times
    logger.log.writer      a writer's claim: it writes from here on (with its public key)

The capture writes each batch here and waits for the acknowledgement *before* it
writes the batch locally and acknowledges the source messages, and records each
checkpoint here before its own chain: the local directory is a working copy that is
always a prefix of this stream, and a new logger with an empty volume rebuilds it
from here (``catchup``).

Single writer: every publish carries ``Nats-Expected-Last-Sequence``, the stream
sequence this writer last saw. JetStream stores the message only if nothing else was
stored since, so two writers can never both append: a writer starts by publishing
its claim that way, and a writer that finds another's message after its own gets
``WriterFenced`` and must stop. The newest claim wins.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from vaultmesh.services.logger.checkpoint import Checkpoint
from vaultmesh.services.logger.chunks import Chunk, split
from vaultmesh.services.logger.errors import LogCorrupt, WriterFenced
from vaultmesh.shared import codec, subjects
from vaultmesh.shared.streams import ensure_stream

log = logging.getLogger(__name__)

ENTRY_HEADER = "Vm-Log-Entry"
OFFSET_HEADER = "Vm-Log-Offset"
END_HEADER = "Vm-Log-End"
_HEADER_ROOM = 1024  # bytes of a message kept for headers
_MAX_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Head:
    """Where the replicated log ends: entries held, the newest checkpoint, last message."""

    entries: int
    checkpoint: Checkpoint | None
    last_seq: int


@dataclass(frozen=True)
class Record:
    """One message read back: a piece of the entries, a checkpoint, or a writer's claim."""

    chunk: Chunk | None = None
    checkpoint: Checkpoint | None = None
    created: dict[str, str] | None = None  # with a checkpoint: the streams' creation times
    public_key: bytes | None = None  # with a claim: the PEM of the key that signs from then


def _chunk_of(msg: RawStreamMsg) -> Chunk:
    headers = msg.headers or {}
    try:
        return Chunk(
            msg.data or b"",
            int(headers[ENTRY_HEADER]),
            int(headers[OFFSET_HEADER]),
            int(headers[END_HEADER]),
        )
    except (KeyError, ValueError):
        raise LogCorrupt(f"replicated log message {msg.seq} has no position") from None


def _record(msg: RawStreamMsg) -> Record:
    if msg.subject == subjects.LOGGER_LOG_ENTRIES:
        return Record(chunk=_chunk_of(msg))
    try:
        body: Any = orjson.loads(msg.data or b"")
        if msg.subject == subjects.LOGGER_LOG_CHECKPOINT:
            created = {str(k): str(v) for k, v in body.get("created", {}).items()}
            return Record(checkpoint=Checkpoint.from_json(body["checkpoint"]), created=created)
        return Record(public_key=str(body["public_key"]).encode())
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise LogCorrupt(f"replicated log message {msg.seq} is malformed") from None


class Replica:
    """Stream ``LOGGER_LOG``: read it back, claim it, append to it."""

    def __init__(self, js: JetStreamContext, config: StreamConfig, writer: str) -> None:
        self._js = js
        self._config = config
        self._writer = writer
        self._last = -1  # the stream's last sequence as this writer knows it; -1: no claim
        self._claim = 0
        self._budget = _MAX_CHUNK
        self.bytes_sent = 0

    @property
    def stream(self) -> str:
        """The stream's name."""
        return str(self._config.name)

    async def open(self, max_payload: int) -> None:
        """Make sure the stream exists (or wait for provisioning); size messages to fit."""
        await ensure_stream(self._js, self._config, owner=True)
        limit = min(max_payload, self._config.max_msg_size or max_payload, _MAX_CHUNK)
        self._budget = max(4096, limit - _HEADER_ROOM)

    # ---- reading ---------------------------------------------------------------------

    async def _get(self, seq: int, subject: str | None = None) -> RawStreamMsg | None:
        """Message ``seq``, or with ``subject`` the first of that subject at or after it."""
        try:
            return await self._js.get_msg(
                self.stream, seq=seq, subject=subject, next=subject is not None, direct=True
            )
        except NotFoundError:
            return None

    async def _last_of(self, subject: str) -> RawStreamMsg | None:
        try:
            return await self._js.get_msg(self.stream, subject=subject, direct=True)
        except NotFoundError:
            return None

    async def head(self) -> Head:
        """How far the replicated log goes."""
        info = await self._js.stream_info(self.stream)
        last = await self._last_of(subjects.LOGGER_LOG_ENTRIES)
        cp = await self._last_of(subjects.LOGGER_LOG_CHECKPOINT)
        checkpoint = _record(cp).checkpoint if cp is not None else None
        return Head(_chunk_of(last).end if last else 0, checkpoint, info.state.last_seq)

    async def _find(self, entry: int, last_seq: int) -> int | None:
        """The stream sequence to read from to get entry ``entry`` (None: not held)."""
        if entry == 0:
            return 1 if last_seq else None  # from the start: the first claim's key too
        lo, hi = 1, last_seq + 1  # the first message whose entries end after ``entry``
        while lo < hi:
            mid = (lo + hi) // 2
            msg = await self._get(mid, subjects.LOGGER_LOG_ENTRIES)
            if msg is None or _chunk_of(msg).end > entry:
                hi = mid
            else:
                lo = mid + 1
        found = await self._get(lo, subjects.LOGGER_LOG_ENTRIES) if lo <= last_seq else None
        if found is None:
            return None
        seq, chunk = found.seq or lo, _chunk_of(found)
        while chunk.offset and chunk.entry == entry:  # a long line: back to its first part
            seq -= 1
            prev = await self._get(seq)
            if prev is None or prev.subject != subjects.LOGGER_LOG_ENTRIES:
                raise LogCorrupt(f"replicated log: entry {entry} has no beginning", entry)
            chunk = _chunk_of(prev)
        return seq

    async def read_from(self, entry: int, last_seq: int) -> AsyncIterator[tuple[int, Record]]:
        """(stream seq, record) from the message holding entry ``entry`` to ``last_seq``."""
        seq = await self._find(entry, last_seq)
        while seq is not None and seq <= last_seq:
            msg = await self._get(seq)
            if msg is None:
                raise LogCorrupt(f"replicated log message {seq} is missing")
            yield seq, _record(msg)
            seq += 1

    # ---- writing (the claimed writer only) -------------------------------------------

    async def claim(self, public_key_pem: bytes, last_seq: int) -> None:
        """Become the writer, if the stream still ends at ``last_seq`` (else WriterFenced)."""
        body = {"writer": self._writer, "public_key": public_key_pem.decode()}
        self._last = last_seq
        self._claim = await self._publish(subjects.LOGGER_LOG_WRITER, orjson.dumps(body))
        log.info("claimed the log", extra={"stream_seq": self._claim})

    async def still_ours(self) -> None:
        """After an unanswered publish: carry on if no other writer claimed since ours."""
        last = await self._last_of(subjects.LOGGER_LOG_WRITER)
        if last is None or last.seq != self._claim:
            raise WriterFenced("another logger claimed the log")
        self._last = (await self._js.stream_info(self.stream)).state.last_seq

    async def append(self, lines: Sequence[bytes], first: int) -> None:
        """Store ``lines`` (entries ``first``..) as messages, each after the one before."""
        for chunk in split(lines, first, self._budget):
            headers = {
                ENTRY_HEADER: str(chunk.entry),
                OFFSET_HEADER: str(chunk.offset),
                END_HEADER: str(chunk.end),
            }
            await self._publish(subjects.LOGGER_LOG_ENTRIES, chunk.data, headers)

    async def add_checkpoint(self, cp: Checkpoint, created: dict[str, str]) -> None:
        """Store a signed checkpoint (before the local chain records it)."""
        body = orjson.dumps({"checkpoint": cp.to_json(), "created": created})
        await self._publish(subjects.LOGGER_LOG_CHECKPOINT, body)

    async def _publish(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> int:
        if self._last < 0:
            raise WriterFenced("this logger has not claimed the log")
        try:
            ack = await self._js.publish(
                subject,
                data,
                stream=self.stream,
                headers={**(headers or {}), codec.EXPECTED_LAST_SEQUENCE_HEADER: str(self._last)},
            )
        except BadRequestError as exc:
            if codec.wrong_last_sequence(exc):
                self._last = -1
                raise WriterFenced("another logger wrote to the log") from None
            raise
        self._last = ack.seq
        self.bytes_sent += len(data)
        return ack.seq
