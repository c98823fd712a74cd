"""The gateway's limits on heads, time and connections, attacked over real sockets.

Each limit on both of the gateway's HTTP paths — the front door (plain
heartbeat posts) and uvicorn behind it (everything else) — against the real
gateway and nats-server. The attacks on the gateway's own process and its
memory are in test_gateway_memory.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.integration.test_gateway_frontdoor import beat_request, connect, read_response
from tests.integration.test_gateway_support import (
    ADMIN_TOKEN,
    Gateway,
    eventually,
    running_gateway,
)
from vaultmesh.shared.natsserver import NatsServer

READ_S = 10.0
HEAD_BYTES = 4096
HEADERS = 20
TIMEOUT_S = 1.0
CONNECTIONS = 4


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[Gateway]:
    async with running_gateway(
        nats_server.url,
        fleet=False,
        http_max_head_bytes=HEAD_BYTES,
        http_max_headers=HEADERS,
        http_request_timeout_s=TIMEOUT_S,
        http_max_connections=CONNECTIONS,
    ) as gw:
        yield gw


async def refusal(reader: asyncio.StreamReader, status: int) -> str:
    """Read a ``status`` answer in the ``{"error"}`` shape, then the connection's end."""
    got, headers, body = await read_response(reader)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = orjson.loads(body)
    assert set(error) == {"error"}
    assert await asyncio.wait_for(reader.read(), READ_S) == b""
    return str(error["error"])


def get(path: str, *headers: str) -> bytes:
    """A GET request (served by uvicorn: the front door hands it over)."""
    return "\r\n".join((f"GET {path} HTTP/1.1", "Host: gw", *headers)).encode() + b"\r\n\r\n"


def events_post(body: bytes) -> bytes:
    """A POST /api/events request (uvicorn's) with ``body``."""
    head = (
        "POST /api/events HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def beat(*extra: str) -> bytes:
    """A plain heartbeat post (the front door's)."""
    return beat_request(uuid.uuid4(), "limits", *extra)


BIG = "y" * HEAD_BYTES
OVER_SIZE = {
    "heartbeat": beat(f"X-Big: {BIG}"),
    "page": get("/healthz", f"X-Big: {BIG}"),
    "cookies": get("/healthz", "Cookie: " + "; ".join(f"c{n}=v" for n in range(1000))),
}
OVER_COUNT = {
    "heartbeat": beat(*[f"X-N{n}: v" for n in range(HEADERS)]),
    "page": get("/healthz", *[f"X-N{n}: v" for n in range(HEADERS)]),
}


@pytest.mark.parametrize("request_bytes", OVER_SIZE.values(), ids=OVER_SIZE.keys())
async def test_a_head_over_the_size_limit_is_answered_431(
    gateway: Gateway, request_bytes: bytes
) -> None:
    reader, writer = await connect(gateway)
    writer.write(request_bytes)
    error = await refusal(reader, 431)
    writer.close()
    assert str(HEAD_BYTES) in error
    assert gateway.bad_input("http", "head_too_large") == 1


@pytest.mark.parametrize("request_bytes", OVER_COUNT.values(), ids=OVER_COUNT.keys())
async def test_a_head_over_the_header_count_is_answered_431(
    gateway: Gateway, request_bytes: bytes
) -> None:
    reader, writer = await connect(gateway)
    writer.write(request_bytes)
    error = await refusal(reader, 431)
    writer.close()
    assert str(HEADERS) in error
    assert gateway.bad_input("http", "too_many_headers") == 1


ENDLESS = {
    "heartbeat-header": b"POST /api/agent/heartbeat HTTP/1.1\r\nX-Big: ",
    "page-header": b"GET /healthz HTTP/1.1\r\nX-Big: ",
    "events-trailer": events_post(b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    + b"2\r\n{}\r\n0\r\nX-Trailer: ",
}


@pytest.mark.parametrize("start", ENDLESS.values(), ids=ENDLESS.keys())
async def test_an_endless_header_is_refused_once_past_the_limit(
    gateway: Gateway, start: bytes
) -> None:
    """No end in sight: refused without waiting for it (the 431 may be lost to a reset)."""
    reader, writer = await connect(gateway)
    writer.write(start)
    with contextlib.suppress(ConnectionError):
        for _ in range(64):  # 16 times the limit, a slice at a time
            writer.write(b"y" * HEAD_BYTES)
            await writer.drain()
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(reader.read(), READ_S)  # the connection ends
    writer.close()
    assert gateway.bad_input("http", "head_too_large") == 1


async def test_heads_within_the_limits_are_served_on_both_paths(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    # A heartbeat head of nearly the limit, and a page with as many headers as allowed.
    filler = "y" * (HEAD_BYTES - len(beat("X-Fill: ").split(b"\r\n\r\n")[0]) - 8)
    writer.write(beat(f"X-Fill: {filler}"))
    assert (await read_response(reader))[0] == 200
    writer.write(get("/healthz", *[f"X-N{n}: v" for n in range(HEADERS - 1)]))
    assert (await read_response(reader))[0] == 200
    writer.write(get("/healthz", "Cookie: " + "c=" + "v" * (HEAD_BYTES - 100)))
    assert (await read_response(reader))[0] == 200
    writer.close()
    assert gateway.bad_input("http", "head_too_large") == 0


TRICKLED = {
    "heartbeat-head": (beat(), 10),
    "heartbeat-body": (beat(), beat().index(b"\r\n\r\n") + 8),
    "page-head": (get("/healthz", "X-Slow: yes"), 5),
    "events-body": (events_post(b'{"kind":"note","author":"slow","body":"trickle"}'), -20),
}


@pytest.mark.parametrize(("request_bytes", "at_once"), TRICKLED.values(), ids=TRICKLED.keys())
async def test_a_request_that_trickles_in_is_answered_408(
    gateway: Gateway, request_bytes: bytes, at_once: int
) -> None:
    """A byte every 0.1 s keeps the connection from idling, but not past the deadline."""
    reader, writer = await connect(gateway)
    writer.write(request_bytes[:at_once])

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in request_bytes[at_once:-1]:  # never the last byte
                await asyncio.sleep(0.1)
                writer.write(bytes([byte]))
                await writer.drain()

    trickling = asyncio.create_task(trickle())
    try:
        assert "received within" in await refusal(reader, 408)
    finally:
        trickling.cancel()
        writer.close()
    assert gateway.bad_input("http", "request_timeout") == 1


async def test_a_request_sent_in_time_keeps_its_connection(gateway: Gateway) -> None:
    """The deadline is per request: a keep-alive connection outlives it."""
    reader, writer = await connect(gateway)
    for _ in range(3):
        writer.write(beat())
        assert (await read_response(reader))[0] == 200
        writer.write(get("/healthz"))
        assert (await read_response(reader))[0] == 200
        await asyncio.sleep(TIMEOUT_S / 2)
    writer.close()
    assert gateway.bad_input("http", "request_timeout") == 0


async def test_connections_past_the_cap_are_refused_with_503(gateway: Gateway) -> None:
    held = [await connect(gateway) for _ in range(CONNECTIONS)]
    for reader, writer in held:  # each is served: they are all open
        writer.write(get("/healthz"))
        assert (await read_response(reader))[0] == 200
    reader, writer = await connect(gateway)
    assert "too many connections" in await refusal(reader, 503)
    writer.close()
    value = gateway.metrics.registry.get_sample_value(
        "vaultmesh_gateway_connections_refused_total", {"service": "gateway"}
    )
    assert value == 1
    assert gateway.metrics.registry.get_sample_value(
        "vaultmesh_gateway_http_connections", {"service": "gateway"}
    ) == float(CONNECTIONS)
    # One leaves: a new connection is served again.
    held.pop()[1].close()

    async def served() -> bool:
        reader, writer = await connect(gateway)
        try:
            writer.write(get("/healthz"))
            return (await read_response(reader))[0] == 200
        except (ConnectionError, asyncio.IncompleteReadError):
            return False
        finally:
            writer.close()

    await eventually(served, "a free connection slot")
    for _, writer in held:
        writer.close()


async def test_a_malformed_request_gets_the_error_shape(gateway: Gateway) -> None:
    """uvicorn's own 400 (its parser refused the request) is the gateway's JSON too."""
    for request_bytes in (
        get("/healthz", "Bad Header: x"),
        b"POST /api/agent/heartbeat HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    ):
        reader, writer = await connect(gateway)
        writer.write(request_bytes)
        assert await refusal(reader, 400) == "malformed HTTP request"
        writer.close()
    assert gateway.bad_input("http", "bad_request") == 2


async def test_many_pipelined_requests_to_uvicorn_are_all_answered_in_order(
    gateway: Gateway,
) -> None:
    """Parsed one ahead (bytes held back meanwhile), yet every one is answered, in order."""
    count = 2000
    reader, writer = await connect(gateway)
    pages = [get(f"/healthz?n={n}") for n in range(count)]
    writer.write(b"".join(pages) + beat() + get("/openapi.json"))
    statuses = [(await read_response(reader))[0] for _ in range(count)]
    assert statuses == [200] * count
    assert (await read_response(reader))[2] == b'{"status":"ok"}'
    assert orjson.loads((await read_response(reader))[2])["info"]["title"] == "VaultMesh gateway"
    writer.close()
