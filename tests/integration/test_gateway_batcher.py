"""The gateway's heartbeat batcher on a real nats-server: group commit, fallbacks, lost acks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from vaultmesh.services.gateway.ingest.batcher import HeartbeatBatcher

_names = itertools.count(1)


class Answers:
    """Each heartbeat's outcome by number, and the size of every acknowledged batch."""

    def __init__(self) -> None:
        self.outcome: dict[int, bool] = {}
        self.batches: list[int] = []
        self.changed = asyncio.Event()

    def done(self, n: int) -> Callable[[bool], None]:
        def settle(stored: bool) -> None:
            assert n not in self.outcome, f"heartbeat {n} answered twice"
            self.outcome[n] = stored
            self.changed.set()

        return settle

    def stored(self, count: int) -> None:
        self.batches.append(count)

    async def settled(self, count: int, timeout: float = 5.0) -> None:
        async def wait() -> None:
            while len(self.outcome) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def new_stream(nc: Client, *, batched: bool = True) -> str:
    """A fresh stream on ``hb<n>.*``; returns its subject prefix."""
    n = next(_names)
    await nc.jetstream().add_stream(
        StreamConfig(name=f"HB{n}", subjects=[f"hb{n}.*"], allow_batched=batched)
    )
    return f"hb{n}"


def stream_of(prefix: str) -> str:
    """The stream ``new_stream`` made for ``prefix``."""
    return "HB" + prefix[2:]


async def stored_in(nc: Client, prefix: str) -> list[bytes]:
    js, stream = nc.jetstream(), stream_of(prefix)
    info = await js.stream_info(stream)
    if not info.state.messages:
        return []
    return [
        (await js.get_msg(stream, seq)).data or b""
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]


async def started(
    nc: Client, timeout_s: float = 2.0, **options: Any
) -> tuple[HeartbeatBatcher, Answers]:
    """A started batcher whose outcomes and batch sizes ``Answers`` records."""
    answers = Answers()
    batcher = HeartbeatBatcher(nc, timeout_s, on_stored=answers.stored, **options)
    await batcher.start()
    return batcher, answers


@pytest.fixture
async def batcher(nc: Client) -> tuple[HeartbeatBatcher, Answers]:
    return await started(nc)


def submit(batcher: HeartbeatBatcher, answers: Answers, prefix: str, numbers: range) -> None:
    for n in numbers:
        batcher.submit(f"{prefix}.node{n % 3}", b"%d" % n, answers.done(n))


async def test_heartbeats_of_one_turn_go_out_as_one_batch_and_are_all_stored(
    nc: Client, batcher: tuple[HeartbeatBatcher, Answers]
) -> None:
    pub, answers = batcher
    prefix = await new_stream(nc)
    submit(pub, answers, prefix, range(20))
    await answers.settled(20)
    assert answers.outcome == dict.fromkeys(range(20), True)
    assert answers.batches == [20]
    assert pub.batched
    assert await stored_in(nc, prefix) == [b"%d" % n for n in range(20)]


async def test_heartbeats_arriving_while_a_batch_awaits_its_ack_make_up_the_next_one(
    nc: Client, batcher: tuple[HeartbeatBatcher, Answers]
) -> None:
    pub, answers = batcher
    prefix = await new_stream(nc)
    submit(pub, answers, prefix, range(5))
    await asyncio.sleep(0)  # the first batch is published and awaits its ack ...
    submit(pub, answers, prefix, range(5, 8))
    await asyncio.sleep(0)  # ... during which these two groups wait, together
    submit(pub, answers, prefix, range(8, 12))
    await answers.settled(12)
    assert answers.batches == [5, 7]
    assert all(answers.outcome.values())
    assert await stored_in(nc, prefix) == [b"%d" % n for n in range(12)]


async def test_a_stream_without_batches_gets_one_publish_per_heartbeat_from_the_start(
    nc: Client,
) -> None:
    prefix = await new_stream(nc, batched=False)
    pub, answers = await started(nc, stream=stream_of(prefix))
    assert not pub.batched  # read from the stream's configuration
    submit(pub, answers, prefix, range(4))
    await answers.settled(4)
    assert answers.outcome == dict.fromkeys(range(4), True)
    assert answers.batches == [1, 1, 1, 1]
    assert await stored_in(nc, prefix) == [b"%d" % n for n in range(4)]


async def test_without_the_configuration_the_first_refused_batch_decides(
    nc: Client, batcher: tuple[HeartbeatBatcher, Answers]
) -> None:
    pub, answers = batcher  # not told which stream: it tries a batch first
    prefix = await new_stream(nc, batched=False)
    submit(pub, answers, prefix, range(4))
    await answers.settled(4)
    # The stream refused the batch as a batch: those four get 503 and are retried.
    assert answers.outcome == dict.fromkeys(range(4), False)
    assert not pub.batched
    submit(pub, answers, prefix, range(4, 10))
    await answers.settled(10)
    assert [answers.outcome[n] for n in range(4, 10)] == [True] * 6
    assert await stored_in(nc, prefix) == [b"%d" % n for n in range(4, 10)]


async def test_a_stream_updated_to_take_batches_gets_them_without_a_restart(
    nc: Client,
) -> None:
    prefix = await new_stream(nc, batched=False)
    pub, answers = await started(nc, stream=stream_of(prefix), reprobe_s=0.0)
    submit(pub, answers, prefix, range(3))
    await answers.settled(3)
    assert answers.batches == [1, 1, 1]
    js = nc.jetstream()
    config = (await js.stream_info(stream_of(prefix))).config
    config.allow_batched = True
    await js.update_stream(config)  # what fleet-state, the owner, does after an upgrade
    submit(pub, answers, prefix, range(3, 8))
    await answers.settled(8)
    assert pub.batched
    assert answers.batches == [1, 1, 1, 5]
    assert all(answers.outcome.values())


async def test_without_a_stream_every_heartbeat_fails(
    batcher: tuple[HeartbeatBatcher, Answers],
) -> None:
    pub, answers = batcher
    submit(pub, answers, "nostream", range(6))
    await answers.settled(6)
    assert answers.outcome == dict.fromkeys(range(6), False)
    assert answers.batches == []


async def test_a_lost_ack_fails_its_batch_and_the_queue_behind_it_and_ingest_goes_on(
    nc: Client,
) -> None:
    pub, answers = await started(nc, 0.3)
    prefix = await new_stream(nc)
    # A core subscriber and no stream: nobody ever acknowledges these.
    silent = await nc.subscribe("silent.*")
    try:
        submit(pub, answers, "silent", range(3))
        await asyncio.sleep(0)
        # Queued behind the silent batch: they fail with it, not a whole timeout later.
        submit(pub, answers, prefix, range(3, 6))
        await answers.settled(6, timeout=3.0)
        submit(pub, answers, prefix, range(6, 9))
        await answers.settled(9, timeout=3.0)
    finally:
        await silent.unsubscribe()
    assert answers.outcome == {n: n >= 6 for n in range(9)}
    # Those that failed were never sent: a 503 here means "not stored".
    assert await stored_in(nc, prefix) == [b"6", b"7", b"8"]


async def test_a_failing_answer_does_not_keep_the_others_waiting(
    nc: Client, batcher: tuple[HeartbeatBatcher, Answers]
) -> None:
    pub, answers = batcher
    prefix = await new_stream(nc)

    def broken(stored: bool) -> None:
        raise RuntimeError("the connection went away")

    submit(pub, answers, prefix, range(2))
    pub.submit(f"{prefix}.x", b"broken", broken)
    submit(pub, answers, prefix, range(2, 4))
    await answers.settled(4)
    assert answers.outcome == dict.fromkeys(range(4), True)
    assert answers.batches == [5]


async def test_before_start_or_without_a_connection_the_answer_is_at_once(
    nc: Client,
) -> None:
    answers = Answers()
    pub = HeartbeatBatcher(nc, 1.0)
    pub.submit("hb.x", b"1", answers.done(1))
    assert answers.outcome == {1: False}
    await pub.start()
    await nc.close()
    pub.submit("hb.x", b"2", answers.done(2))
    assert answers.outcome == {1: False, 2: False}
