"""The log as a byte stream cut into bounded messages, and putting it back together.

The replicated copy of the log (``replica``) stores the entries' lines — exactly the
bytes of the segments, each line ending in a newline — as a sequence of messages no
larger than the bus allows. A batch of lines is packed into as few messages as fit;
a line larger than one message is split over several consecutive ones. Each message
says where it starts:

    entry   the log sequence of the entry its first byte belongs to
    offset  that byte's position inside the entry's line (0: it starts a line)
    end     how many entries are complete once this message is read

so a reader can start at the message holding any entry (``end`` only grows, so it
can be found by binary search) and check that nothing is missing or out of place. A
batch always starts a new line at offset 0; a reader that holds half a line when a
message with offset 0 arrives drops it (a batch cut short by a failed publish, then
written again whole).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from vaultmesh.services.logger.errors import LogCorrupt


@dataclass(frozen=True, slots=True)
class Chunk:
    """One message of the replicated log's byte stream."""

    data: bytes
    entry: int
    offset: int
    end: int


def split(lines: Sequence[bytes], first_seq: int, budget: int) -> list[Chunk]:
    """The messages (at most ``budget`` bytes each) for ``lines``, entry ``first_seq`` first."""
    chunks: list[Chunk] = []
    buf, start = bytearray(), first_seq
    for seq, line in enumerate(lines, first_seq):
        record = line + b"\n"
        if buf and len(buf) + len(record) > budget:
            chunks.append(Chunk(bytes(buf), start, 0, seq))
            buf, start = bytearray(), seq
        if len(record) <= budget:
            buf += record
            continue
        # A line larger than a message: its parts go out alone, one after the other.
        for offset in range(0, len(record), budget):
            part = record[offset : offset + budget]
            done = offset + budget >= len(record)
            chunks.append(Chunk(part, seq, offset, seq + 1 if done else seq))
        start = seq + 1
    if buf:
        chunks.append(Chunk(bytes(buf), start, 0, first_seq + len(lines)))
    return chunks


class Reassembler:
    """Turns the messages, in stream order, back into (seq, line) from entry ``start`` on."""

    def __init__(self, start: int) -> None:
        self._start = start
        self._next: int | None = None  # the entry the next byte belongs to
        self._carry = b""
        self._base = 0  # where the held half line's bytes start inside its line
        self._skip_partial = False

    def feed(self, chunk: Chunk) -> Iterator[tuple[int, bytes]]:
        """The lines ``chunk`` completes (only those at or after the start entry)."""
        self._place(chunk)
        data = self._carry + chunk.data
        lines = data.split(b"\n")
        self._carry = lines.pop()
        if lines:
            self._base = 0
        assert self._next is not None
        for line in lines:
            seq, self._next = self._next, self._next + 1
            if self._skip_partial:
                self._skip_partial = False  # the tail of a line begun before the start
            elif seq >= self._start:
                yield seq, line
        if self._next != chunk.end:
            raise LogCorrupt(f"replicated log message ending at entry {chunk.end} is damaged")

    def _place(self, chunk: Chunk) -> None:
        if self._next is None:  # the first message read
            if chunk.offset and chunk.entry >= self._start:
                raise LogCorrupt(f"replicated log: entry {chunk.entry} has no beginning")
            self._next, self._skip_partial = chunk.entry, chunk.offset > 0
            self._base = chunk.offset
            return
        if chunk.offset == 0:
            if chunk.entry != self._next:
                raise LogCorrupt(f"replicated log: entry {chunk.entry} follows {self._next}")
            self._carry, self._base = b"", 0  # half a line cut short, then written again
        elif chunk.entry != self._next or self._base + len(self._carry) != chunk.offset:
            raise LogCorrupt(f"replicated log: a part of entry {chunk.entry} is missing")

    @property
    def pending(self) -> bool:
        """True while half a line is held (a batch cut short at the end of the stream)."""
        return bool(self._carry)
