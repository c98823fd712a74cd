"""The node registry: nodes register on their first heartbeat and are judged on every change.

Pure domain logic (no I/O). ``ingest`` is the per-heartbeat hot path: it
updates one ``NodeState`` in place and returns a ``Change`` only when the
node's derived state changed, which is what gets persisted and announced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vaultmesh.shared.models.fleet import NodeStatus
from vaultmesh.shared.models.heartbeat import Heartbeat

from . import attention
from .attention import AttentionPolicy, Verdict
from .derived import DerivedRecord, node_from_record
from .node import NodeState, pack_metrics

# Strings shared by many nodes (os_profile, vaultmesh_root) are stored once.
_MAX_SHARED_STRINGS = 10_000


@dataclass(frozen=True, slots=True)
class Change:
    """A node's derived state changed; ``previous`` is its status before (None: new node)."""

    node_id: str
    previous: NodeStatus | None
    status: NodeStatus

    @property
    def transition(self) -> bool:
        """True when the status changed; a new node always counts, so watchers see it join."""
        return self.previous is not self.status


class Registry:
    """Every known node, by node id, with status counts kept up to date."""

    def __init__(self, policy: AttentionPolicy) -> None:
        self.policy = policy
        self._nodes: dict[str, NodeState] = {}
        self._counts = dict.fromkeys(NodeStatus, 0)
        self._shared: dict[str, str] = {}
        self._sorted: list[NodeState] | None = None

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, node_id: str) -> NodeState | None:
        """The node with ``node_id``, if known."""
        return self._nodes.get(node_id)

    def counts(self) -> dict[NodeStatus, int]:
        """How many nodes are in each status."""
        return dict(self._counts)

    def ingest(self, node_id: str, hb: Heartbeat, arrival: float, now: float) -> Change | None:
        """Apply one valid heartbeat (arrival and now in epoch seconds)."""
        node = self._nodes.get(node_id)
        if node is None:
            return self.register(node_id, hb, arrival, now)
        return self.update(node, hb, arrival, now)

    def register(
        self, node_id: str, hb: Heartbeat, arrival: float, now: float, rev: int = 0
    ) -> Change:
        """Add a node on its first heartbeat (``node_id`` must be new and canonical).

        ``rev`` is the revision of the tombstone the node replaces, if any (see NodeState).
        """
        node = NodeState(node_id, hb, arrival)
        node.rev = rev
        node.os_profile = node.base_os_profile = self._share(hb.os_profile)
        node.vaultmesh_root = node.base_root = self._share(hb.vaultmesh_root)
        node.skew = attention.skew_direction(node.last_heartbeat, arrival, self.policy)
        self._nodes[node_id] = node
        self._counts[node.status] += 1
        self._sorted = None
        self._apply(node, attention.evaluate(node, now, self.policy))
        return Change(node_id, None, node.status)

    def update(self, node: NodeState, hb: Heartbeat, arrival: float, now: float) -> Change | None:
        """Apply a later heartbeat of a known node; a Change only when derived state changed."""
        if arrival < node.last_seen:
            return None  # older than what we already know (replayed after a newer record)
        self._update(node, hb, arrival)
        if self._still_healthy(node, now):
            return None  # the common case: a healthy node stayed healthy, nothing derived changed
        return self._judge(node, now, drift_changed=self._track_drift(node, arrival, now))

    def sweep(self, now: float) -> list[Change]:
        """Re-judge nodes whose verdict can change with time alone (staleness, drift acceptance)."""
        changes = []
        policy = self.policy
        default = policy.default_interval_s
        attn = policy.attn_intervals
        for node in self._nodes.values():
            overdue = now - node.last_seen > (node.interval_s or default) * attn
            if overdue or node.status is not NodeStatus.OK or node.drift_since is not None:
                change = self._judge(node, now, drift_changed=self._track_drift(node, None, now))
                if change is not None:
                    changes.append(change)
        return changes

    def remove(self, node_id: str) -> NodeState | None:
        """Take ``node_id`` out of the registry; the node as it was, or None when unknown."""
        node = self._nodes.pop(node_id, None)
        if node is not None:
            self._counts[node.status] -= 1
            self._sorted = None
        return node

    def expired(self, now: float, retention_s: float) -> list[str]:
        """Node ids silent for longer than ``retention_s`` at ``now`` (epoch seconds)."""
        horizon = now - retention_s
        return [node.node_id for node in self._nodes.values() if node.last_seen < horizon]

    def restore(self, node_id: str, record: DerivedRecord) -> None:
        """Load a node's persisted derived state (before its heartbeats are replayed)."""
        previous = self._nodes.get(node_id)
        if previous is not None:
            self._counts[previous.status] -= 1
        node = node_from_record(node_id, record)
        node.os_profile = self._share(node.os_profile)
        node.base_os_profile = _prefer(node.os_profile, self._share(node.base_os_profile))
        node.vaultmesh_root = self._share(node.vaultmesh_root)
        node.base_root = _prefer(node.vaultmesh_root, self._share(node.base_root))
        self._nodes[node_id] = node
        self._counts[node.status] += 1
        self._sorted = None

    def select(
        self, status: NodeStatus | None, offset: int, limit: int
    ) -> tuple[list[NodeState], int]:
        """A page of nodes by hostname (optionally one status), and how many match."""
        ordered = self._ordered()
        if status is None:
            return ordered[offset : offset + limit], len(ordered)
        matching = [node for node in ordered if node.status is status]
        return matching[offset : offset + limit], len(matching)

    def __iter__(self) -> Iterator[NodeState]:
        return iter(self._nodes.values())

    # ---- internals -------------------------------------------------------------------

    def _update(self, node: NodeState, hb: Heartbeat, arrival: float) -> None:
        # Keep the existing string objects when unchanged: they are shared with the baseline.
        if hb.hostname != node.hostname:
            node.hostname = _prefer(node.base_hostname, hb.hostname)
            self._sorted = None
        if hb.os_profile != node.os_profile:
            node.os_profile = _prefer(node.base_os_profile, self._share(hb.os_profile))
        if hb.vaultmesh_root != node.vaultmesh_root:
            node.vaultmesh_root = _prefer(node.base_root, self._share(hb.vaultmesh_root))
        node.cloudflare_ok = hb.cloudflare_ok
        node.services_ok = hb.services_ok
        node.last_heartbeat = heartbeat_ts = hb.timestamp.timestamp()
        node.last_seen = arrival
        node.interval_s = hb.interval_s
        node.metrics = pack_metrics(hb.metrics) if hb.metrics is not None else None
        skew = heartbeat_ts - arrival
        limit = self.policy.max_skew_s
        # Inline attention.skew_direction: this runs per heartbeat.
        node.skew = 1 if skew > limit else -1 if skew < -limit else 0

    def _still_healthy(self, node: NodeState, now: float) -> bool:
        """True when the node was OK and this heartbeat leaves every input of the model clean.

        Exactly the case where ``evaluate`` would return OK with no reasons and no drift
        state changes, checked without building a verdict (this runs per heartbeat).
        """
        policy = self.policy
        return (
            node.status is NodeStatus.OK
            and node.cloudflare_ok
            and node.services_ok
            and not node.skew
            and node.drift_since is None
            and node.hostname == node.base_hostname
            and node.os_profile == node.base_os_profile
            and node.vaultmesh_root == node.base_root
            and now - node.last_seen
            <= (node.interval_s or policy.default_interval_s) * policy.attn_intervals
        )

    def _track_drift(self, node: NodeState, arrival: float | None, now: float) -> bool:
        """Start, end or accept a drift; True when the drift state changed."""
        if not attention.has_drift(node):
            if node.drift_since is None:
                return False
            node.drift_since = None
            return True
        if node.drift_since is None:
            node.drift_since = arrival if arrival is not None else now
            return True
        if attention.drift_accepted(node.drift_since, now, self.policy):
            node.base_hostname = node.hostname
            node.base_os_profile = node.os_profile
            node.base_root = node.vaultmesh_root
            node.drift_since = None
            self._sorted = None
            return True
        return False

    def _judge(self, node: NodeState, now: float, *, drift_changed: bool) -> Change | None:
        verdict = attention.evaluate(node, now, self.policy)
        previous = node.status
        if not drift_changed and verdict.status is previous and verdict.reasons == node.reasons:
            return None
        self._apply(node, verdict)
        return Change(node.node_id, previous, verdict.status)

    def _apply(self, node: NodeState, verdict: Verdict) -> None:
        self._counts[node.status] -= 1
        self._counts[verdict.status] += 1
        node.status = verdict.status
        node.reasons = verdict.reasons

    def _share(self, text: str) -> str:
        shared = self._shared.get(text)
        if shared is not None:
            return shared
        if len(self._shared) < _MAX_SHARED_STRINGS:
            self._shared[text] = text
        return text

    def _ordered(self) -> list[NodeState]:
        if self._sorted is None:
            self._sorted = sorted(self._nodes.values(), key=lambda n: (n.hostname, n.node_id))
        return self._sorted


def _prefer(existing: str, new: str) -> str:
    """``existing`` when equal to ``new``: one string object instead of two per node."""
    return existing if existing == new else new
