"""Bad heartbeats on the bus: rejected, counted, never fatal; the service keeps answering."""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

import orjson
import pytest
from nats.aio.client import Client

from tests.integration.test_fleet_support import (
    clock_at,
    heartbeat,
    publish,
    running,
    settings_for,
    wait_for,
)
from vaultmesh.services.fleet.service import FleetService
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import codec, subjects
from vaultmesh.shared.natsserver import NatsServer

SECRET = "hunter2-never-log-me"


def _bad(service: FleetService, code: str) -> float:
    value = service.metrics.base.registry.get_sample_value(
        "vaultmesh_bad_input_total", {"service": "fleet", "source": "heartbeat", "code": code}
    )
    return value or 0.0


async def test_bad_heartbeats_are_rejected_and_counted(
    nats_server: NatsServer, nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client = FleetClient(nc)
    victim, spoofer = str(uuid4()), str(uuid4())
    bad = [
        (victim, orjson.dumps(heartbeat(spoofer, hostname=SECRET)), "node_mismatch"),
        (
            victim,
            b'{"node_id": "' + victim.encode() + b'", "hostname": ' + SECRET.encode(),
            "bad_request",
        ),
        (
            victim,
            orjson.dumps(heartbeat(victim, services_ok="yes", hostname=SECRET)),
            "bad_request",
        ),
        (victim, orjson.dumps(heartbeat(victim, timestamp="yesterday")), "bad_request"),
        (victim, orjson.dumps(heartbeat(victim, pad=SECRET * 1200)), "payload_too_large"),
        (victim, b"\xff\xfe binary", "bad_request"),
    ]
    settings = settings_for(nats_server.url, fleet_max_heartbeat_bytes=16 * 1024)
    with caplog.at_level(logging.WARNING):
        async with running(settings, clock_at()) as service:
            for node, body, _code in bad:
                await publish(nc, node, body)
            good = str(uuid4())
            await publish(nc, good, heartbeat(good))
            await wait_for(lambda: service.registry.get(good) is not None, what="good heartbeat")
            assert service.metrics.heartbeats_rejected == len(bad)
            assert _bad(service, "node_mismatch") == 1
            assert _bad(service, "bad_request") == 4
            assert _bad(service, "payload_too_large") == 1
            assert service.registry.get(victim) is None
            assert service.registry.get(spoofer) is None
            assert (await client.get_node(UUID(good))).hostname == f"vault-{good[:8]}"
            assert (await client.counts()).total == len(service.registry)
    assert "rejected heartbeat message" in caplog.text
    assert SECRET not in caplog.text


async def test_bad_requests_on_the_api_are_errors_and_service_answers(
    nats_server: NatsServer, nc: Client
) -> None:
    settings = settings_for(nats_server.url, max_request_bytes=4096)
    async with running(settings, clock_at()) as service:
        cases = [
            ("get", b"{not json", "bad_request"),
            ("get", b'{"node_id": 7}', "bad_request"),
            ("list", b'{"status": "MAYBE"}', "bad_request"),
            ("list", b'{"unknown": 1}', "bad_request"),
            (
                "history",
                b'{"node_id": "' + str(uuid4()).encode() + b'", "limit": "x"}',
                "bad_request",
            ),
            ("events", b'{"kind": "gossip"}', "bad_request"),
            ("events", b'{"limit": 100000}', "bad_request"),
            ("get", b'{"node_id": "' + b"a" * 10_000 + b'"}', "payload_too_large"),
        ]
        for op, body, code in cases:
            msg = await nc.request(subjects.fleet_api(op), body, timeout=5)
            reply = codec.decode(msg.data)
            assert reply["status"] == "error", op
            assert reply["code"] == code, (op, body[:40])
        counted = service.metrics.base.registry.get_sample_value(
            "vaultmesh_bad_input_total",
            {"service": "fleet", "source": "events", "code": "bad_request"},
        )
        assert counted == 2
        assert (await FleetClient(nc).counts()).total == len(service.registry)
