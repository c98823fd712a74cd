"""The attention model (pure): staleness, failed checks, drift, clock skew, events."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

import pytest

from vaultmesh.services.fleet import attention
from vaultmesh.services.fleet.attention import AttentionPolicy, Verdict
from vaultmesh.shared.models.common import Severity
from vaultmesh.shared.models.events import EventKind
from vaultmesh.shared.models.fleet import NodeStatus

POLICY = AttentionPolicy(default_interval_s=30, attn_intervals=3, crit_intervals=10, max_skew_s=120)
NOW = 1_800_000_000.0


@dataclass
class Facts:
    hostname: str = "vault-01"
    os_profile: str = "ArchVault"
    vaultmesh_root: str = "/var/lib/vaultmesh"
    cloudflare_ok: bool = True
    services_ok: bool = True
    last_seen: float = NOW
    interval_s: float | None = None
    skew: int = 0
    base_hostname: str = "vault-01"
    base_os_profile: str = "ArchVault"
    base_root: str = "/var/lib/vaultmesh"


def test_a_fresh_healthy_node_is_ok() -> None:
    assert attention.evaluate(Facts(), NOW, POLICY) == Verdict(NodeStatus.OK, ())


@pytest.mark.parametrize(
    ("age", "interval", "status"),
    [
        (89, None, NodeStatus.OK),  # default interval 30 s: ATTN beyond 90 s
        (91, None, NodeStatus.ATTN),
        (299, None, NodeStatus.ATTN),
        (301, None, NodeStatus.CRIT),  # CRIT beyond 10 intervals
        (91, 60, NodeStatus.OK),  # measured against the node's own interval
        (181, 60, NodeStatus.ATTN),
        (601, 60, NodeStatus.CRIT),
        (16, 5, NodeStatus.ATTN),
        (-5, None, NodeStatus.OK),  # arrival slightly after "now": not stale
    ],
)
def test_staleness_counts_the_nodes_own_intervals(
    age: float, interval: float | None, status: NodeStatus
) -> None:
    verdict = attention.evaluate(Facts(last_seen=NOW - age, interval_s=interval), NOW, POLICY)
    assert verdict.status is status
    if status is not NodeStatus.OK:
        assert verdict.reasons[0].startswith("no heartbeat for over")


def test_stale_reasons_do_not_change_with_age() -> None:
    # Reasons come from thresholds, so a still-stale node is not "changed" on every sweep.
    a = attention.evaluate(Facts(last_seen=NOW - 100), NOW, POLICY)
    b = attention.evaluate(Facts(last_seen=NOW - 200), NOW, POLICY)
    assert a == b
    assert a.reasons == ("no heartbeat for over 3 intervals (90 s)",)


def test_thresholds_are_configurable() -> None:
    policy = AttentionPolicy(attn_intervals=2, crit_intervals=5)
    assert attention.evaluate(Facts(last_seen=NOW - 61), NOW, policy).status is NodeStatus.ATTN
    assert attention.evaluate(Facts(last_seen=NOW - 151), NOW, policy).status is NodeStatus.CRIT


def test_failed_checks() -> None:
    tunnel = attention.evaluate(Facts(cloudflare_ok=False), NOW, POLICY)
    assert tunnel == Verdict(NodeStatus.ATTN, (attention.CLOUDFLARE_DOWN,))
    root = attention.evaluate(Facts(services_ok=False), NOW, POLICY)
    assert root == Verdict(NodeStatus.CRIT, (attention.SERVICES_DOWN,))
    both = attention.evaluate(Facts(cloudflare_ok=False, services_ok=False), NOW, POLICY)
    assert both.status is NodeStatus.CRIT
    assert both.reasons == (attention.CLOUDFLARE_DOWN, attention.SERVICES_DOWN)


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("hostname", "vault-99", "hostname"),
        ("os_profile", "DebianVault", "os_profile"),
        ("vaultmesh_root", "/srv/vaultmesh", "vaultmesh_root"),
    ],
)
def test_drift_from_the_baseline_needs_attention(field: str, value: str, name: str) -> None:
    facts = Facts()
    setattr(facts, field, value)
    verdict = attention.evaluate(facts, NOW, POLICY)
    assert verdict.status is NodeStatus.ATTN
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith(f"drift: {name} changed from ")
    assert repr(value) in verdict.reasons[0]


def test_drift_acceptance_window() -> None:
    policy = AttentionPolicy(drift_accept_s=600)
    assert not attention.drift_accepted(NOW - 599, NOW, policy)
    assert attention.drift_accepted(NOW - 600, NOW, policy)
    never = AttentionPolicy(drift_accept_s=0)
    assert not attention.drift_accepted(NOW - 10**9, NOW, never)


@pytest.mark.parametrize(
    ("offset", "direction"), [(0, 0), (119, 0), (-119, 0), (121, 1), (-121, -1), (3600, 1)]
)
def test_clock_skew_direction(offset: float, direction: int) -> None:
    assert attention.skew_direction(NOW + offset, NOW, POLICY) == direction


def test_clock_skew_needs_attention_and_says_which_way() -> None:
    ahead = attention.evaluate(Facts(skew=1), NOW, POLICY)
    behind = attention.evaluate(Facts(skew=-1), NOW, POLICY)
    assert ahead.status is behind.status is NodeStatus.ATTN
    assert "ahead of arrival" in ahead.reasons[0]
    assert "behind arrival" in behind.reasons[0]


def test_worst_status_wins_and_every_reason_is_listed() -> None:
    facts = Facts(last_seen=NOW - 1000, cloudflare_ok=False, hostname="other", skew=1)
    verdict = attention.evaluate(facts, NOW, POLICY)
    assert verdict.status is NodeStatus.CRIT
    assert len(verdict.reasons) == 4


def test_worse() -> None:
    assert attention.worse(NodeStatus.OK, NodeStatus.ATTN) is NodeStatus.ATTN
    assert attention.worse(NodeStatus.CRIT, NodeStatus.ATTN) is NodeStatus.CRIT
    assert attention.worse(NodeStatus.OK, NodeStatus.OK) is NodeStatus.OK


def test_attention_event_matches_the_contract() -> None:
    node = str(uuid4())
    verdict = Verdict(NodeStatus.CRIT, ("no heartbeat for over 10 intervals (300 s)",))
    event = attention.attention_event(node, "vault-01", verdict, NodeStatus.ATTN, NOW)
    assert event.kind is EventKind.ATTENTION
    assert event.author == "fleet-state"
    assert str(event.node_id) == node
    assert event.severity is Severity.CRITICAL
    assert event.data == {
        "status": "CRIT",
        "previous": "ATTN",
        "reasons": list(verdict.reasons),
        "hostname": "vault-01",
    }
    assert event.ts.timestamp() == pytest.approx(NOW)
    assert event.id_is_valid()


def test_attention_event_for_a_new_node_has_no_previous() -> None:
    event = attention.attention_event(str(uuid4()), "h", Verdict(NodeStatus.ATTN), None, NOW)
    assert event.data["previous"] is None
    assert event.severity is Severity.WARNING
