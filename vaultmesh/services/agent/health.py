"""Health checks and heartbeat building (seed 000), with every system access injected.

Nothing here touches the machine directly: a ``Probes`` value carries the
command runner and the readers, so tests pass fakes and the daemon passes
``system.probes()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

from vaultmesh.shared.models.heartbeat import Heartbeat, NodeMetrics

# Seed 000: "systemctl is-active --quiet cloudflared", exit code 0 means active.
CLOUDFLARED_CHECK = ("systemctl", "is-active", "--quiet", "cloudflared")
KIB = 1024

# Runs argv with a timeout; returns the exit code, or None if it could not run or timed out.
Runner = Callable[[Sequence[str], float], Awaitable[int | None]]


@dataclass(frozen=True)
class Probes:
    """The system accesses the checks need."""

    run: Runner
    is_dir: Callable[[Path], bool]
    loadavg: Callable[[], tuple[float, float, float]]
    meminfo: Callable[[], str]
    # (total, free) bytes of the filesystem holding the path.
    disk_usage: Callable[[Path], tuple[int, int]]


@dataclass(frozen=True)
class NodeIdentity:
    """What a node says about itself in every heartbeat."""

    node_id: UUID
    hostname: str
    os_profile: str
    root: Path
    interval_s: float


@dataclass(frozen=True)
class HealthReport:
    """The result of one round of checks."""

    cloudflare_ok: bool
    services_ok: bool
    metrics: NodeMetrics


async def cloudflare_ok(run: Runner, timeout: float) -> bool:
    """True when systemd reports cloudflared active; False when systemctl is missing or hangs."""
    return await run(CLOUDFLARED_CHECK, timeout) == 0


def services_ok(probes: Probes, root: Path) -> bool:
    """Seed 000 V1: VAULTMESH_ROOT exists and is a directory."""
    try:
        return probes.is_dir(root)
    except OSError:
        return False


def parse_meminfo(text: str) -> tuple[int | None, int | None]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo text; None where absent."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if key in ("MemTotal", "MemAvailable") and fields and fields[0].isdigit():
            unit = KIB if len(fields) > 1 and fields[1].lower() == "kb" else 1
            found[key] = int(fields[0]) * unit
    return found.get("MemTotal"), found.get("MemAvailable")


def collect_metrics(probes: Probes, root: Path, root_ok: bool) -> NodeMetrics:
    """Load, memory and disk; a probe that fails leaves its fields empty."""
    values: dict[str, float | int | None] = {}
    with contextlib.suppress(OSError):
        values["load1"], values["load5"], values["load15"] = probes.loadavg()
    with contextlib.suppress(OSError):
        values["mem_total_bytes"], values["mem_available_bytes"] = parse_meminfo(probes.meminfo())
    with contextlib.suppress(OSError):
        # Disk of VAULTMESH_ROOT when it exists, else of the root filesystem.
        total, free = probes.disk_usage(root if root_ok else Path("/"))
        values["disk_total_bytes"], values["disk_free_bytes"] = total, free
    return NodeMetrics.model_validate(values)


async def check(probes: Probes, root: Path, timeout: float) -> HealthReport:
    """Run every check once."""
    root_ok = services_ok(probes, root)
    return HealthReport(
        cloudflare_ok=await cloudflare_ok(probes.run, timeout),
        services_ok=root_ok,
        metrics=collect_metrics(probes, root, root_ok),
    )


def build_heartbeat(identity: NodeIdentity, report: HealthReport, now: datetime) -> Heartbeat:
    """The seed 000 heartbeat, plus metrics and the interval."""
    return Heartbeat(
        node_id=identity.node_id,
        hostname=identity.hostname,
        os_profile=identity.os_profile,
        cloudflare_ok=report.cloudflare_ok,
        services_ok=report.services_ok,
        vaultmesh_root=str(identity.root),
        timestamp=now,
        metrics=report.metrics,
        interval_s=identity.interval_s,
    )
