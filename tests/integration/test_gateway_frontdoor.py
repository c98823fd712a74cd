"""The gateway's front door on real sockets: what it serves itself, what it hands to uvicorn.

Raw HTTP/1.1 over asyncio streams (an HTTP client library would hide the
framing these tests are about), against the real gateway and nats-server; the
last test runs the gateway's own process, which serves on uvloop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client

from tests.integration.test_gateway_support import (
    ADMIN_TOKEN,
    AGENT_TOKEN,
    Gateway,
    eventually,
    heartbeat,
    running_gateway,
)
from vaultmesh.services.gateway.ingest.frontdoor import PAUSE_READING_AT
from vaultmesh.shared import subjects
from vaultmesh.shared.natsserver import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[2]
READ_S = 10.0


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_server.url, fleet=False, max_body_bytes=4096) as gw:
        yield gw


def beat_request(node: uuid.UUID, hostname: str, *extra: str, version: str = "1.1") -> bytes:
    """A plain heartbeat post with the agent token."""
    body = orjson.dumps(heartbeat(node, hostname=hostname))
    head = [
        f"POST /api/agent/heartbeat HTTP/{version}",
        "Host: gw",
        "Content-Type: application/json",
        f"X-Host-Token: {AGENT_TOKEN}",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response (length or chunked)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size + 2)
            body = body[:-2]
        await reader.readuntil(b"\r\n")
        return status, headers, body
    return status, headers, await reader.readexactly(int(headers.get("content-length", "0")))


async def connect(gateway: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the gateway."""
    port = int(gateway.base_url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port)


async def stored_hostname(nc: Client, node: uuid.UUID) -> str:
    """The hostname of the node's last heartbeat in HEARTBEATS."""
    msg = await nc.jetstream().get_last_msg(subjects.STREAM_HEARTBEATS, subjects.heartbeat(node))
    hostname: str = orjson.loads(msg.data)["hostname"]
    return hostname


async def test_pipelined_heartbeats_and_a_page_are_answered_in_order(gateway: Gateway) -> None:
    nodes = [uuid.uuid4() for _ in range(4)]
    reader, writer = await connect(gateway)
    # Three heartbeats, a page (handed to uvicorn), then a heartbeat that uvicorn
    # serves as well, all in one write.
    writer.write(
        b"".join(beat_request(node, f"pipe-{n}") for n, node in enumerate(nodes[:3]))
        + b"GET /openapi.json HTTP/1.1\r\nHost: gw\r\n\r\n"
        + beat_request(nodes[3], "pipe-3")
    )
    answers = [await read_response(reader) for _ in range(5)]
    writer.close()
    assert [status for status, _, _ in answers] == [200, 200, 200, 200, 200]
    assert [body for _, _, body in answers[:3]] == [b'{"status":"ok"}'] * 3
    assert orjson.loads(answers[3][2])["info"]["title"] == "VaultMesh gateway"
    assert answers[4][2] == b'{"status":"ok"}'
    for n, node in enumerate(nodes):
        assert await stored_hostname(gateway.nc, node) == f"pipe-{n}"


async def test_a_client_that_sends_much_and_reads_late_gets_every_answer(
    gateway: Gateway,
) -> None:
    """Past 256 KiB of pipelined requests reading pauses, and resumes as answers drain."""
    node = uuid.uuid4()
    count = 1500
    requests = [beat_request(node, f"flood-{n}") for n in range(count)]
    assert sum(map(len, requests)) > 2 * PAUSE_READING_AT
    reader, writer = await connect(gateway)

    async def send_all() -> None:
        for request in requests:
            writer.write(request)
        await writer.drain()

    sending = asyncio.create_task(send_all())
    await asyncio.sleep(0.5)  # let both directions' buffers fill before reading
    answers = [await read_response(reader) for _ in range(count)]
    await sending
    writer.close()
    assert [status for status, _, _ in answers] == [200] * count
    assert await stored_hostname(gateway.nc, node) == f"flood-{count - 1}"


async def test_many_pipelined_refusals_are_answered_in_order(gateway: Gateway) -> None:
    """Refusals are answered at once, in a loop: thousands in one write do not recurse."""
    node = uuid.uuid4()
    count = 3000
    refused = beat_request(node, "refused").replace(AGENT_TOKEN.encode(), b"wrong-token")
    reader, writer = await connect(gateway)
    writer.write(refused * count + beat_request(node, "after"))
    answers = [await read_response(reader) for _ in range(count + 1)]
    writer.close()
    assert [status for status, _, _ in answers] == [401] * count + [200]
    assert await stored_hostname(gateway.nc, node) == "after"


async def test_heartbeats_from_many_connections_are_all_answered_and_stored(
    gateway: Gateway,
) -> None:
    """They share batches (batcher.py); each connection still gets its own answer."""
    nodes = [uuid.uuid4() for _ in range(40)]
    conns = [await connect(gateway) for _ in nodes]
    for n, ((_, writer), node) in enumerate(zip(conns, nodes, strict=True)):
        writer.write(beat_request(node, f"many-{n}"))
    answers = [await read_response(reader) for reader, _ in conns]
    for _, writer in conns:
        writer.close()
    assert [status for status, _, _ in answers] == [200] * len(nodes)
    for n, node in enumerate(nodes):
        assert await stored_hostname(gateway.nc, node) == f"many-{n}"


async def test_a_heartbeat_sent_a_byte_at_a_time_is_served(gateway: Gateway) -> None:
    node = uuid.uuid4()
    reader, writer = await connect(gateway)
    for byte in beat_request(node, "trickle"):
        writer.write(bytes([byte]))
        await writer.drain()
    status, headers, body = await read_response(reader)
    writer.close()
    assert (status, body) == (200, b'{"status":"ok"}')
    assert headers["content-type"] == "application/json"
    assert "date" in headers
    assert await stored_hostname(gateway.nc, node) == "trickle"


@pytest.mark.parametrize(
    ("version", "extra"), [("1.0", ()), ("1.1", ("Connection: close",))], ids=["http-1.0", "close"]
)
async def test_a_connection_that_asks_to_close_is_closed_after_the_answer(
    gateway: Gateway, version: str, extra: tuple[str, ...]
) -> None:
    reader, writer = await connect(gateway)
    writer.write(beat_request(uuid.uuid4(), "once", *extra, version=version))
    status, headers, _ = await read_response(reader)
    assert status == 200
    assert headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), READ_S) == b""
    writer.close()


async def test_chunked_and_expect_continue_heartbeats_are_served_by_uvicorn(
    gateway: Gateway,
) -> None:
    chunked, waiting = uuid.uuid4(), uuid.uuid4()
    body = orjson.dumps(heartbeat(chunked, hostname="chunked"))
    reader, writer = await connect(gateway)
    writer.write(
        b"POST /api/agent/heartbeat HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        + f"X-Host-Token: {AGENT_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    assert (await read_response(reader))[0] == 200
    request = beat_request(waiting, "continued", "Expect: 100-continue")
    head, _, rest = request.partition(b"\r\n\r\n")
    writer.write(head + b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_S) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(rest)
    assert (await read_response(reader))[0] == 200
    writer.close()
    assert await stored_hostname(gateway.nc, chunked) == "chunked"
    assert await stored_hostname(gateway.nc, waiting) == "continued"


async def test_errors_keep_their_shape_and_the_connection(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    writer.write(beat_request(uuid.uuid4(), "x").replace(AGENT_TOKEN.encode(), b"wrong-token"))
    status, headers, body = await read_response(reader)
    assert status == 401
    assert "error" in orjson.loads(body)
    assert headers["www-authenticate"].startswith("Bearer")
    bad = b"{not json"
    writer.write(
        b"POST /api/agent/heartbeat HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        + f"X-Host-Token: {AGENT_TOKEN}\r\nContent-Length: {len(bad)}\r\n\r\n".encode()
        + bad
    )
    status, _, body = await read_response(reader)
    assert status == 400
    assert orjson.loads(body)["error"].startswith("malformed JSON body")
    node = uuid.uuid4()
    writer.write(beat_request(node, "after-errors"))
    assert (await read_response(reader))[0] == 200
    writer.write(b"POST /api/agent/heartbeat HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")
    assert (await read_response(reader))[0] == 400  # uvicorn's parser refuses it
    writer.close()
    assert gateway.bad_input("/api/agent/heartbeat", "unauthorized") >= 1
    assert await stored_hostname(gateway.nc, node) == "after-errors"


async def test_stopping_closes_idle_connections_and_answers_first(nats_server: NatsServer) -> None:
    async with running_gateway(nats_server.url, fleet=False) as gateway:
        idle_reader, idle_writer = await connect(gateway)
        idle_writer.write(beat_request(uuid.uuid4(), "idle"))
        assert (await read_response(idle_reader))[0] == 200
        stopping = asyncio.create_task(gateway.server.stop())
        # Closed by the stop, not by uvicorn's 5 s keep-alive timeout.
        assert await asyncio.wait_for(idle_reader.read(), 4.0) == b""
        await asyncio.wait_for(stopping, READ_S)
        idle_writer.close()


async def test_the_gateway_process_serves_both_on_one_connection(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    """The real process (uvloop, the runtime): heartbeats and a page, one keep-alive connection."""
    port = free_port()
    env = {
        **os.environ,
        "VAULTMESH_NATS_URL": nats_server.url,
        "VAULTMESH_HTTP_HOST": "127.0.0.1",
        "VAULTMESH_HTTP_PORT": str(port),
        "VAULTMESH_ADMIN_TOKENS": ADMIN_TOKEN,
        "VAULTMESH_AGENT_TOKENS": AGENT_TOKEN,
        "VAULTMESH_METRICS_PORT": "-1",
    }
    env.pop("VAULTMESH_CONFIG", None)
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultmesh.services.gateway"], cwd=ROOT, env=env, stderr=log
    )

    async def connected() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return None

    try:
        reader, writer = await eventually(connected, "the gateway to listen")
        node = uuid.uuid4()
        writer.write(beat_request(node, "proc-1") + b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert (await read_response(reader))[0] == 200
        writer.write(beat_request(node, "proc-2"))
        assert (await read_response(reader))[0] == 200
        writer.close()
        assert await stored_hostname(nc, node) == "proc-2"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "gateway.log").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()
