"""``NodeState``: the compact in-memory record of one node (the registry holds 100k of them)."""

from __future__ import annotations

from vaultmesh.shared.models.fleet import NodeStatus
from vaultmesh.shared.models.heartbeat import Heartbeat, NodeMetrics

# NodeMetrics fields in a fixed order, so metrics can be kept as a small tuple.
METRIC_FIELDS: tuple[str, ...] = tuple(NodeMetrics.model_fields)
Metrics = tuple[float | int | None, ...]


class NodeState:
    """Last heartbeat facts plus derived state; ``__slots__`` keeps it a few hundred bytes.

    Times are epoch seconds (floats). ``skew`` is -1/0/+1 (see attention.skew_direction).
    ``rev`` is the FLEET_STATE revision this state was last stored at (or, for a node not
    stored yet, the revision of the key it will replace; 0 when there is none): the version
    number a compare-and-set write needs, so a record never overwrites a removal it has not
    seen (see writer.py).
    The ``base_*`` fields are the accepted identity that drift is measured against;
    they share the same string objects as the current fields while nothing drifted.
    """

    __slots__ = (
        "base_hostname",
        "base_os_profile",
        "base_root",
        "cloudflare_ok",
        "drift_since",
        "first_seen",
        "hostname",
        "interval_s",
        "last_heartbeat",
        "last_seen",
        "metrics",
        "node_id",
        "os_profile",
        "reasons",
        "rev",
        "services_ok",
        "skew",
        "status",
        "vaultmesh_root",
    )

    def __init__(self, node_id: str, hb: Heartbeat, arrival: float) -> None:
        self.node_id = node_id
        self.hostname = self.base_hostname = hb.hostname
        self.os_profile = self.base_os_profile = hb.os_profile
        self.vaultmesh_root = self.base_root = hb.vaultmesh_root
        self.cloudflare_ok = hb.cloudflare_ok
        self.services_ok = hb.services_ok
        self.last_heartbeat = hb.timestamp.timestamp()
        self.last_seen = arrival
        self.first_seen = arrival
        self.interval_s = hb.interval_s
        self.metrics = pack_metrics(hb.metrics)
        self.skew = 0
        self.drift_since: float | None = None
        self.status = NodeStatus.OK
        self.reasons: tuple[str, ...] = ()
        self.rev = 0


def pack_metrics(metrics: NodeMetrics | None) -> Metrics | None:
    """NodeMetrics as a tuple in METRIC_FIELDS order (None when absent)."""
    if metrics is None:
        return None
    # A model's __dict__ holds exactly its fields, in declaration order (5x faster than getattr).
    return tuple(metrics.__dict__.values())


def unpack_metrics(packed: Metrics | None) -> dict[str, float | int | None] | None:
    """The NodeMetrics JSON object of a packed tuple."""
    if packed is None:
        return None
    return dict(zip(METRIC_FIELDS, packed, strict=True))
