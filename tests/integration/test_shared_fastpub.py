"""Fast-ingest batch publishing against a real nats-server (2.14+ ``allow_batched``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from vaultmesh.shared.fastpub import BatchPublisher, Message

_names = itertools.count(1)


class Outcomes:
    """What the publisher reported, in order."""

    def __init__(self) -> None:
        self.stored: list[int] = []
        self.failed: list[int] = []
        self.changed = asyncio.Event()

    def on_stored(self, items: list[int]) -> None:
        self.stored.extend(items)
        self.changed.set()

    def on_failed(self, items: list[int]) -> None:
        self.failed.extend(items)
        self.changed.set()

    async def settled(self, count: int, timeout: float = 5.0) -> None:
        async def wait() -> None:
            while len(self.stored) + len(self.failed) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def new_stream(nc: Client, *, batched: bool) -> str:
    """A fresh stream on ``s<n>.>``; returns its subject prefix."""
    n = next(_names)
    await nc.jetstream().add_stream(
        StreamConfig(name=f"FP{n}", subjects=[f"s{n}.>"], allow_batched=batched)
    )
    return f"s{n}"


async def stored_in(nc: Client, prefix: str) -> list[bytes]:
    stream = "FP" + prefix[1:]
    info = await nc.jetstream().stream_info(stream)
    js = nc.jetstream()
    return [
        (await js.get_msg(stream, seq)).data or b""
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]


@pytest.fixture
async def publisher(nc: Client) -> AsyncIterator[tuple[BatchPublisher[int], Outcomes]]:
    outcomes = Outcomes()
    pub: BatchPublisher[int] = BatchPublisher(nc, outcomes.on_stored, outcomes.on_failed, 2.0)
    await pub.start()
    yield pub, outcomes
    await pub.stop()


def messages(prefix: str, numbers: range, ids: str | None = "m") -> list[Message[int]]:
    return [
        Message(n, f"{prefix}.x", str(n).encode(), None if ids is None else f"{ids}{n}")
        for n in numbers
    ]


async def test_a_batch_is_stored_in_order_with_one_report(
    nc: Client, publisher: tuple[BatchPublisher[int], Outcomes]
) -> None:
    pub, outcomes = publisher
    prefix = await new_stream(nc, batched=True)
    await pub.publish(messages(prefix, range(1, 8)))
    assert pub.in_flight == 7
    await outcomes.settled(7)
    assert outcomes.stored == list(range(1, 8))
    assert outcomes.failed == []
    assert pub.in_flight == 0
    assert pub.batched
    assert await stored_in(nc, prefix) == [str(n).encode() for n in range(1, 8)]


async def test_a_single_message_batch_works(
    nc: Client, publisher: tuple[BatchPublisher[int], Outcomes]
) -> None:
    pub, outcomes = publisher
    prefix = await new_stream(nc, batched=True)
    await pub.publish(messages(prefix, range(1, 2)))
    await outcomes.settled(1)
    assert outcomes.stored == [1]
    assert await stored_in(nc, prefix) == [b"1"]


async def test_repeated_message_ids_are_stored_once(
    nc: Client, publisher: tuple[BatchPublisher[int], Outcomes]
) -> None:
    pub, outcomes = publisher
    prefix = await new_stream(nc, batched=True)
    await pub.publish(messages(prefix, range(1, 4)))
    await outcomes.settled(3)
    await pub.publish(messages(prefix, range(1, 5)))  # 1..3 again (a retry), then 4
    await outcomes.settled(7)
    assert outcomes.failed == []
    assert await stored_in(nc, prefix) == [b"1", b"2", b"3", b"4"]


async def test_without_message_ids_a_retry_is_stored_again(
    nc: Client, publisher: tuple[BatchPublisher[int], Outcomes]
) -> None:
    pub, outcomes = publisher
    prefix = await new_stream(nc, batched=True)
    await pub.publish(messages(prefix, range(1, 3), ids=None))
    await outcomes.settled(2)
    await pub.publish(messages(prefix, range(1, 3), ids=None))
    await outcomes.settled(4)
    assert outcomes.stored == [1, 2, 1, 2]
    assert await stored_in(nc, prefix) == [b"1", b"2", b"1", b"2"]
    js = nc.jetstream()
    assert (await js.get_msg("FP" + prefix[1:], 1)).headers is None  # no Nats-Msg-Id sent


async def test_a_stream_without_batches_falls_back_to_one_publish_each(
    nc: Client, publisher: tuple[BatchPublisher[int], Outcomes]
) -> None:
    pub, outcomes = publisher
    prefix = await new_stream(nc, batched=False)
    await pub.publish(messages(prefix, range(1, 4)))
    await outcomes.settled(3)
    assert outcomes.failed == [1, 2, 3]  # refused as a batch: to be retried
    assert not pub.batched
    await pub.publish(messages(prefix, range(1, 4)))
    await outcomes.settled(6)
    assert outcomes.stored == [1, 2, 3]
    assert await stored_in(nc, prefix) == [b"1", b"2", b"3"]


async def test_no_stream_fails_the_whole_batch(
    publisher: tuple[BatchPublisher[int], Outcomes],
) -> None:
    pub, outcomes = publisher
    await pub.publish(messages("nostream", range(1, 4)))
    await outcomes.settled(3)
    assert outcomes.stored == []
    assert outcomes.failed == [1, 2, 3]
    assert pub.in_flight == 0


async def test_unacknowledged_batches_expire_as_failed(nc: Client) -> None:
    outcomes = Outcomes()
    pub: BatchPublisher[int] = BatchPublisher(nc, outcomes.on_stored, outcomes.on_failed, 0.0)
    await pub.start()
    try:
        # A subject nobody takes, so no reply ever comes (no stream, but a core subscriber).
        sub = await nc.subscribe("silent.>")
        await pub.publish(messages("silent", range(1, 3)))
        pub.expire()
        assert outcomes.failed == [1, 2]
        assert pub.in_flight == 0
        await sub.unsubscribe()
    finally:
        assert await pub.stop() == []


async def test_stop_returns_what_is_unacknowledged(nc: Client) -> None:
    outcomes = Outcomes()
    pub: BatchPublisher[int] = BatchPublisher(nc, outcomes.on_stored, outcomes.on_failed, 5.0)
    await pub.start()
    sub = await nc.subscribe("quiet.>")
    await pub.publish(messages("quiet", range(1, 4)))
    assert await pub.stop() == [1, 2, 3]
    await sub.unsubscribe()
