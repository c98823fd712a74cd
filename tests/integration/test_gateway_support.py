"""Shared helpers for the gateway integration tests (this module holds no tests).

The gateway runs for real: uvicorn on a loopback socket in the test's event
loop, talking to the module's real nats-server, with the real fleet-state
service beside it when a test needs fleet answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import orjson
from nats.aio.client import Client

from vaultmesh.services.fleet.config import FleetSettings
from vaultmesh.services.fleet.service import build_for as fleet_builder
from vaultmesh.services.gateway.config import GatewaySettings
from vaultmesh.services.gateway.service import GatewayService, build_for
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.runtime import Component

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
AGENT_TOKEN = "test-agent-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AGENT = {"X-Host-Token": AGENT_TOKEN}
WAIT_S = 20.0

T = TypeVar("T")


@dataclass
class Gateway:
    """A running gateway (and optionally fleet-state) for one test."""

    base_url: str
    server: GatewayService
    nc: Client
    metrics: ServiceMetrics
    settings: GatewaySettings
    extras: list[tuple[Component, Client]] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client for this gateway (no auth unless headers are given)."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0, **kwargs)

    def bad_input(self, source: str, code: str) -> float:
        """The current vaultmesh_bad_input_total for ``source``/``code``."""
        value = self.metrics.registry.get_sample_value(
            "vaultmesh_bad_input_total", {"service": "gateway", "source": source, "code": code}
        )
        return value or 0.0


def gateway_settings(nats_url: str, **overrides: Any) -> GatewaySettings:
    """Settings for a test gateway on a free loopback port."""
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "admin_tokens": ADMIN_TOKEN,
        "agent_tokens": AGENT_TOKEN,
        "metrics_port": -1,
    }
    values.update(overrides)
    return GatewaySettings(**values)


async def start_fleet(nats_url: str) -> tuple[Component, Client]:
    """The real fleet-state service, in this event loop."""
    settings = FleetSettings(nats_url=nats_url, metrics_port=-1)
    nc = await bus.connect(settings, "fleet-state-test")
    component = await fleet_builder(settings)(nc, ServiceMetrics("fleet-state"))
    await component.start()
    return component, nc


@asynccontextmanager
async def running_gateway(
    nats_url: str, *, fleet: bool = True, **overrides: Any
) -> AsyncIterator[Gateway]:
    """Start fleet-state (optional) and the gateway; stop both afterwards."""
    settings = gateway_settings(nats_url, **overrides)
    extras = [await start_fleet(nats_url)] if fleet else []
    nc = await bus.connect(settings, "gateway-test")
    metrics = ServiceMetrics("gateway")
    service = await build_for(settings)(nc, metrics)
    assert isinstance(service, GatewayService)
    try:
        async with service:
            url = f"http://127.0.0.1:{service.port}"
            yield Gateway(url, service, nc, metrics, settings, extras)
    finally:
        await bus.close(nc)
        for component, extra_nc in extras:
            await component.stop()
            await bus.close(extra_nc)


def heartbeat(node_id: uuid.UUID | None = None, **fields: Any) -> dict[str, Any]:
    """A valid seed 000 heartbeat body."""
    body: dict[str, Any] = {
        "node_id": str(node_id or uuid.uuid4()),
        "hostname": "vault-node-01",
        "os_profile": "ArchVault",
        "cloudflare_ok": True,
        "services_ok": True,
        "vaultmesh_root": "/var/lib/vaultmesh",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    body.update(fields)
    return body


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll ``probe`` until it returns something truthy (bounded, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def audit_records(nc: Client, service: str, action: str) -> list[dict[str, Any]]:
    """Every ``audit.<service>.<action>`` record in stream AUDIT so far, oldest first."""
    js = nc.jetstream()
    sub = await js.subscribe(
        subjects.audit(service, action), stream=subjects.STREAM_AUDIT, ordered_consumer=True
    )
    records: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.3)
            except TimeoutError:
                return records
            records.append(orjson.loads(msg.data))
    finally:
        await sub.unsubscribe()


async def gateway_audit(nc: Client, action: str) -> list[dict[str, Any]]:
    """Every ``audit.gateway.<action>`` record in stream AUDIT so far, oldest first."""
    return await audit_records(nc, "gateway", action)


def assert_error_shape(response: httpx.Response, status: int) -> str:
    """The response is ``status`` with exactly ``{"error": "<non-empty text>"}``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    return str(body["error"])


@dataclass
class SseEvent:
    """One dispatched Server-Sent Event (or a bare id/retry block, with ``event`` None)."""

    id: str | None
    event: str | None
    data: str


class SseReader:
    """A minimal text/event-stream parser over an httpx streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self._lines = response.aiter_lines()

    async def next_block(self) -> SseEvent:
        """The next block that carries an id or data (comments are collected)."""
        fields: dict[str, list[str]] = {}
        while True:
            line = await asyncio.wait_for(anext(self._lines), WAIT_S)
            if line == "":
                if "id" in fields or "data" in fields:
                    return SseEvent(
                        fields.get("id", [None])[-1],
                        fields.get("event", [None])[-1],
                        "\n".join(fields.get("data", [])),
                    )
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))

    async def next_comment(self) -> str:
        """Read on until a comment line (like ``: keepalive``) and return its text."""
        while True:
            line = await asyncio.wait_for(anext(self._lines), WAIT_S)
            if line.startswith(":"):
                return line[1:].strip()

    async def next_event(self) -> SseEvent:
        """The next block with data (an event a browser would dispatch)."""
        while True:
            block = await self.next_block()
            if block.data:
                return block


@asynccontextmanager
async def sse(
    client: httpx.AsyncClient, path: str = "/events", headers: dict[str, str] | None = None
) -> AsyncIterator[SseReader]:
    """Open ``path`` as an event stream."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)
