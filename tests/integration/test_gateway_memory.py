"""The gateway's own process under attack: its memory and sockets stay bounded.

The real process (``python -m vaultmesh.services.gateway``: uvloop, the
runtime) against a real nats-server; resident memory and open sockets are read
from /proc (bytes and counts, not durations).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_gateway_frontdoor import read_response
from tests.integration.test_gateway_limits import READ_S, get
from tests.integration.test_gateway_support import ADMIN_TOKEN, AGENT_TOKEN, eventually
from vaultmesh.shared.natsserver import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


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
