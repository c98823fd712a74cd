"""Two vault replicas on one KV bucket, in one queue group, over a real nats-server.

Each replica is a whole ``VaultComponent`` on its own connection (as two Swarm
tasks would be); the tests call each replica's vault directly, so that a write
goes through one and the read through the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from tests.integration.test_vault_helpers import (  # noqa: F401 (fixtures)
    AuthNats,
    auth_nats,
    drop_vault_bucket,
    eventually,
    running_vault,
    vault_settings,
)
from vaultmesh.services.vault import kv_index
from vaultmesh.services.vault.kv_lease import KvLease
from vaultmesh.services.vault.service import VaultComponent
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.errors import NotFound

Pair = tuple[VaultComponent, VaultComponent]


@pytest.fixture
async def replicas(auth_nats: AuthNats, data_dir: Path) -> AsyncIterator[Pair]:  # noqa: F811
    """Two running vault replicas sharing the KV bucket (and the master key)."""
    settings = vault_settings(auth_nats, data_dir, vault_backend="kv")
    try:
        async with (
            running_vault(auth_nats, settings) as (one, _, _),
            running_vault(auth_nats, settings) as (two, _, _),
        ):
            yield one, two
    finally:
        await drop_vault_bucket(auth_nats)


@pytest.fixture
async def admin(auth_nats: AuthNats) -> AsyncIterator[Client]:  # noqa: F811
    """The operator CLI's identity."""
    nc = await auth_nats.connect("admin")
    yield nc
    await bus.close(nc)


async def test_a_write_through_one_replica_is_read_through_the_other_at_once(
    replicas: Pair,
) -> None:
    one, two = replicas
    for n in range(150):
        writer, reader = (one, two) if n % 2 == 0 else (two, one)
        key = f"rw/{n:04d}"
        await writer.vault.set(key, f"value-{n}")
        assert (await reader.vault.get(key)).value == f"value-{n}"
        await writer.vault.set(key, f"value-{n}-b")
        assert (await reader.vault.get(key)).value == f"value-{n}-b"
        assert await reader.vault.list_keys("rw/") == [f"rw/{m:04d}" for m in range(n + 1)]
        assert (await reader.vault.status())["secrets"] == n + 1
    for n in range(150):
        writer, reader = (one, two) if n % 2 == 0 else (two, one)
        await writer.vault.delete(f"rw/{n:04d}")
        with pytest.raises(NotFound):
            await reader.vault.get(f"rw/{n:04d}")
        assert len(await reader.vault.list_keys("rw/")) == 149 - n


async def test_list_right_after_writes(replicas: Pair) -> None:
    """The KV backend's list once came back empty right after writes (2 to 6 of these 800
    lists in each of 4 runs); each round lists a fresh prefix at once, on both replicas.
    (Not more rounds: the old listing left a consumer per call on the server for 5
    minutes, and the server refuses more than about a thousand.)"""
    one, two = replicas
    wrong = []
    for n in range(400):
        writer = one if n % 2 == 0 else two
        keys = [f"round/{n}/api/token", f"round/{n}/db/password"]
        for key in reversed(keys):
            await writer.vault.set(key, "v")
        for replica in replicas:
            listed = await replica.vault.list_keys(f"round/{n}/")
            if listed != keys:
                wrong.append((n, listed))
        for key in keys:
            await writer.vault.delete(key)
    assert not wrong, f"{len(wrong)} of 800 lists wrong: {wrong[:3]}"


async def test_a_rotation_on_one_replica_seals_the_others_next_write_under_the_new_term(
    replicas: Pair,
) -> None:
    one, two = replicas
    for n in range(6):
        rotator, writer = (one, two) if n % 2 == 0 else (two, one)
        term = await rotator.vault.rotate()
        stored = await writer.vault.set(f"rot/{n}", "v")
        assert stored.versions[-1].sealed.term == term
        assert writer.vault.keyring.active == term
    assert await one.vault.rotate() == await two.vault.rotate() - 1


async def test_two_replicas_never_rewrap_at_once(replicas: Pair, admin: Client) -> None:
    one, two = replicas
    for n in range(120):
        await one.vault.set(f"wrap/{n:03d}", f"v{n}")
    active: set[str] = set()
    overlaps: list[set[str]] = []
    rewrapped = {"one": 0, "two": 0}
    for name, component in (("one", one), ("two", two)):
        _count_rewraps(name, component, active, overlaps, rewrapped)
    await one.vault.rotate()  # one starts rewrapping 120 records
    await two.vault.rotate()  # two starts newer terms while one's pass runs
    await two.vault.rotate()
    await bus.request(admin, subjects.vault("admin", "rotate"), {})  # either replica

    async def all_rewrapped() -> bool:
        for component in replicas:
            await component.vault.get("wrap/000")  # each replica learns every term
        newest = max(component.vault.keyring.active for component in replicas)
        states = [component.vault.rewrap.progress.state for component in replicas]
        return states == ["done", "done"] and not await one.vault.store.stale_paths(newest)

    await eventually(all_rewrapped, timeout=120)
    assert overlaps == []
    assert rewrapped["one"] + rewrapped["two"] >= 120


def _count_rewraps(
    name: str,
    component: VaultComponent,
    active: set[str],
    overlaps: list[set[str]],
    rewrapped: dict[str, int],
) -> None:
    """Note which replicas are inside a record's rewrap, and any moment both are."""
    inner = component.vault.rewrap._rewrap_one

    async def rewrap_one(path: str, target: int) -> int:
        active.add(name)
        if len(active) > 1:
            overlaps.append(set(active))
        try:
            return await inner(path, target)
        finally:
            active.discard(name)
            rewrapped[name] += 1

    component.vault.rewrap._rewrap_one = rewrap_one


async def test_a_rewrap_waits_for_the_lease_and_takes_over_when_it_lapses(
    replicas: Pair,
    auth_nats: AuthNats,  # noqa: F811
) -> None:
    _one, two = replicas
    await two.vault.set("lapse/a", "v")
    nc = await auth_nats.connect("vault")
    try:
        # A third replica takes the lease, then dies (never renews): its entry lapses in 2 s.
        ghost = KvLease(nc.jetstream(), "rewrap", ttl=2)
        await ghost.open()
        assert await ghost.claim()
        term = await two.vault.rotate()

        async def state_is(wanted: str) -> bool:
            return two.vault.rewrap.progress.state == wanted

        await eventually(lambda: state_is("waiting"), timeout=60)
        await eventually(lambda: state_is("done"), timeout=60)
        assert await two.vault.store.stale_paths(term) == []
    finally:
        await bus.close(nc)


async def test_the_index_rebuilds_when_its_consumer_is_lost(
    replicas: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = replicas
    monkeypatch.setattr(kv_index, "SYNC_WAIT_S", 0.5)
    await one.vault.set("lost/a", "v")
    index = two.vault.store._index  # type: ignore[attr-defined]
    assert await two.vault.list_keys("lost/") == ["lost/a"]
    await index._sub.unsubscribe()  # the consumer is gone behind the index's back
    await one.vault.set("lost/b", "v")
    await one.vault.delete("lost/a")
    assert await two.vault.list_keys("lost/") == ["lost/b"]
    assert index.rebuilds == 1
    await one.vault.set("lost/c", "v")
    assert await two.vault.list_keys("lost/") == ["lost/b", "lost/c"]
