"""Wire views of registry state: plain dicts shaped like the shared reply models.

Built directly (not through pydantic) because ``list`` renders up to 10,000
nodes per request; tests check the shapes validate as ``NodeView`` etc.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vaultmesh.shared.models.fleet import NodeStatus

from .node import NodeState, unpack_metrics


def rfc3339(epoch: float) -> str:
    """Epoch seconds as RFC 3339 UTC with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def node_view(node: NodeState, default_interval_s: float) -> dict[str, Any]:
    """The ``NodeView`` JSON object of ``node``."""
    return {
        "node_id": node.node_id,
        "hostname": node.hostname,
        "os_profile": node.os_profile,
        "cloudflare_ok": node.cloudflare_ok,
        "services_ok": node.services_ok,
        "vaultmesh_root": node.vaultmesh_root,
        "last_heartbeat": rfc3339(node.last_heartbeat),
        "last_seen": rfc3339(node.last_seen),
        "first_seen": rfc3339(node.first_seen),
        "interval_s": node.interval_s or default_interval_s,
        "status": node.status.value,
        "reasons": list(node.reasons),
        "metrics": unpack_metrics(node.metrics),
    }


def counts_view(counts: dict[NodeStatus, int]) -> dict[str, int]:
    """The ``FleetCounts`` JSON object."""
    return {
        "total": sum(counts.values()),
        "healthy": counts[NodeStatus.OK],
        "attention": counts[NodeStatus.ATTN],
        "critical": counts[NodeStatus.CRIT],
    }
