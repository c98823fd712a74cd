"""The gateway's limits on heads, time and connections, attacked over real sockets.

Each limit on both of the gateway's HTTP paths — the front door (plain
heartbeat posts) and uvicorn behind it (everything else) — against the real
gateway and nats-server; the memory tests attack the gateway's own process
and read its resident memory from /proc (bytes, not durations).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.integration.test_gateway_frontdoor import beat_request, connect, read_response
from tests.integration.test_gateway_support import (
    ADMIN_TOKEN,
    AGENT_TOKEN,
    Gateway,
    eventually,
    running_gateway,
)
from vaultmesh.shared.natsserver import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[2]
READ_S = 10.0
HEAD_BYTES = 4096
HEADERS = 20
TIMEOUT_S = 1.0
CONNECTIONS = 4
MiB = 1024 * 1024


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


# -- the gateway's own process, and its memory ---------------------------------------------
def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_sockets(pid: int) -> int:
    """How many sockets process ``pid`` has open."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


@dataclass
class GatewayProcess:
    """``python -m vaultmesh.services.gateway`` on a port of its own."""

    pid: int
    port: int

    async def healthz(self) -> int:
        """The status of GET /healthz on a new connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(get("/healthz", "Connection: close"))
            return (await read_response(reader))[0]
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def gateway_process(
    nats_server: NatsServer, tmp_path: Path, **env: str
) -> AsyncIterator[GatewayProcess]:
    """The real gateway process (uvloop, the runtime), warmed up, stopped afterwards."""
    port = free_port()
    environ = {
        **os.environ,
        "VAULTMESH_NATS_URL": nats_server.url,
        "VAULTMESH_HTTP_HOST": "127.0.0.1",
        "VAULTMESH_HTTP_PORT": str(port),
        "VAULTMESH_ADMIN_TOKENS": ADMIN_TOKEN,
        "VAULTMESH_AGENT_TOKENS": AGENT_TOKEN,
        "VAULTMESH_METRICS_PORT": "-1",
        **env,
    }
    environ.pop("VAULTMESH_CONFIG", None)
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaultmesh.services.gateway"], cwd=ROOT, env=environ, stderr=log
        )
        gateway = GatewayProcess(proc.pid, port)

        async def healthy() -> bool:
            try:
                return await gateway.healthz() == 200
            except OSError:
                return False

        try:
            await eventually(healthy, "the gateway to serve")
            for _ in range(20):  # the first requests import and allocate what every one needs
                assert await gateway.healthz() == 200
            yield gateway
        finally:
            proc.terminate()
            proc.wait(30)
    assert proc.returncode == 0, log_path.read_text()[-2000:]
    assert "Traceback" not in log_path.read_text()


@contextlib.contextmanager
def file_limit(needed: int) -> Iterator[None]:
    """At least ``needed`` open files for this process (its soft limit raised if it can be)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_100_mib_header_leaves_the_gateways_memory_bounded(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The probe's attack: GET /healthz with a header that never ends, 100 MiB of it."""
    async with gateway_process(nats_server, tmp_path) as gateway:
        before = rss_bytes(gateway.pid)
        peak = before
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Big: ")
        chunk = b"a" * MiB
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 100 * MiB:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                peak = max(peak, rss_bytes(gateway.pid))
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(reader.read(), READ_S)  # refused: the connection ends
        writer.close()
        peak = max(peak, rss_bytes(gateway.pid))
        assert peak - before < 8 * MiB, (before, peak)
        assert sent < 100 * MiB, "the gateway read the whole header"
        assert await gateway.healthz() == 200


async def test_pipelined_requests_that_are_never_read_leave_memory_bounded(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """8 connections each pipeline 2 MB of GET /healthz and read no answer.

    uvicorn alone parses every request it has read at once, tens of thousands
    of them each with its scope and cycle: over 100 MiB a connection.
    """
    request = get("/healthz")
    async with gateway_process(nats_server, tmp_path) as gateway:
        before = rss_bytes(gateway.pid)
        conns = []
        for _ in range(8):
            # A one-byte read limit: the client stops reading at once.
            _, writer = await asyncio.open_connection("127.0.0.1", gateway.port, limit=1)
            writer.write(request * (2_000_000 // len(request)))
            conns.append(writer)
        peak = before
        for _ in range(20):  # samples while the gateway reads what it can
            await asyncio.sleep(0.25)
            peak = max(peak, rss_bytes(gateway.pid))
        for writer in conns:
            writer.transport.abort()
        assert peak - before < 16 * MiB, (before, peak)
        assert await gateway.healthz() == 200


SLOW = 1500
CAP = 100
GIVE_UP_S = 60.0  # a bound on the test, not the thing measured
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"s" * 12 * 1024


async def test_1500_slow_connections_are_capped_timed_out_and_memory_bounded(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The probe's slow-loris: 1,500 connections, each a 12 KiB head then a byte a second.

    At most the cap are held (the rest refused as they connect), those that are
    held get 408 at the deadline, and the gateway's memory grows by less than
    the heads of the 1,500 would take (18 MiB).
    """
    env = {"VAULTMESH_HTTP_MAX_CONNECTIONS": str(CAP), "VAULTMESH_HTTP_REQUEST_TIMEOUT_S": "5"}
    with file_limit(SLOW + 512):
        async with gateway_process(nats_server, tmp_path, **env) as gateway:
            baseline_sockets = open_sockets(gateway.pid)
            before = rss_bytes(gateway.pid)
            conns = []
            for _ in range(SLOW):
                reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
                writer.write(PARTIAL_HEAD)
                conns.append((reader, writer))

            async def outcome(reader: asyncio.StreamReader) -> int:
                """The status the gateway answered, or 0 when it reset the connection."""
                try:
                    return (await read_response(reader))[0]
                except (ConnectionError, asyncio.IncompleteReadError):
                    return 0

            outcomes = [asyncio.create_task(outcome(reader)) for reader, _ in conns]
            held_most, peak = 0, before
            give_up = asyncio.get_running_loop().time() + GIVE_UP_S
            while asyncio.get_running_loop().time() < give_up:
                held_most = max(held_most, open_sockets(gateway.pid) - baseline_sockets)
                peak = max(peak, rss_bytes(gateway.pid))
                for _, writer in conns:  # a byte a second on every open connection
                    if not writer.is_closing():
                        writer.write(b"s")
                _, pending = await asyncio.wait(outcomes, timeout=1.0)
                if not pending:
                    break
            for _, writer in conns:
                writer.close()
            assert held_most <= CAP, held_most
            assert peak - before < 8 * MiB, (before, peak)
            assert all(task.done() for task in outcomes), "connections held past the deadline"
            statuses = [task.result() for task in outcomes]
            assert statuses.count(408) <= CAP
            assert set(statuses) <= {408, 503, 0}, set(statuses)
            assert await gateway.healthz() == 200
