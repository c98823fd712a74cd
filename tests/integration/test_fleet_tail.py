"""StreamTail: ordered replay, caught-up detection, and no message lost to client-side drops."""

from __future__ import annotations

from uuid import uuid4

from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from tests.integration.test_fleet_support import wait_for
from vaultmesh.services.fleet.tail import StreamTail
from vaultmesh.shared import streams, subjects


async def _fill(nc: Client, count: int) -> list[int]:
    js = nc.jetstream()
    await streams.ensure_stream(js, streams.heartbeats_config(streams.StreamLimits()))
    nodes = [str(uuid4()) for _ in range(10)]
    acks = []
    for i in range(count):
        ack = await js.publish(subjects.heartbeat(nodes[i % 10]), b"x" * 400)
        acks.append(int(ack.seq))
    return acks


async def test_replay_survives_a_tiny_pending_queue(nc: Client) -> None:
    stored = await _fill(nc, 300)
    seen: list[int] = []
    resyncs: list[int] = []
    tail = StreamTail(
        nc.jetstream(),
        stream=subjects.STREAM_HEARTBEATS,
        subject=subjects.HEARTBEAT_ALL,
        handler=lambda _s, _d, seq, _ts: seen.append(seq),
        pending_msgs_limit=40,  # nats-py drops what overflows this; the tail must notice
        on_resync=lambda: resyncs.append(1),
        watch_s=0.2,
    )
    await tail.start()
    try:
        assert await tail.wait_caught_up(60)
        await wait_for(lambda: tail.last_seq >= stored[-1], what="all messages")
    finally:
        await tail.stop()
    assert seen == stored  # every stored message exactly once, in order
    assert resyncs, "the overflow path was exercised"


async def test_last_per_subject_and_live_follow(nc: Client) -> None:
    stored = await _fill(nc, 30)
    seen: list[int] = []
    tail = StreamTail(
        nc.jetstream(),
        stream=subjects.STREAM_HEARTBEATS,
        subject=subjects.HEARTBEAT_ALL,
        handler=lambda _s, _d, seq, _ts: seen.append(seq),
        policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    await tail.start()
    await tail.start()  # idempotent
    try:
        assert await tail.wait_caught_up(30)
        assert set(stored[-10:]) <= set(seen)  # the last message of each of the 10 nodes
        assert not set(stored[:-10]) & set(seen)
        live = await _fill(nc, 3)
        await wait_for(lambda: tail.last_seq >= live[-1], what="live messages")
        assert seen[-3:] == live
    finally:
        await tail.stop()
        await tail.stop()
