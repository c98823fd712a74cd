"""The two paths to a heartbeat's answer give the same answers and count the same metrics,
and without the uvicorn internals the front door needs, plain uvicorn serves everything.

Raw HTTP/1.1 over real sockets to the real gateway and nats-server. The same
post goes once as a plain post (the front door answers it) and once with a
query string, which the front door hands to uvicorn and the FastAPI route.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from tests.integration.test_gateway_frontdoor import (
    beat_request,
    connect,
    read_response,
    stored_hostname,
)
from tests.integration.test_gateway_support import AGENT_TOKEN, Gateway, running_gateway
from vaultmesh.services.gateway.httpserver.limits import HttpLimits
from vaultmesh.services.gateway.ingest.framing import OTHER, HeartbeatPost, frame
from vaultmesh.shared.natsserver import NatsServer

BODY_LIMIT = 4096
PLAIN = b"POST /api/agent/heartbeat HTTP/1.1"
VIA_ASGI = b"POST /api/agent/heartbeat?via=asgi HTTP/1.1"  # a query string: not plain
COUNTED = ("vaultmesh_requests_total", "vaultmesh_bad_input_total")


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_server.url, fleet=False, max_body_bytes=BODY_LIMIT) as gw:
        yield gw


def with_body(request: bytes, body: bytes) -> bytes:
    """``request`` (a heartbeat post) with ``body`` in place of its own."""
    head, _, old = request.partition(b"\r\n\r\n")
    head = head.replace(b"Content-Length: %d" % len(old), b"Content-Length: %d" % len(body))
    return head + b"\r\n\r\n" + body


def valid(node: uuid.UUID) -> bytes:
    return beat_request(node, "paths")


def bad_token(node: uuid.UUID) -> bytes:
    return valid(node).replace(AGENT_TOKEN.encode(), b"wrong-token-0123456789abcdef")


def malformed(node: uuid.UUID) -> bytes:
    return with_body(valid(node), b"{not json")


def invalid(node: uuid.UUID) -> bytes:
    return with_body(valid(node), orjson.dumps({"node_id": str(node)}))


def oversized(node: uuid.UUID) -> bytes:
    return with_body(valid(node), b" " * (BODY_LIMIT + 1))


Counts = Counter[tuple[str, frozenset[tuple[str, str]]]]


def counted(gateway: Gateway) -> Counts:
    """Every request and bad-input count now, by metric name and labels."""
    counts: Counts = Counter()
    for family in gateway.metrics.registry.collect():
        for sample in family.samples:
            if sample.name in COUNTED:
                counts[(sample.name, frozenset(sample.labels.items()))] = int(sample.value)
    return counts


async def exchange(gateway: Gateway, request: bytes) -> tuple[tuple[object, ...], Counts]:
    """The answer to ``request`` on a new connection, and what it added to the counts."""
    before = counted(gateway)
    reader, writer = await connect(gateway)
    writer.write(request)
    status, headers, body = await read_response(reader)
    writer.close()
    added = counted(gateway)
    added.subtract(before)
    answer = (status, headers["content-type"], headers.get("www-authenticate"), body)
    return answer, +added


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(valid, 200, id="valid"),
        pytest.param(bad_token, 401, id="bad-token"),
        pytest.param(malformed, 400, id="malformed-body"),
        pytest.param(invalid, 422, id="invalid-body"),
        pytest.param(oversized, 413, id="oversized"),
    ],
)
async def test_both_paths_answer_and_count_alike(
    gateway: Gateway, make: Callable[[uuid.UUID], bytes], status: int
) -> None:
    plain = make(uuid.uuid4())
    via_asgi = plain.replace(PLAIN, VIA_ASGI, 1)
    # Which path each takes (framing.py decides): the query string sends one to uvicorn.
    limits = HttpLimits.from_settings(gateway.settings)
    assert frame(via_asgi, limits) is OTHER
    if status == 413:
        assert frame(plain, limits) is OTHER  # never plain: BodyLimit answers it, both times
    else:
        assert isinstance(frame(plain, limits), HeartbeatPost)

    fast_answer, fast_counts = await exchange(gateway, plain)
    asgi_answer, asgi_counts = await exchange(gateway, via_asgi)

    assert fast_answer[0] == status, fast_answer
    assert fast_answer == asgi_answer
    assert fast_counts == asgi_counts
    assert sum(fast_counts.values()) == (1 if status == 200 else 2), fast_counts


async def test_both_paths_store_the_heartbeat(gateway: Gateway) -> None:
    fast, slow = uuid.uuid4(), uuid.uuid4()
    await exchange(gateway, beat_request(fast, "fast"))
    await exchange(gateway, beat_request(slow, "slow").replace(PLAIN, VIA_ASGI, 1))
    assert await stored_hostname(gateway.nc, fast) == "fast"
    assert await stored_hostname(gateway.nc, slow) == "slow"


async def test_without_the_front_doors_uvicorn_internals_plain_uvicorn_serves_all(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A uvicorn whose httptools protocol module is gone: one warning, and everything works."""
    monkeypatch.setitem(sys.modules, "uvicorn.protocols.http.httptools_impl", None)
    caplog.set_level(logging.WARNING)
    async with running_gateway(nats_server.url, fleet=False, max_body_bytes=BODY_LIMIT) as gw:
        node = uuid.uuid4()
        reader, writer = await connect(gw)
        writer.write(
            beat_request(node, "plain-uvicorn") + b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
        )
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b'{"status":"ok"}')
        assert (await read_response(reader))[0] == 200
        writer.write(oversized(uuid.uuid4()))
        status, _, body = await read_response(reader)
        assert status == 413
        assert "error" in orjson.loads(body)
        writer.close()
        assert await stored_hostname(gw.nc, node) == "plain-uvicorn"
        # Only the front door's connection guard sets the open-connections gauge.
        gauge = gw.metrics.registry.get_sample_value(
            "vaultmesh_gateway_http_connections", {"service": "gateway"}
        )
        assert gauge is None
    warnings = [r.getMessage() for r in caplog.records if "plain uvicorn" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "uvicorn.protocols.http.httptools_impl" in warnings[0]
