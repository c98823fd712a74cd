"""Bringing the local working copy and the replicated log level, then claiming the log.

On start (and after a failure the writer cannot place) the logger:

1. reads the replicated log from the latest entry both are sure to share (the local
   log's signed size) and compares every line the local log also holds — a local
   log that differs from the replica is refused, never overwritten;
2. appends what only the replica holds (after a crash between the replica's
   acknowledgement and the local write, or on an empty volume: the whole log),
   with its checkpoints — each must extend the chain and match the tree, so what
   is adopted is exactly what was signed — and the public keys of past writers;
3. claims the log (``Replica.claim``), which fails if another writer appended
   meanwhile: then it starts over;
4. publishes the local log into an empty replica (a log written before the replica
   existed): its lines and checkpoints, in order. A local log ahead of a replica that
   is not empty is refused: nothing is written locally before it is replicated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.chunks import Reassembler
from vaultmesh.services.logger.errors import LogCorrupt, WriterFenced
from vaultmesh.services.logger.replica import Head, Record, Replica

log = logging.getLogger(__name__)

ADOPT_BATCH = 4096
CLAIM_ATTEMPTS = 5


class _Adopter:
    """Walks the replica's records against the local log, adopting what it lacks."""

    def __init__(self, auditlog: AuditLog, start: int) -> None:
        self._log = auditlog
        self._size = auditlog.size  # local entries before adoption: compared, not adopted
        self._local: Iterator[tuple[int, bytes]] = auditlog.lines(start, self._size)
        self._pending: list[bytes] = []
        self.adopted = 0

    async def take(self, record: Record, reassembler: Reassembler) -> None:
        if record.chunk is not None:
            for seq, line in reassembler.feed(record.chunk):
                await self._line(seq, line)
        elif record.checkpoint is not None:
            await self.flush()
            self._checkpoint(record)
        elif record.public_key is not None:
            self._log.add_public_key(record.public_key)

    async def _line(self, seq: int, line: bytes) -> None:
        if seq < self._size:
            if next(self._local, None) != (seq, line):
                raise LogCorrupt(f"the local log and the replicated log differ at entry {seq}", seq)
            return
        self._pending.append(line)
        if len(self._pending) >= ADOPT_BATCH:
            await self.flush()

    def _checkpoint(self, record: Record) -> None:
        cp = record.checkpoint
        assert cp is not None
        local = self._log.chain.at_size(cp.tree_size)
        if local is not None:
            if local.digest() != cp.digest():
                raise LogCorrupt(
                    f"the local and replicated checkpoints of size {cp.tree_size} differ"
                )
            return
        self._log.stream_created = dict(record.created or {})
        self._log.add_checkpoint(cp)

    async def flush(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            await asyncio.to_thread(self._log.adopt, lines)
            self.adopted += len(lines)


async def _adopt(auditlog: AuditLog, replica: Replica, head: Head) -> int:
    # Start where both must agree: the local signed size (or the replica's last entry).
    start = min(auditlog.signed_size, max(head.entries - 1, 0))
    adopter, reassembler = _Adopter(auditlog, start), Reassembler(start)
    async for _seq, record in replica.read_from(start, head.last_seq):
        await adopter.take(record, reassembler)
    await adopter.flush()
    return adopter.adopted


async def _push(auditlog: AuditLog, replica: Replica, head: Head) -> int:
    """Publish the local entries and checkpoints the replica lacks, in their order."""
    done = head.entries
    signed = head.checkpoint.tree_size if head.checkpoint else 0
    marks = [cp for cp in auditlog.chain.checkpoints if cp.tree_size > signed]
    for cp in [*marks, None]:
        upto = cp.tree_size if cp is not None else auditlog.size
        while done < upto:
            end = min(upto, done + ADOPT_BATCH)
            await replica.append([line for _seq, line in auditlog.lines(done, end)], done)
            done = end
        if cp is not None:
            await replica.add_checkpoint(cp, auditlog.stream_created)
    return done - head.entries


def _empty(head: Head) -> bool:
    return head.entries == 0 and head.checkpoint is None


async def adopt(auditlog: AuditLog, replica: Replica) -> tuple[int, Head]:
    """Append to ``auditlog`` what only ``replica`` holds: (entries adopted, the replica's head).

    The local log may only be ahead of an empty replica (a log from before the replica
    existed): every entry and checkpoint is replicated before it is written locally, so
    anything else ahead was added to the directory behind the logger's back.
    """
    head = await replica.head()
    adopted = await _adopt(auditlog, replica, head)
    latest = auditlog.chain.latest
    signed = head.checkpoint.tree_size if head.checkpoint else 0
    ahead = auditlog.size > head.entries or (latest is not None and latest.tree_size > signed)
    if ahead and not _empty(head):
        raise LogCorrupt(
            f"the local log holds entries or checkpoints the replicated log lacks "
            f"({auditlog.size} entries against {head.entries})"
        )
    return adopted, head


async def level_and_claim(auditlog: AuditLog, replica: Replica) -> tuple[int, int]:
    """Level ``auditlog`` with ``replica`` and claim it: (entries adopted, entries pushed)."""
    adopted = 0
    for attempt in range(CLAIM_ATTEMPTS):
        count, head = await adopt(auditlog, replica)
        adopted += count
        try:
            await replica.claim(auditlog.public_key_pem.encode(), head.last_seq)
        except WriterFenced:
            log.warning("the replicated log moved while catching up; again", extra={"n": attempt})
            continue
        pushed = await _push(auditlog, replica, head) if _empty(head) else 0
        if adopted or pushed:
            log.info(
                "log levelled with its replica",
                extra={"adopted": adopted, "pushed": pushed, "size": auditlog.size},
            )
        return adopted, pushed
    raise WriterFenced("another logger keeps writing to the log")
