"""Helpers shared by the fleet-state integration tests (no tests here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from vaultmesh.services.fleet.config import FleetSettings
from vaultmesh.services.fleet.service import FleetService
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.clock import Clock, ManualClock
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.events import EventEnvelope


def heartbeat(node_id: str, **fields: Any) -> dict[str, Any]:
    """A valid seed-000 heartbeat body, stamped now."""
    body: dict[str, Any] = {
        "node_id": node_id,
        "hostname": f"vault-{node_id[:8]}",
        "os_profile": "ArchVault",
        "cloudflare_ok": True,
        "services_ok": True,
        "vaultmesh_root": "/var/lib/vaultmesh",
        "timestamp": datetime.now(UTC).isoformat(),
        "interval_s": 10,
    }
    body.update(fields)
    return body


async def publish(nc: Client, node_id: str, body: dict[str, Any] | bytes) -> int:
    """JetStream-publish a heartbeat on ``node_id``'s subject; returns its stream sequence."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    ack = await nc.jetstream().publish(subjects.heartbeat(node_id), data)
    return int(ack.seq)


async def wait_for(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def settings_for(url: str, **overrides: Any) -> FleetSettings:
    """Fleet settings for tests: no timer sweeps (tests sweep explicitly)."""
    values: dict[str, Any] = {"nats_url": url, "fleet_sweep_interval_s": 3600}
    values.update(overrides)
    return FleetSettings(**values)


def clock_at(offset_s: float = 0.0) -> ManualClock:
    """A manual clock at real now plus ``offset_s`` (stream arrival times are real)."""
    return ManualClock(datetime.now(UTC) + timedelta(seconds=offset_s))


def move(clock: ManualClock, offset_s: float) -> None:
    """Set ``clock`` to real now plus ``offset_s``."""
    clock.set(datetime.now(UTC) + timedelta(seconds=offset_s))


@asynccontextmanager
async def running(settings: FleetSettings, clock: Clock) -> AsyncIterator[FleetService]:
    """A started FleetService on its own connection; stopped (and drained) afterwards."""
    nc = await bus.connect(settings, "fleet-under-test")
    service = FleetService(nc, ServiceMetrics("fleet"), settings, clock)
    try:
        await service.start()
        yield service
    finally:
        await service.stop()
        await bus.close(nc)


async def stream_events(nc: Client, kind: str, node_id: str) -> list[EventEnvelope]:
    """Every EventEnvelope of ``kind`` about ``node_id`` stored in the EVENTS stream."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(
            subjects.STREAM_EVENTS, subjects_filter=subjects.event(kind, node_id)
        )
    except NotFoundError:
        return []
    wanted = (info.state.subjects or {}).get(subjects.event(kind, node_id), 0)
    if not wanted:
        return []
    sub = await js.subscribe(
        subjects.event(kind, node_id),
        stream=subjects.STREAM_EVENTS,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        msgs = [await sub.next_msg(timeout=10) for _ in range(wanted)]
    finally:
        await sub.unsubscribe()
    return [EventEnvelope.model_validate_json(m.data) for m in msgs]


async def statuses(nc: Client, node_id: str) -> list[str]:
    """The ``status`` of each attention event about ``node_id``, oldest first."""
    return [e.data["status"] for e in await stream_events(nc, "attention", node_id)]
