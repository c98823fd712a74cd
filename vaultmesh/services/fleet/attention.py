"""The attention model: a node is OK, ATTN or CRIT, and every verdict says why.

Pure domain logic: no I/O and no clock of its own; callers pass ``now`` (epoch
seconds) from an injected ``Clock``. Inputs:

- staleness, measured in the node's own heartbeat intervals (so a node that
  beats every 5 minutes is not "stale" after 90 seconds);
- the node's own checks (``cloudflare_ok``, ``services_ok``);
- drift: hostname, os_profile or vaultmesh_root differ from the accepted
  baseline (what the node first reported, or what it settled on after a drift
  was accepted);
- clock skew between the heartbeat's timestamp and its arrival on the bus.

Reasons are deterministic texts built from thresholds, never from the current
age, so a verdict only changes when something real changes (and derived state
is only persisted on change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from vaultmesh.shared.models.common import Severity
from vaultmesh.shared.models.events import EventEnvelope, EventKind
from vaultmesh.shared.models.fleet import NodeStatus

AUTHOR = "fleet-state"
_RANK = {NodeStatus.OK: 0, NodeStatus.ATTN: 1, NodeStatus.CRIT: 2}
SEVERITY = {
    NodeStatus.OK: Severity.INFO,
    NodeStatus.ATTN: Severity.WARNING,
    NodeStatus.CRIT: Severity.CRITICAL,
}

CLOUDFLARE_DOWN = "cloudflared is not active (cloudflare_ok is false)"
SERVICES_DOWN = "VAULTMESH_ROOT check failed (services_ok is false)"


@dataclass(frozen=True)
class AttentionPolicy:
    """Thresholds of the attention model (see docs/fleet.md)."""

    default_interval_s: float = 30.0
    attn_intervals: float = 3.0
    crit_intervals: float = 10.0
    max_skew_s: float = 120.0
    # After this long a drifted identity becomes the new baseline; 0 means never.
    drift_accept_s: float = 3600.0
    # Severity of failed checks: a missing VAULTMESH_ROOT is worse than a stopped tunnel.
    cloudflare_status: NodeStatus = NodeStatus.ATTN
    services_status: NodeStatus = NodeStatus.CRIT


@dataclass(frozen=True, slots=True)
class Verdict:
    """The attention model's answer for one node."""

    status: NodeStatus
    reasons: tuple[str, ...] = ()


OK = Verdict(NodeStatus.OK)


class NodeFacts(Protocol):
    """What the model looks at (``NodeState`` in the registry provides it)."""

    hostname: str
    os_profile: str
    vaultmesh_root: str
    cloudflare_ok: bool
    services_ok: bool
    last_seen: float
    interval_s: float | None
    skew: int
    base_hostname: str
    base_os_profile: str
    base_root: str


def worse(a: NodeStatus, b: NodeStatus) -> NodeStatus:
    """The more severe of two statuses."""
    return a if _RANK[a] >= _RANK[b] else b


def staleness(age_s: float, interval_s: float, policy: AttentionPolicy) -> Verdict:
    """OK, or ATTN/CRIT after too many intervals without a heartbeat."""
    if age_s > interval_s * policy.crit_intervals:
        limit = policy.crit_intervals
        status = NodeStatus.CRIT
    elif age_s > interval_s * policy.attn_intervals:
        limit = policy.attn_intervals
        status = NodeStatus.ATTN
    else:
        return OK
    reason = f"no heartbeat for over {limit:g} intervals ({limit * interval_s:g} s)"
    return Verdict(status, (reason,))


def skew_direction(heartbeat_ts: float, arrival: float, policy: AttentionPolicy) -> int:
    """+1 when the node's clock is ahead beyond the limit, -1 when behind, else 0."""
    skew = heartbeat_ts - arrival
    if skew > policy.max_skew_s:
        return 1
    if skew < -policy.max_skew_s:
        return -1
    return 0


def skew_reason(direction: int, policy: AttentionPolicy) -> str:
    """The reason text for a clock skew in ``direction``."""
    side = "ahead of" if direction > 0 else "behind"
    return f"clock skew: heartbeat timestamp more than {policy.max_skew_s:g} s {side} arrival"


def drift_reasons(node: NodeFacts) -> list[str]:
    """One reason per identity field that differs from the node's baseline."""
    reasons = []
    pairs = (
        ("hostname", node.base_hostname, node.hostname),
        ("os_profile", node.base_os_profile, node.os_profile),
        ("vaultmesh_root", node.base_root, node.vaultmesh_root),
    )
    for name, before, now in pairs:
        if before != now:
            reasons.append(f"drift: {name} changed from {before!r} to {now!r}")
    return reasons


def has_drift(node: NodeFacts) -> bool:
    """True when any identity field differs from the baseline."""
    return (
        node.hostname != node.base_hostname
        or node.os_profile != node.base_os_profile
        or node.vaultmesh_root != node.base_root
    )


def drift_accepted(drift_since: float, now: float, policy: AttentionPolicy) -> bool:
    """True when a drift has lasted long enough to become the new baseline."""
    return policy.drift_accept_s > 0 and now - drift_since >= policy.drift_accept_s


def evaluate(node: NodeFacts, now: float, policy: AttentionPolicy) -> Verdict:
    """The verdict on ``node`` at ``now`` (epoch seconds)."""
    interval = node.interval_s or policy.default_interval_s
    stale = staleness(now - node.last_seen, interval, policy)
    healthy = node.cloudflare_ok and node.services_ok and not node.skew
    if healthy and stale is OK and not has_drift(node):
        return OK  # the common case, kept cheap: it runs on every heartbeat
    status = stale.status
    reasons = list(stale.reasons)
    if not node.cloudflare_ok:
        status = worse(status, policy.cloudflare_status)
        reasons.append(CLOUDFLARE_DOWN)
    if not node.services_ok:
        status = worse(status, policy.services_status)
        reasons.append(SERVICES_DOWN)
    drift = drift_reasons(node)
    if drift:
        status = worse(status, NodeStatus.ATTN)
        reasons.extend(drift)
    if node.skew:
        status = worse(status, NodeStatus.ATTN)
        reasons.append(skew_reason(node.skew, policy))
    return Verdict(status, tuple(reasons))


def attention_event(
    node_id: str,
    hostname: str,
    verdict: Verdict,
    previous: NodeStatus | None,
    now: float,
) -> EventEnvelope:
    """The ``attention`` EventEnvelope announcing a status transition (see contracts)."""
    before = previous.value if previous is not None else "new"
    return EventEnvelope.create(
        kind=EventKind.ATTENTION,
        author=AUTHOR,
        node_id=UUID(node_id),
        severity=SEVERITY[verdict.status],
        body=f"{hostname}: {before} -> {verdict.status.value}",
        data={
            "status": verdict.status.value,
            "previous": previous.value if previous is not None else None,
            "reasons": list(verdict.reasons),
            "hostname": hostname,
        },
        ts=datetime.fromtimestamp(now, UTC),
    )
