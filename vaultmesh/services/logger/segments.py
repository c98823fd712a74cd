"""Append-only JSONL segments, rotated by size, and reading them back.

Segment files are ``segments/segment-<first seq, 12 digits>.jsonl``; entry ``seq``
is line ``seq - first_seq`` of the segment whose range holds it, so a sequence
number locates its line without an index. Only the last (active) segment is
ever written. A batch is written with one ``write``, made durable with one
``fsync`` (``sync``), then shown to readers (``publish``). A crash can leave at
most a torn last line, which ``open`` cuts off (it was never fsynced, so never
acknowledged, so it is redelivered).

Readers work on a ``Segment`` snapshot (path, range, committed byte length) and
never see bytes past the committed length, so they need no lock while the
writer appends.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from vaultmesh.shared.files import fsync_dir, write_all

_NAME = re.compile(r"^segment-(\d{12})\.jsonl$")
_CHUNK = 1 << 20


def segment_name(first_seq: int) -> str:
    """File name of the segment starting at ``first_seq``."""
    return f"segment-{first_seq:012d}.jsonl"


@dataclass(frozen=True)
class Segment:
    """A snapshot of one segment: which entries it holds and how many bytes are committed."""

    path: Path
    first_seq: int
    count: int
    nbytes: int
    first_received: str | None = None
    last_received: str | None = None

    @property
    def end_seq(self) -> int:
        """One past the last sequence number in the segment."""
        return self.first_seq + self.count


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment file in ``directory``, in order."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_forward(seg: Segment, start_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(seq, line) of the segment's committed entries, oldest first, from ``start_seq``."""
    seq, start = seg.first_seq, start_seq if start_seq is not None else seg.first_seq
    remaining, carry = seg.nbytes, b""
    with seg.path.open("rb") as fh:
        while remaining > 0:
            chunk = fh.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for line in lines:
                if seq >= start:
                    yield seq, line
                seq += 1


def read_backward(seg: Segment) -> Iterator[tuple[int, bytes]]:
    """(seq, line) of the segment's committed entries, newest first."""
    seq, pos, carry = seg.end_seq - 1, seg.nbytes, b""
    with seg.path.open("rb") as fh:
        while pos > 0:
            size = min(_CHUNK, pos)
            pos -= size
            fh.seek(pos)
            block = fh.read(size) + carry
            lines = block.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()  # the committed range ends with a newline
            carry = lines.pop(0) + b"\n" if pos > 0 and lines else b""
            for line in reversed(lines):
                yield seq, line
                seq -= 1


def _first_line(seg: Segment) -> bytes | None:
    return next((line for _seq, line in read_forward(seg)), None)


def _last_line(seg: Segment) -> bytes | None:
    return next((line for _seq, line in read_backward(seg)), None)


class SegmentStore:
    """The segments of one log directory; one writer thread, any number of readers."""

    def __init__(
        self, directory: Path, max_bytes: int, received_of: Callable[[bytes], str]
    ) -> None:
        self._dir = directory
        self._max_bytes = max_bytes
        self._received_of = received_of
        self._segments: list[Segment] = []  # the writer's view
        self._published: tuple[Segment, ...] = ()  # the readers' view
        self._fd: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, directory: Path, max_bytes: int, received_of: Callable[[bytes], str]
    ) -> SegmentStore:
        """Open the segments in ``directory``, cutting a torn last line off the active one."""
        directory.mkdir(parents=True, exist_ok=True)
        store = cls(directory, max_bytes, received_of)
        found = list_segments(directory)
        if not found:
            found = [(0, store._create(0))]
        for (first, path), (after, _next) in itertools.pairwise(found):
            store._segments.append(store._closed(path, first, after - first))
        store._segments.append(store._recover_active(*found[-1]))
        store._fd = os.open(store._segments[-1].path, os.O_WRONLY | os.O_APPEND)
        store.publish()
        return store

    def _create(self, first_seq: int) -> Path:
        path = self._dir / segment_name(first_seq)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        fsync_dir(self._dir)
        return path

    def _stamp(self, line: bytes | None) -> str | None:
        if line is None:
            return None
        try:
            return self._received_of(line)
        except ValueError:
            return None  # a damaged line: no time range, so queries never skip this segment

    def _closed(self, path: Path, first: int, count: int) -> Segment:
        seg = Segment(path, first, count, path.stat().st_size)
        return replace(
            seg,
            first_received=self._stamp(_first_line(seg)),
            last_received=self._stamp(_last_line(seg)),
        )

    def _recover_active(self, first: int, path: Path) -> Segment:
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            os.truncate(path, keep)
        seg = Segment(path, first, data.count(b"\n", 0, keep), keep)
        return replace(
            seg,
            first_received=self._stamp(_first_line(seg)),
            last_received=self._stamp(_last_line(seg)),
        )

    # ---- state -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of entries written (committed or not yet fsynced)."""
        return self._segments[-1].end_seq

    def snapshot(self) -> tuple[Segment, ...]:
        """The segments as of the last ``publish``, for readers."""
        with self._lock:
            return self._published

    def publish(self) -> None:
        """Show readers everything appended so far (call after it is durable)."""
        with self._lock:
            self._published = tuple(self._segments)

    def active(self) -> Segment:
        """The segment being written."""
        return self._segments[-1]

    # ---- writing ---------------------------------------------------------------------

    def append(self, lines: list[bytes], received: str) -> None:
        """Append ``lines`` (no newlines) received at ``received``; rotates by size, no fsync."""
        buf, count = bytearray(), 0
        for line in lines:
            active = self._segments[-1]
            if (
                active.nbytes + len(buf) > 0
                and active.nbytes + len(buf) + len(line) >= self._max_bytes
            ):
                self._flush(buf, count, received)
                self._rotate()
                buf, count = bytearray(), 0
            buf += line
            buf += b"\n"
            count += 1
        self._flush(buf, count, received)

    def _flush(self, buf: bytearray, count: int, received: str) -> None:
        if not count:
            return
        assert self._fd is not None
        write_all(self._fd, buf)
        active = self._segments[-1]
        self._segments[-1] = replace(
            active,
            count=active.count + count,
            nbytes=active.nbytes + len(buf),
            first_received=active.first_received or received,
            last_received=received,
        )

    def _rotate(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        first = self.size
        path = self._create(first)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._segments.append(Segment(path, first, 0, 0))

    def sync(self) -> None:
        """fsync the active segment: everything appended so far is durable."""
        if self._fd is not None:
            os.fsync(self._fd)

    def truncate_active(self, keep: int) -> None:
        """Keep only the first ``keep`` entries of the active segment (recovery only)."""
        active = self._segments[-1]
        offset = 0
        for seq, line in read_forward(active):
            if seq - active.first_seq >= keep:
                break
            offset += len(line) + 1
        os.truncate(active.path, offset)
        self._segments[-1] = self._recover_active(active.first_seq, active.path)
        self.publish()

    def close(self) -> None:
        """Close the active segment (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
