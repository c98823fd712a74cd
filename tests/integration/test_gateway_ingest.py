"""Agent ingest over real HTTP: heartbeat -> HEARTBEATS stream -> fleet-state -> admin API."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.test_gateway_support import (
    ADMIN,
    AGENT,
    AGENT_TOKEN,
    Gateway,
    assert_error_shape,
    eventually,
    heartbeat,
    running_gateway,
)
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.natsserver import NatsServer
from vaultmesh.shared.streams import StreamLimits, heartbeats_config


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_server.url, max_body_bytes=4096) as gw:
        yield gw


async def test_heartbeat_round_trip_to_the_admin_api(gateway: Gateway) -> None:
    node = uuid.uuid4()
    async with gateway.client() as client:
        reply = await client.post(
            "/api/agent/heartbeat", json=heartbeat(node, hostname="rt-1"), headers=AGENT
        )
        assert reply.status_code == 200
        assert reply.json() == {"status": "ok"}

        async def node_view() -> httpx.Response | None:
            got = await client.get(f"/api/nodes/{node}", headers=ADMIN)
            return got if got.status_code == 200 else None

        view = await node_view() or await eventually(node_view, "fleet-state to see the node")
        assert view.json()["hostname"] == "rt-1"
        listing = (await client.get("/api/nodes", headers=ADMIN)).json()
        assert str(node) in {n["node_id"] for n in listing["nodes"]}
        history = (await client.get(f"/api/nodes/{node}/history", headers=ADMIN)).json()
        assert [h["hostname"] for h in history["heartbeats"]] == ["rt-1"]
        counts = (await client.get("/api/fleet/counts", headers=ADMIN)).json()
        assert counts["total"] >= 1


async def test_a_200_means_the_stream_holds_it_without_unknown_fields(gateway: Gateway) -> None:
    node = uuid.uuid4()
    body = heartbeat(node, hostname="stored", future_field={"x": 1})
    async with gateway.client() as client:
        reply = await client.post(
            "/api/agent/heartbeat", json=body, headers={"Authorization": f"Bearer {AGENT_TOKEN}"}
        )
    assert reply.status_code == 200
    js = gateway.nc.jetstream()
    stored = await js.get_last_msg(subjects.STREAM_HEARTBEATS, subjects.heartbeat(node))
    data = orjson.loads(stored.data)
    assert data["hostname"] == "stored"
    assert "future_field" not in data


def _too_big() -> bytes:
    return orjson.dumps(heartbeat(hostname="x" * 200, vaultmesh_root="/" + "r" * 5000))


BAD_BODIES = [
    pytest.param(b"{not json", "application/json", 400, "bad_request", id="malformed-json"),
    pytest.param(b"", "application/json", 400, "bad_request", id="empty"),
    pytest.param(b"[1, 2]", "application/json", 422, "invalid", id="array"),
    pytest.param(
        orjson.dumps(heartbeat(cloudflare_ok="true")),
        "application/json",
        422,
        "invalid",
        id="str-bool",
    ),
    pytest.param(
        orjson.dumps(heartbeat(node_id="not-a-uuid")),
        "application/json",
        422,
        "invalid",
        id="bad-uuid",
    ),
    pytest.param(
        orjson.dumps(heartbeat(timestamp="2024-01-15T10:30:00")),
        "application/json",
        422,
        "invalid",
        id="naive-timestamp",
    ),
    pytest.param(
        orjson.dumps({k: v for k, v in heartbeat().items() if k != "hostname"}),
        "application/json",
        422,
        "invalid",
        id="missing-field",
    ),
    pytest.param(b'{"metrics": {"load1": NaN}}', "application/json", 400, "bad_request", id="nan"),
    pytest.param(
        orjson.dumps(heartbeat(metrics={"mem_total_bytes": 1})).replace(
            b'"mem_total_bytes":1', b'"mem_total_bytes":18446744073709551616'
        ),
        "application/json",
        422,
        "invalid",
        id="int-beyond-64-bits",
    ),
    pytest.param(
        orjson.dumps(heartbeat(interval_s="30")),
        "application/json",
        422,
        "invalid",
        id="str-number",
    ),
    pytest.param(orjson.dumps(heartbeat()), "text/plain", 415, "unsupported_media_type", id="type"),
    pytest.param(_too_big(), "application/json", 413, "payload_too_large", id="oversized"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_BODIES)
async def test_bad_heartbeats_get_a_clear_error_and_the_service_keeps_going(
    gateway: Gateway, body: bytes, content_type: str, status: int, code: str
) -> None:
    source = "http" if code == "payload_too_large" else "/api/agent/heartbeat"
    before = gateway.bad_input(source, code)
    headers = {**AGENT, "Content-Type": content_type}
    async with gateway.client() as client:
        reply = await client.post("/api/agent/heartbeat", content=body, headers=headers)
        assert_error_shape(reply, status)
        assert gateway.bad_input(source, code) == before + 1
        again = await client.post("/api/agent/heartbeat", json=heartbeat(), headers=AGENT)
        assert again.status_code == 200


async def test_integral_floats_are_integers_as_in_json_schema(gateway: Gateway) -> None:
    body = heartbeat(metrics={"mem_total_bytes": 25.0, "load1": 0.5}, interval_s=30)
    async with gateway.client() as client:
        reply = await client.post("/api/agent/heartbeat", json=body, headers=AGENT)
    assert reply.status_code == 200, reply.text


async def test_an_oversized_chunked_body_is_refused_before_parsing(gateway: Gateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"hostname": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}'

    async with gateway.client() as client:
        reply = await client.post("/api/agent/heartbeat", content=chunks(), headers=AGENT)
        assert "content-length" not in reply.request.headers
        assert_error_shape(reply, 413)
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-Host-Token": "wrong-token-0123456789abcdef"}, id="wrong"),
        pytest.param({"Authorization": "Bearer test-admin-token-0123456789abcdef"}, id="admin"),
        pytest.param({"Authorization": "Basic Zm9vOmJhcg=="}, id="basic"),
    ],
)
async def test_heartbeats_need_an_agent_token(gateway: Gateway, headers: dict[str, str]) -> None:
    before = gateway.bad_input("/api/agent/heartbeat", "unauthorized")
    async with gateway.client() as client:
        reply = await client.post("/api/agent/heartbeat", json=heartbeat(), headers=headers)
    assert_error_shape(reply, 401)
    assert gateway.bad_input("/api/agent/heartbeat", "unauthorized") == before + 1


async def test_open_ingest_accepts_seed_v1_agents_without_a_token(nats_server: NatsServer) -> None:
    async with (
        running_gateway(nats_server.url, fleet=False, agent_ingest_open=True) as gw,
        gw.client() as client,
    ):
        reply = await client.post("/api/agent/heartbeat", json=heartbeat())
        assert reply.status_code == 200
        # Ingest being open does not open the admin API.
        assert_error_shape(await client.get("/api/nodes"), 401)


async def test_metrics_show_requests_and_bad_input(gateway: Gateway) -> None:
    async with gateway.client() as client:
        await client.post("/api/agent/heartbeat", content=b"{", headers=AGENT)
        text = (await client.get("/metrics")).text
    assert (
        'vaultmesh_bad_input_total{code="bad_request",service="gateway",source="/api/agent/heartbeat"}'
        in text
    )
    assert 'endpoint="POST /api/agent/heartbeat",outcome="400"' in text


async def test_a_heartbeats_stream_from_an_older_release_is_used_without_a_refusal(
    tmp_path: Path,
) -> None:
    """HEARTBEATS without allow_batched (made before batches): the first post is stored."""
    with NatsServer(data_dir=tmp_path / "nats") as server:
        nc = await bus.connect(BusSettings(nats_url=server.url), "old-release")
        try:
            old = dataclasses.replace(heartbeats_config(StreamLimits()), allow_batched=None)
            await nc.jetstream().add_stream(old)
            async with running_gateway(server.url, fleet=False) as gw, gw.client() as client:
                node = uuid.uuid4()
                reply = await client.post(
                    "/api/agent/heartbeat", json=heartbeat(node, hostname="old"), headers=AGENT
                )
                assert reply.status_code == 200, reply.text
                stored = await nc.jetstream().get_last_msg(
                    subjects.STREAM_HEARTBEATS, subjects.heartbeat(node)
                )
                assert orjson.loads(stored.data)["hostname"] == "old"
        finally:
            await bus.close(nc)
