"""Agent health checks, heartbeat building and the beat loop, with fake probes (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from vaultmesh.services.agent import health
from vaultmesh.services.agent.daemon import Agent
from vaultmesh.services.agent.errors import SendError
from vaultmesh.services.agent.health import NodeIdentity, Probes
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.models.heartbeat import Heartbeat

MEMINFO = """MemTotal:        8000000 kB
MemFree:          100000 kB
MemAvailable:    2000000 kB
Buffers:           10000 kB
"""
ROOT = Path("/srv/vaultmesh")


class FakeRunner:
    """Records commands and answers with a fixed exit code (None: missing or timed out)."""

    def __init__(self, code: int | None) -> None:
        self.code = code
        self.calls: list[tuple[tuple[str, ...], float]] = []

    async def __call__(self, argv: Sequence[str], timeout: float) -> int | None:
        self.calls.append((tuple(argv), timeout))
        return self.code


def _fail() -> tuple[float, float, float]:
    raise OSError("no /proc")


def probes(
    *,
    code: int | None = 0,
    dirs: frozenset[Path] = frozenset({ROOT}),
    loadavg: tuple[float, float, float] | None = (0.5, 0.25, 0.125),
    meminfo: str = MEMINFO,
) -> Probes:
    disks = {ROOT: (100, 40), Path("/"): (1000, 900)}
    return Probes(
        run=FakeRunner(code),
        is_dir=lambda path: path in dirs,
        loadavg=_fail if loadavg is None else (lambda: loadavg),
        meminfo=lambda: meminfo,
        disk_usage=lambda path: disks[path],
    )


IDENTITY = NodeIdentity(uuid4(), "node-a", "ArchVault", ROOT, 30.0)


def test_parse_meminfo_reads_total_and_available_in_bytes() -> None:
    assert health.parse_meminfo(MEMINFO) == (8000000 * 1024, 2000000 * 1024)


def test_parse_meminfo_tolerates_missing_and_garbage_lines() -> None:
    assert health.parse_meminfo("MemTotal: lots\nnonsense\n") == (None, None)


@pytest.mark.parametrize(("code", "expected"), [(0, True), (3, False), (None, False)])
async def test_cloudflare_ok_is_systemctl_exit_code_zero(code: int | None, expected: bool) -> None:
    runner = FakeRunner(code)
    assert await health.cloudflare_ok(runner, 2.0) is expected
    assert runner.calls == [(("systemctl", "is-active", "--quiet", "cloudflared"), 2.0)]


async def test_check_reports_root_and_metrics() -> None:
    report = await health.check(probes(), ROOT, 1.0)
    assert report.cloudflare_ok is True
    assert report.services_ok is True
    assert report.metrics.load1 == 0.5
    assert report.metrics.mem_available_bytes == 2000000 * 1024
    assert (report.metrics.disk_total_bytes, report.metrics.disk_free_bytes) == (100, 40)


async def test_missing_root_is_not_ok_and_disk_falls_back_to_slash() -> None:
    report = await health.check(probes(dirs=frozenset(), code=1), ROOT, 1.0)
    assert report.services_ok is False
    assert report.cloudflare_ok is False
    assert report.metrics.disk_total_bytes == 1000


async def test_failing_probe_leaves_its_metrics_empty() -> None:
    report = await health.check(probes(loadavg=None, meminfo=""), ROOT, 1.0)
    assert report.metrics.load1 is None
    assert report.metrics.mem_total_bytes is None
    assert report.metrics.disk_free_bytes == 40


async def test_heartbeat_follows_the_seed_contract() -> None:
    report = await health.check(probes(), ROOT, 1.0)
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    heartbeat = health.build_heartbeat(IDENTITY, report, now)
    wire = heartbeat.model_dump(mode="json", exclude_none=True)
    assert wire["node_id"] == str(IDENTITY.node_id)
    assert wire["timestamp"] == "2026-05-01T12:00:00Z"
    assert wire["vaultmesh_root"] == str(ROOT)
    assert wire["interval_s"] == 30.0
    assert {"hostname", "os_profile", "cloudflare_ok", "services_ok", "metrics"} <= wire.keys()
    assert Heartbeat.model_validate(wire) == heartbeat


class FakeSender:
    """Accepts, or refuses with SendError, and records what it got."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[Heartbeat] = []
        self.attempts = 0
        self.enough = asyncio.Event()

    @property
    def target(self) -> str:
        return "fake://cc"

    async def send(self, heartbeat: Heartbeat) -> None:
        self.attempts += 1
        if self.attempts >= 3:
            self.enough.set()
        if self.attempts <= self.fail:
            raise SendError("cc answered 500", status=500)
        self.sent.append(heartbeat)

    async def close(self) -> None:
        return None


async def test_beat_sends_a_heartbeat_with_the_clock_time() -> None:
    sender = FakeSender()
    clock = ManualClock()
    agent = Agent(IDENTITY, probes(), sender, clock)
    assert await agent.beat() is True
    assert sender.sent[0].timestamp == clock.now()
    assert sender.sent[0].node_id == IDENTITY.node_id


async def test_refused_beat_is_reported_not_raised() -> None:
    agent = Agent(IDENTITY, probes(), FakeSender(fail=1), ManualClock())
    assert await agent.beat() is False


async def test_a_bug_in_a_probe_does_not_escape_the_beat() -> None:
    broken = Probes(
        run=FakeRunner(0),
        is_dir=lambda _path: True,
        loadavg=lambda: (1.0, 1.0, 1.0),
        meminfo=lambda: MEMINFO,
        disk_usage=lambda _path: (-1, -1),  # invalid metrics: validation fails
    )
    assert await Agent(IDENTITY, broken, FakeSender(), ManualClock()).beat() is False


async def test_run_keeps_beating_after_failures_until_cancelled() -> None:
    sender = FakeSender(fail=2)
    fast = NodeIdentity(IDENTITY.node_id, "node-a", "ArchVault", ROOT, 0.01)
    task = asyncio.create_task(Agent(fast, probes(), sender, ManualClock()).run())
    await asyncio.wait_for(sender.enough.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sender.attempts >= 3
    assert len(sender.sent) >= 1
