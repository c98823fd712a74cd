"""Replicas sharing FLEET_STATE (pure): a takeover's plan, and other replicas' writes applied."""

from __future__ import annotations

from uuid import uuid4

from tests.unit.test_fleet_registry import POLICY, T0, beat
from vaultmesh.services.fleet.attention import OK, attention_event
from vaultmesh.services.fleet.derived import TombstoneRecord, parse_record, record_of
from vaultmesh.services.fleet.registry import Change, Registry
from vaultmesh.services.fleet.replication import LEASE_KEY, StateEntry, StateFollower
from vaultmesh.services.fleet.takeover import Stored, plan, read_entry, stored_record
from vaultmesh.services.fleet.tombstones import Tombstones
from vaultmesh.shared.models.events import EventEnvelope
from vaultmesh.shared.models.fleet import NodeStatus, RemovalReason


def _stored(registry: Registry, node: str, rev: int) -> Stored:
    state = registry.get(node)
    assert state is not None
    record = parse_record(record_of(state))
    assert record is not None
    return stored_record(rev, record)


def _tombstone(cutoff: int) -> bytes:
    return (
        TombstoneRecord(removed=RemovalReason.DELETED, at=T0, cutoff_seq=cutoff)
        .model_dump_json()
        .encode()
    )


def test_a_takeover_writes_only_what_the_bucket_does_not_hold() -> None:
    registry = Registry(POLICY)
    same, moved, new, removed, rejoined = (str(uuid4()) for _ in range(5))
    for node in (same, moved, new, removed, rejoined):
        registry.ingest(node, beat(node), T0, T0)
    stored = {same: _stored(registry, same, 7), moved: _stored(registry, moved, 8)}
    registry.ingest(moved, beat(moved, services_ok=False), T0 + 1, T0 + 1)  # now CRIT
    stored[removed] = Stored(9, None)  # removed by another replica after this state
    stored[rejoined] = Stored(3, None)
    node = registry.get(rejoined)
    assert node is not None
    node.rev = 3  # registered anew after that tombstone

    changes = {c.node_id: c for c in plan(registry, stored)}

    assert set(changes) == {moved, new, rejoined}
    assert changes[moved] == Change(moved, NodeStatus.OK, NodeStatus.CRIT)  # from the stored
    assert changes[new].previous is None
    assert changes[rejoined].previous is None
    assert [registry.get(n).rev for n in (same, moved, new)] == [7, 8, 0]  # type: ignore[union-attr]


def test_a_takeover_rewrites_a_changed_reason_without_announcing_it() -> None:
    registry = Registry(POLICY)
    node = str(uuid4())
    registry.ingest(node, beat(node, services_ok=False), T0, T0)  # CRIT, one reason
    stored = {node: _stored(registry, node, 4)}
    registry.ingest(node, beat(node, services_ok=False, cloudflare_ok=False), T0 + 1, T0 + 1)
    [change] = plan(registry, stored)
    assert change.previous is change.status is NodeStatus.CRIT
    assert not change.transition


def test_only_recent_unpublished_events_are_picked_up() -> None:
    registry = Registry(POLICY)
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    state = registry.get(node)
    assert state is not None
    event = attention_event(node, state.hostname, OK, None, T0)
    value = record_of(state, event)
    stored: dict[str, Stored] = {}
    unpublished: list[EventEnvelope] = []
    read_entry(StateEntry(node, value, 5, False, T0 - 10), stored, unpublished, since=T0 - 60)
    read_entry(StateEntry(node, value, 5, False, T0 - 100), stored, unpublished, since=T0 - 60)
    read_entry(StateEntry(LEASE_KEY, b"someone", 6, False, T0), stored, unpublished, T0 - 60)
    assert [e.id for e in unpublished] == [event.id]
    assert set(stored) == {node}


def test_another_replicas_tombstone_removes_the_node_here_unless_it_beat_again() -> None:
    registry, graves = Registry(POLICY), Tombstones()
    forgotten: list[str] = []
    follower = StateFollower(registry, graves, forget=forgotten.append, lease_freed=lambda: None)
    gone, back, unknown = str(uuid4()), str(uuid4()), str(uuid4())
    for node in (gone, back):
        registry.ingest(node, beat(node), T0, T0)
    node = registry.get(back)
    assert node is not None
    node.rev = 20  # written after the tombstone below

    assert follower.apply(StateEntry(gone, _tombstone(10), 12, False, None))
    assert not follower.apply(StateEntry(back, _tombstone(10), 13, False, None))
    assert not follower.apply(StateEntry(unknown, _tombstone(10), 14, False, None))

    assert registry.get(gone) is None
    assert registry.get(back) is not None
    assert forgotten == [gone]
    assert graves.revision(gone) == 12
    assert graves.revision(unknown) == 14
    assert not graves.admits(gone, 10)
    assert graves.admits(gone, 11)


def test_records_move_the_revision_on_and_a_released_lease_is_noticed() -> None:
    registry = Registry(POLICY)
    freed: list[bool] = []
    follower = StateFollower(
        registry, Tombstones(), forget=lambda _: None, lease_freed=lambda: freed.append(True)
    )
    node = str(uuid4())
    registry.ingest(node, beat(node), T0, T0)
    state = registry.get(node)
    assert state is not None
    follower.apply(StateEntry(node, record_of(state), 30, False, None))
    follower.apply(StateEntry(node, record_of(state), 25, False, None))  # late, older
    assert state.rev == 30
    follower.apply(StateEntry(LEASE_KEY, b"a", 31, False, None))
    assert freed == []
    follower.apply(StateEntry(LEASE_KEY, b"", 32, True, None))
    assert freed == [True]
