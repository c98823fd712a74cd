"""The replicated log's byte stream: cut into bounded messages and put back together."""

from __future__ import annotations

import pytest

from vaultmesh.services.logger.chunks import Chunk, Reassembler, split
from vaultmesh.services.logger.errors import LogCorrupt

LINES = [b"a" * 10, b"b" * 3, b"c" * 45, b"d", b"e" * 20, b"f" * 7]


def read(chunks: list[Chunk], start: int = 0) -> list[tuple[int, bytes]]:
    reader = Reassembler(start)
    return [pair for chunk in chunks for pair in reader.feed(chunk)]


@pytest.mark.parametrize("budget", [8, 16, 30, 1000])
def test_every_line_comes_back_whatever_the_message_size(budget: int) -> None:
    chunks = split(LINES, 100, budget)
    assert all(len(c.data) <= budget for c in chunks)
    assert read(chunks) == list(enumerate(LINES, 100))
    assert [c.end for c in chunks] == sorted(c.end for c in chunks)
    assert chunks[-1].end == 100 + len(LINES)


def test_a_long_line_is_split_into_consecutive_parts() -> None:
    chunks = split([b"x" * 25], 7, 10)
    assert [(c.entry, c.offset, c.end) for c in chunks] == [(7, 0, 7), (7, 10, 7), (7, 20, 8)]


@pytest.mark.parametrize("start", [0, 2, 3, 5])
def test_reading_from_the_message_holding_an_entry(start: int) -> None:
    chunks = split(LINES, 0, 16)
    first = next(i for i, c in enumerate(chunks) if c.end > start)
    while chunks[first].offset and chunks[first].entry == start:
        first -= 1
    assert read(chunks[first:], start) == list(enumerate(LINES))[start:]


def test_a_batch_cut_short_and_written_again_is_read_once() -> None:
    torn = split([b"y" * 25], 3, 10)[:2]  # the last part never stored
    again = split([b"z" * 25, b"w"], 3, 10)
    head = split(LINES[:3], 0, 1000)
    assert read(head + torn + again) == [*enumerate(LINES[:3]), (3, b"z" * 25), (4, b"w")]


def test_a_missing_or_misplaced_message_is_damage() -> None:
    chunks = split(LINES, 0, 16)
    with pytest.raises(LogCorrupt):
        read(chunks[:1] + chunks[2:])
    with pytest.raises(LogCorrupt):
        read([Chunk(b"q\n", 0, 0, 1), Chunk(b"r\n", 5, 0, 6)])
