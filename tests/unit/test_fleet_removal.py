"""Removing nodes (pure): the registry forgets them, tombstones keep replays out, records."""

from __future__ import annotations

from uuid import UUID, uuid4

from tests.unit.test_fleet_registry import POLICY, T0, beat
from vaultmesh.services.fleet.derived import parse_record, parse_tombstone, record_of
from vaultmesh.services.fleet.registry import Registry
from vaultmesh.services.fleet.removal import Removal
from vaultmesh.services.fleet.tombstones import Tombstones
from vaultmesh.shared.models.events import EventKind
from vaultmesh.shared.models.fleet import NodeStatus, RemovalReason


def test_remove_forgets_the_node_and_its_count() -> None:
    registry = Registry(POLICY)
    gone, kept = str(uuid4()), str(uuid4())
    for node in (gone, kept):
        registry.ingest(node, beat(node, hostname=node[:6]), T0, T0)
    assert registry.remove(gone) is not None
    assert registry.remove(gone) is None
    assert registry.get(gone) is None
    assert registry.counts()[NodeStatus.OK] == 1
    assert [n.node_id for n in registry.select(None, 0, 10)[0]] == [kept]


def test_expired_lists_only_nodes_silent_beyond_the_retention() -> None:
    registry = Registry(POLICY)
    old, fresh = str(uuid4()), str(uuid4())
    registry.ingest(old, beat(old), T0, T0)
    registry.ingest(fresh, beat(fresh, at=T0 + 500), T0 + 500, T0 + 500)
    assert registry.expired(T0 + 1000, 1000) == []
    assert registry.expired(T0 + 1001, 1000) == [old]


def test_a_tombstone_refuses_heartbeats_up_to_its_cutoff_then_lets_go() -> None:
    graves = Tombstones()
    node = str(uuid4())
    assert graves.admits(node, 1)  # never removed
    graves.bury(node, cutoff_seq=40, at=T0)
    assert not graves.admits(node, 12)
    assert not graves.admits(node, 40)
    assert node in graves
    assert graves.admits(node, 41)  # beating after the removal
    assert node not in graves


def test_old_tombstones_are_found_for_forgetting() -> None:
    graves = Tombstones()
    graves.bury("a", 1, T0)
    graves.bury("b", 2, T0 + 100)
    assert graves.older_than(T0 + 50) == ["a"]
    graves.forget("a")
    assert len(graves) == 1


def test_a_removal_makes_a_tombstone_an_event_and_an_audit_record() -> None:
    registry = Registry(POLICY)
    node = str(uuid4())
    registry.ingest(node, beat(node, hostname="vault-07"), T0, T0)
    state = registry.get(node)
    assert state is not None
    removal = Removal.of(state, RemovalReason.DELETED, T0 + 5, 99, "admin-token-2")
    tombstone = parse_tombstone(removal.tombstone())
    assert tombstone is not None
    assert (tombstone.cutoff_seq, tombstone.at) == (99, T0 + 5)
    assert parse_record(removal.tombstone()) is None  # never mistaken for a node record
    assert parse_tombstone(record_of(state)) is None
    event = removal.event()
    assert (event.kind, event.node_id, event.author) == (
        EventKind.REMOVAL,
        UUID(node),
        "fleet-state",
    )
    assert event.data["reason"] == "deleted"
    assert event.id_is_valid()
    record = removal.audit()
    assert (record.service, record.action, record.principal, record.node_id) == (
        "fleet",
        "node_delete",
        "admin-token-2",
        node,
    )
    view = removal.view()
    assert (view.hostname, view.status, view.reason) == ("vault-07", NodeStatus.OK, "deleted")
