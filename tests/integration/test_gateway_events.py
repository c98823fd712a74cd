"""Events over real HTTP: POST/GET /api/events and the resumable SSE stream."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.test_gateway_support import (
    ADMIN,
    AGENT,
    Gateway,
    SseReader,
    assert_error_shape,
    eventually,
    gateway_audit,
    heartbeat,
    running_gateway,
    sse,
)
from vaultmesh.services.gateway.live.cursor import parse_cursor
from vaultmesh.shared import subjects
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.natsserver import NatsServer


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_server.url, sse_keepalive_s=0.5) as gw:
        yield gw


async def _post_note(client: httpx.AsyncClient, body: str, **fields: object) -> dict[str, object]:
    reply = await client.post(
        "/api/events", json={"kind": "note", "author": "ops", "body": body, **fields}, headers=ADMIN
    )
    assert reply.status_code == 201, reply.text
    created: dict[str, object] = reply.json()
    return created


async def test_posted_events_are_stored_and_listed(gateway: Gateway) -> None:
    node = uuid.uuid4()
    async with gateway.client() as client:
        created = await _post_note(
            client, "disk swap at 14:00", node_id=str(node), tags=["maint"], data={"b": 1, "a": [2]}
        )
        envelope = EventEnvelope.model_validate(created)
        assert envelope.id_is_valid()
        assert envelope.author == "ops"

        async def listed() -> list[dict[str, object]] | None:
            got = await client.get("/api/events", params={"node_id": str(node)}, headers=ADMIN)
            events: list[dict[str, object]] = got.json()["events"]
            return events or None

        events = await eventually(listed, "fleet-state to list the event")
    assert [e["id"] for e in events] == [envelope.id]
    js = gateway.nc.jetstream()
    stored = await js.get_last_msg(subjects.STREAM_EVENTS, subjects.event("note", node))
    assert EventEnvelope.model_validate_json(stored.data) == envelope


async def test_posted_events_are_audited_with_who_posted_them(gateway: Gateway) -> None:
    node = uuid.uuid4()
    async with gateway.client() as client:
        created = await _post_note(client, "audited note", node_id=str(node))

    async def audited() -> list[dict[str, object]] | None:
        found = await gateway_audit(gateway.nc, "event")
        mine = [
            r
            for r in found
            if isinstance(r["detail"], dict) and r["detail"].get("event_id") == created["id"]
        ]
        return mine or None

    (record,) = await eventually(audited, "the event's audit record")
    assert record["principal"] == "admin-token-1"
    assert record["outcome"] == "allowed"
    assert record["detail"] == {
        "kind": "note",
        "node_id": str(node),
        "event_id": created["id"],
        "via": "token",
    }
    # The note itself stays in EVENTS; the audit record does not copy it.
    assert "audited note" not in str(record)


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"kind": "heartbeat", "author": "x"}, 422, id="system-kind-heartbeat"),
        pytest.param({"kind": "attention", "author": "x"}, 422, id="system-kind-attention"),
        pytest.param({"kind": "gossip", "author": "x"}, 422, id="unknown-kind"),
        pytest.param({"kind": "note"}, 422, id="no-author"),
        pytest.param({"kind": "note", "author": "x", "extra": 1}, 422, id="unknown-field"),
        pytest.param({"kind": "note", "author": "x", "data": _nested(20)}, 422, id="too-deep"),
        pytest.param({"kind": "note", "author": "x", "tags": [""]}, 422, id="empty-tag"),
    ],
)
async def test_bad_events_are_refused_clearly(
    gateway: Gateway, body: dict[str, object], status: int
) -> None:
    async with gateway.client() as client:
        reply = await client.post("/api/events", content=orjson.dumps(body), headers=ADMIN)
        assert_error_shape(reply, status)
        assert (await client.get("/healthz")).status_code == 200


async def test_event_queries_are_validated(gateway: Gateway) -> None:
    async with gateway.client(headers=ADMIN) as client:
        for params in ({"limit": "0"}, {"kind": "nope"}, {"since": "yesterday"}, {"node_id": "x"}):
            assert_error_shape(await client.get("/api/events", params=params), 422)
        assert_error_shape(await client.get("/api/nodes/not-a-uuid"), 422)
        assert_error_shape(await client.get(f"/api/nodes/{uuid.uuid4()}"), 404)


async def _opening_cursor(reader: SseReader) -> str:
    block = await reader.next_block()
    assert block.event is None
    assert block.id is not None
    assert parse_cursor(block.id) is not None
    return block.id


async def test_sse_resume_delivers_exactly_what_was_missed(gateway: Gateway) -> None:
    async with gateway.client(headers=ADMIN) as client:
        async with sse(client) as reader:
            await _opening_cursor(reader)
            first = await _post_note(client, "before disconnect")
            seen = await reader.next_event()
            assert seen.event == "note"
            assert orjson.loads(seen.data)["id"] == first["id"]
            last_id = seen.id
        assert last_id is not None

        missed = [(await _post_note(client, f"missed {n}"))["id"] for n in range(10)]
        async with sse(client, headers={"Last-Event-ID": last_id}) as reader:
            assert await _opening_cursor(reader) == last_id
            got = [await reader.next_event() for _ in range(10)]
            assert [orjson.loads(e.data)["id"] for e in got] == missed
            assert all(e.event == "note" for e in got)
            ids = [parse_cursor(e.id or "") for e in got]
            assert all(
                a is not None and b is not None and a.events < b.events
                for a, b in itertools.pairwise(ids)
            )
            # Nothing else was queued before the next new event: no duplicates, no extras.
            marker = await _post_note(client, "after reconnect")
            assert orjson.loads((await reader.next_event()).data)["id"] == marker["id"]


async def test_sse_resume_covers_heartbeats_and_events_together(gateway: Gateway) -> None:
    node = uuid.uuid4()
    async with gateway.client(headers=ADMIN) as client:
        async with sse(client, f"/events?node_id={node}") as reader:
            cursor = await _opening_cursor(reader)
        for n in range(3):
            beat = heartbeat(node, hostname=f"h{n}")
            assert (
                await client.post("/api/agent/heartbeat", json=beat, headers=AGENT)
            ).status_code == 200
            await _post_note(client, f"note {n}", node_id=str(node))
        async with sse(client, f"/events?node_id={node}", {"Last-Event-ID": cursor}) as reader:
            got = [await reader.next_event() for _ in range(6)]
    # attention events from fleet-state may interleave; heartbeats and notes are all there in order.
    beats = [orjson.loads(e.data)["hostname"] for e in got if e.event == "heartbeat"]
    notes = [orjson.loads(e.data)["body"] for e in got if e.event == "note"]
    assert beats[:3] == ["h0", "h1", "h2"][: len(beats[:3])]
    assert notes == [f"note {n}" for n in range(len(notes))]


async def test_sse_heartbeat_events_carry_the_heartbeat_model(gateway: Gateway) -> None:
    node = uuid.uuid4()
    async with (
        gateway.client(headers=ADMIN) as client,
        sse(client, f"/events?kind=heartbeat&node_id={node}") as reader,
    ):
        await _opening_cursor(reader)
        await client.post("/api/agent/heartbeat", json=heartbeat(uuid.uuid4()), headers=AGENT)
        await client.post(
            "/api/agent/heartbeat", json=heartbeat(node, hostname="live"), headers=AGENT
        )
        event = await reader.next_event()
    assert event.event == "heartbeat"
    data = orjson.loads(event.data)
    assert data["node_id"] == str(node)
    assert data["hostname"] == "live"
    assert set(data) >= {"cloudflare_ok", "services_ok", "vaultmesh_root", "timestamp", "metrics"}


async def test_sse_sends_keepalive_comments(gateway: Gateway) -> None:
    async with gateway.client(headers=ADMIN) as client, sse(client) as reader:
        await _opening_cursor(reader)
        assert await reader.next_comment() == "keepalive"


async def test_a_bad_last_event_id_header_starts_fresh_and_is_counted(gateway: Gateway) -> None:
    async with gateway.client(headers=ADMIN) as client:
        async with sse(client, headers={"Last-Event-ID": "garbage"}) as reader:
            await _opening_cursor(reader)
        assert gateway.bad_input("/events", "bad_cursor") == 1
        assert_error_shape(await client.get("/events", params={"last_event_id": "garbage"}), 422)


async def _consumers(gateway: Gateway) -> int:
    js = gateway.nc.jetstream()
    total = 0
    for stream in (subjects.STREAM_EVENTS, subjects.STREAM_HEARTBEATS):
        total += (await js.stream_info(stream)).state.consumer_count
    return total


async def test_sse_clients_are_bounded_and_consumers_cleaned_up(tmp_path: Path) -> None:
    # A server of its own, so no other test's consumers are counted.
    with NatsServer(data_dir=tmp_path / "nats") as server:
        await _bounded_and_cleaned(server)


async def _bounded_and_cleaned(server: NatsServer) -> None:
    async with (
        running_gateway(server.url, fleet=False, sse_max_clients=1) as gw,
        gw.client(headers=ADMIN) as client,
    ):
        assert await _consumers(gw) == 0
        async with sse(client) as reader:
            await _opening_cursor(reader)
            assert await _consumers(gw) == 2
            assert_error_shape(await client.get("/events"), 503)

        async def cleaned() -> bool:
            return await _consumers(gw) == 0

        assert await eventually(cleaned, "the SSE consumers to be deleted")
        async with sse(client) as reader:  # the slot is free again
            await _opening_cursor(reader)


async def test_open_streams_end_when_the_gateway_stops(nats_server: NatsServer) -> None:
    async with (
        running_gateway(nats_server.url, fleet=False) as gw,
        gw.client(headers=ADMIN) as client,
        sse(client) as reader,
    ):
        await _opening_cursor(reader)
        stopping = asyncio.create_task(gw.server.stop())
        with pytest.raises(StopAsyncIteration):
            await reader.next_block()
        await asyncio.wait_for(stopping, 20)
