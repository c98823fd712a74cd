"""The node registry (pure): registration, change detection, drift, sweep, paging, restore."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from vaultmesh.services.fleet.attention import AttentionPolicy
from vaultmesh.services.fleet.derived import node_from_record, parse_record, record_of
from vaultmesh.services.fleet.registry import Change, Registry
from vaultmesh.services.fleet.views import counts_view, node_view
from vaultmesh.shared.models.fleet import FleetCounts, NodeStatus, NodeView
from vaultmesh.shared.models.heartbeat import Heartbeat

T0 = 1_800_000_000.0
POLICY = AttentionPolicy(drift_accept_s=600)


def beat(node_id: str, at: float = T0, **fields: Any) -> Heartbeat:
    body: dict[str, Any] = {
        "node_id": node_id,
        "hostname": "vault-01",
        "os_profile": "ArchVault",
        "cloudflare_ok": True,
        "services_ok": True,
        "vaultmesh_root": "/var/lib/vaultmesh",
        "timestamp": datetime.fromtimestamp(at, UTC),
        "interval_s": 10,
    }
    body.update(fields)
    return Heartbeat.model_validate(body)


@pytest.fixture
def registry() -> Registry:
    return Registry(POLICY)


def test_first_heartbeat_registers_and_is_a_change(registry: Registry) -> None:
    node = str(uuid4())
    change = registry.ingest(node, beat(node), T0, T0)
    assert change == Change(node, None, NodeStatus.OK)
    assert change.transition  # a new node is announced, so watchers see it join
    state = registry.get(node)
    assert state is not None
    assert state.first_seen == state.last_seen == T0
    assert registry.counts()[NodeStatus.OK] == 1


def test_new_unhealthy_node_is_a_transition(registry: Registry) -> None:
    node = str(uuid4())
    change = registry.ingest(node, beat(node, cloudflare_ok=False), T0, T0)
    assert change is not None
    assert change.transition
    assert change.status is NodeStatus.ATTN


def test_later_heartbeats_update_without_a_change(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    for i in range(1, 5):
        assert registry.ingest(node, beat(node, at=T0 + 10 * i), T0 + 10 * i, T0 + 10 * i) is None
    state = registry.get(node)
    assert state is not None
    assert state.last_seen == T0 + 40
    assert state.first_seen == T0
    assert len(registry) == 1


def test_older_heartbeat_than_known_is_ignored(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0 + 100, T0 + 100)
    assert registry.ingest(node, beat(node, cloudflare_ok=False), T0, T0 + 100) is None
    state = registry.get(node)
    assert state is not None
    assert state.cloudflare_ok


def test_status_transitions_are_reported_with_previous(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    change = registry.ingest(node, beat(node, services_ok=False), T0 + 10, T0 + 10)
    assert change == Change(node, NodeStatus.OK, NodeStatus.CRIT)
    assert change.transition
    back = registry.ingest(node, beat(node), T0 + 20, T0 + 20)
    assert back == Change(node, NodeStatus.CRIT, NodeStatus.OK)
    assert registry.counts() == {NodeStatus.OK: 1, NodeStatus.ATTN: 0, NodeStatus.CRIT: 0}


def test_sweep_marks_stale_nodes_once(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    assert registry.sweep(T0 + 29) == []
    assert registry.sweep(T0 + 31) == [Change(node, NodeStatus.OK, NodeStatus.ATTN)]
    assert registry.sweep(T0 + 50) == []  # still ATTN, same reasons: nothing to write
    assert registry.sweep(T0 + 101) == [Change(node, NodeStatus.ATTN, NodeStatus.CRIT)]
    fresh = registry.ingest(node, beat(node, at=T0 + 200), T0 + 200, T0 + 200)
    assert fresh == Change(node, NodeStatus.CRIT, NodeStatus.OK)


def test_drift_starts_is_accepted_and_becomes_the_baseline(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node, interval_s=86400), T0, T0)
    drifted = registry.ingest(
        node, beat(node, hostname="vault-99", interval_s=86400), T0 + 1, T0 + 1
    )
    assert drifted == Change(node, NodeStatus.OK, NodeStatus.ATTN)
    state = registry.get(node)
    assert state is not None
    assert state.drift_since == T0 + 1
    assert state.reasons == ("drift: hostname changed from 'vault-01' to 'vault-99'",)
    assert registry.sweep(T0 + 300) == []
    assert registry.sweep(T0 + 601) == [Change(node, NodeStatus.ATTN, NodeStatus.OK)]
    assert state.base_hostname == "vault-99"
    assert state.drift_since is None


def test_drift_reverting_clears_it(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    registry.ingest(node, beat(node, os_profile="DebianVault"), T0 + 1, T0 + 1)
    back = registry.ingest(node, beat(node), T0 + 2, T0 + 2)
    assert back == Change(node, NodeStatus.ATTN, NodeStatus.OK)
    state = registry.get(node)
    assert state is not None
    assert state.drift_since is None


def test_clock_skew_from_heartbeat_timestamp_vs_arrival(registry: Registry) -> None:
    node = str(uuid4())
    change = registry.ingest(node, beat(node, at=T0 - 3600), T0, T0)
    assert change is not None
    assert change.status is NodeStatus.ATTN
    state = registry.get(node)
    assert state is not None
    assert "behind arrival" in state.reasons[0]


def test_select_filters_pages_and_sorts_by_hostname(registry: Registry) -> None:
    ids = [str(uuid4()) for _ in range(5)]
    for i, node in enumerate(ids):
        registry.ingest(node, beat(node, hostname=f"h{4 - i}", cloudflare_ok=i % 2 == 0), T0, T0)
    page, total = registry.select(None, 1, 2)
    assert total == 5
    assert [n.hostname for n in page] == ["h1", "h2"]
    attn, total_attn = registry.select(NodeStatus.ATTN, 0, 10)
    assert total_attn == 2
    assert {n.hostname for n in attn} == {"h1", "h3"}
    assert registry.select(NodeStatus.CRIT, 0, 10) == ([], 0)


def test_views_validate_as_the_shared_models(registry: Registry) -> None:
    node = str(uuid4())
    metrics = {"load1": 0.5, "mem_total_bytes": 1024}
    registry.ingest(node, beat(node, metrics=metrics, cloudflare_ok=False), T0, T0)
    state = registry.get(node)
    assert state is not None
    view = NodeView.model_validate(node_view(state, 30.0))
    assert str(view.node_id) == node
    assert view.status is NodeStatus.ATTN
    assert view.interval_s == 10
    assert view.metrics is not None
    assert view.metrics.load1 == 0.5
    assert view.last_seen.timestamp() == pytest.approx(T0)
    counts = FleetCounts.model_validate(counts_view(registry.counts()))
    assert counts == FleetCounts(total=1, healthy=0, attention=1, critical=0)


def test_record_round_trip_restores_derived_state(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    registry.ingest(node, beat(node, hostname="moved", cloudflare_ok=False), T0 + 5, T0 + 5)
    state = registry.get(node)
    assert state is not None
    record = parse_record(record_of(state))
    assert record is not None
    fresh = Registry(POLICY)
    fresh.restore(node, record)
    restored = fresh.get(node)
    assert restored is not None
    for name in ("status", "reasons", "first_seen", "drift_since", "base_hostname", "last_seen"):
        assert getattr(restored, name) == getattr(state, name)
    assert fresh.counts()[NodeStatus.ATTN] == 1
    # A replayed heartbeat identical to what was persisted changes nothing.
    same = beat(node, at=T0 + 5, hostname="moved", cloudflare_ok=False)
    assert fresh.ingest(node, same, T0 + 5, T0 + 6) is None


def test_unreadable_record_is_none() -> None:
    assert parse_record(b"{not json") is None
    assert parse_record(b'{"status": "MAYBE"}') is None


def test_nodes_without_drift_share_identity_strings(registry: Registry) -> None:
    a, b = str(uuid4()), str(uuid4())
    registry.ingest(a, beat(a), T0, T0)
    registry.ingest(b, beat(b), T0, T0)
    sa, sb = registry.get(a), registry.get(b)
    assert sa is not None
    assert sb is not None
    assert sa.os_profile is sb.os_profile
    assert sa.base_hostname is sa.hostname
    record = parse_record(record_of(sa))
    assert record is not None
    rebuilt = node_from_record(a, record)
    assert rebuilt.base_hostname is rebuilt.hostname


def test_restore_keeps_a_drift_in_progress(registry: Registry) -> None:
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    registry.ingest(node, beat(node, os_profile="DebianVault", vaultmesh_root="/x"), T0 + 1, T0 + 1)
    state = registry.get(node)
    assert state is not None
    record = parse_record(record_of(state))
    assert record is not None
    fresh = Registry(POLICY)
    fresh.restore(node, record)
    restored = fresh.get(node)
    assert restored is not None
    assert (restored.base_os_profile, restored.os_profile) == ("ArchVault", "DebianVault")
    assert (restored.base_root, restored.vaultmesh_root) == ("/var/lib/vaultmesh", "/x")
    assert restored.status is NodeStatus.ATTN
    # Reverting ends the drift after a restart too.
    back = fresh.ingest(node, beat(node, at=T0 + 2), T0 + 2, T0 + 2)
    assert back == Change(node, NodeStatus.ATTN, NodeStatus.OK)
