"""The vault domain (versions, check-and-set, rotation, rewrap) over an in-memory store."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import pytest

from vaultmesh.services.vault import masterkey
from vaultmesh.services.vault.errors import IntegrityError, StaleWrite
from vaultmesh.services.vault.keyring import Keyring
from vaultmesh.services.vault.lease import Lease, LocalLease
from vaultmesh.services.vault.records import Secret, TermRecord
from vaultmesh.services.vault.vault import Limits, Vault
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.errors import Conflict, NotFound


class MemoryStore:
    """A Store kept in dicts (no I/O), with the same optimistic-concurrency contract."""

    backend = "memory"

    def __init__(self) -> None:
        self.secrets: dict[str, Secret] = {}
        self.terms: dict[int, TermRecord] = {}
        self.reserved: dict[int, int] = {}
        self.interfere: str | None = None  # write this path behind the caller's back once

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    def rewrap_lease(self) -> Lease:
        return LocalLease()

    async def has_term(self, term: int) -> bool:
        return term in self.terms

    async def load_terms(self) -> list[TermRecord]:
        return [self.terms[t] for t in sorted(self.terms)]

    async def add_term(self, record: TermRecord) -> bool:
        if record.term in self.terms:
            return False
        self.terms[record.term] = record
        return True

    async def reserve(self, term: int, count: int) -> int:
        self.reserved[term] = self.reserved.get(term, 0) + count
        return self.reserved[term]

    async def read(self, path: str) -> Secret | None:
        return self.secrets.get(path)

    async def write(self, secret: Secret, changed: Collection[int]) -> int:
        if self.interfere == secret.path:
            self.interfere = None
            stored = self.secrets[secret.path]
            self.secrets[secret.path] = replace(stored, rev=stored.rev + 1)
        stored_rev = self.secrets[secret.path].rev if secret.path in self.secrets else 0
        if stored_rev != secret.rev:
            raise StaleWrite
        self.secrets[secret.path] = replace(secret, rev=secret.rev + 1)
        return secret.rev + 1

    async def remove(self, secret: Secret) -> None:
        stored = self.secrets.get(secret.path)
        if stored is None or stored.rev != secret.rev:
            raise StaleWrite
        del self.secrets[secret.path]

    async def paths(self, prefix: str = "") -> list[str]:
        return sorted(p for p in self.secrets if p.startswith(prefix))

    async def count(self) -> int:
        return len(self.secrets)

    async def stale_paths(self, term: int) -> list[str]:
        return sorted(p for p, s in self.secrets.items() if s.older_than(term))


async def _vault(
    store: MemoryStore | None = None, master: bytes | None = None, **limits: int
) -> Vault:
    vault = Vault(
        store or MemoryStore(),
        Keyring(master or masterkey.generate()),
        ManualClock(),
        Limits(**limits),
    )
    await vault.open()
    return vault


async def test_versions_and_metadata() -> None:
    vault = await _vault(max_versions=3)
    for n in range(1, 6):
        secret = await vault.set("db/password", f"v{n}")
        assert secret.current == n
    assert [v.number for v in secret.versions] == [3, 4, 5]
    assert (await vault.get("db/password")).value == "v5"
    assert (await vault.get("db/password", 3)).value == "v3"
    with pytest.raises(NotFound, match="version 2 is not retained"):
        await vault.get("db/password", 2)
    with pytest.raises(NotFound, match="no such secret"):
        await vault.get("nothing")


async def test_timestamps_follow_the_clock() -> None:
    vault = await _vault()
    clock = vault._clock
    assert isinstance(clock, ManualClock)
    first = await vault.set("k", "a")
    clock.advance(60)
    second = await vault.set("k", "b")
    assert second.created == first.created
    assert (second.updated - first.updated).total_seconds() == 60


async def test_check_and_set() -> None:
    vault = await _vault()
    await vault.set("k", "a", cas=0)
    with pytest.raises(Conflict, match="exists"):
        await vault.set("k", "b", cas=0)
    with pytest.raises(Conflict, match="expected version 5"):
        await vault.set("k", "b", cas=5)
    assert (await vault.set("k", "b", cas=1)).current == 2
    with pytest.raises(Conflict, match="absent"):
        await vault.set("other", "x", cas=1)
    assert (await vault.get("k")).value == "b"


async def test_delete_with_and_without_cas() -> None:
    vault = await _vault()
    await vault.set("k", "a")
    await vault.set("k", "b")
    with pytest.raises(Conflict):
        await vault.delete("k", cas=1)
    await vault.delete("k", cas=2)
    with pytest.raises(NotFound):
        await vault.delete("k")
    assert (await vault.set("k", "again", cas=0)).current == 1


async def test_list_by_prefix() -> None:
    vault = await _vault()
    for key in ("app/a", "app/b", "db/x"):
        await vault.set(key, "v")
    assert await vault.list_keys("app/") == ["app/a", "app/b"]
    assert await vault.list_keys() == ["app/a", "app/b", "db/x"]


async def test_a_lost_race_is_retried() -> None:
    store = MemoryStore()
    vault = await _vault(store)
    await vault.set("k", "a")
    store.interfere = "k"
    assert (await vault.set("k", "b")).current == 2
    assert store.interfere is None


async def test_rotate_keeps_old_data_readable_and_rewraps_it() -> None:
    store = MemoryStore()
    vault = await _vault(store)
    for n in range(40):
        await vault.set(f"k{n}", f"value-{n}")
        await vault.set(f"k{n}", f"value-{n}-b")
    assert await vault.rotate() == 2
    assert (await vault.get("k7", 1)).value == "value-7"  # readable mid-rewrap
    await vault.set("new", "x")
    assert store.secrets["new"].versions[0].sealed.term == 2
    await vault.rewrap.wait()
    assert vault.rewrap.progress.state == "done"
    assert vault.rewrap.progress.done == vault.rewrap.progress.total == 40
    assert await store.stale_paths(2) == []
    assert (await vault.get("k7", 1)).value == "value-7"
    assert (await vault.get("k39")).value == "value-39-b"


async def test_automatic_rotation_after_the_encryption_limit() -> None:
    store = MemoryStore()
    vault = await _vault(store, rotate_after=3)
    for n in range(3):
        await vault.set("k", str(n))
    assert vault.keyring.active == 1
    await vault.set("k", "3")
    assert vault.keyring.active == 2
    await vault.rewrap.wait()
    assert all(v.sealed.term == 2 for v in store.secrets["k"].versions)
    assert (await vault.get("k", 1)).value == "0"


async def test_encryption_counts_survive_a_restart() -> None:
    store = MemoryStore()
    master = masterkey.generate()
    first = await _vault(store, master, rotate_after=2)
    await first.set("a", "1")
    again = await _vault(store, master, rotate_after=2)
    await again.set("b", "2")
    await again.set("c", "3")
    assert again.keyring.active == 2


async def test_a_tampered_version_fails_alone_and_rewrap_goes_on() -> None:
    store = MemoryStore()
    vault = await _vault(store)
    await vault.set("good", "fine")
    await vault.set("bad", "v1")
    await vault.set("bad", "v2")
    bad = store.secrets["bad"]
    old = bad.versions[0]
    broken = replace(old.sealed, ciphertext=bytes(len(old.sealed.ciphertext)))
    store.secrets["bad"] = replace(bad, versions=(replace(old, sealed=broken), bad.versions[1]))
    with pytest.raises(IntegrityError):
        await vault.get("bad", 1)
    assert (await vault.get("bad")).value == "v2"
    assert (await vault.get("good")).value == "fine"
    await vault.rotate()
    await vault.rewrap.wait()
    assert vault.rewrap.progress.failed_versions == 1
    assert (await vault.get("bad")).value == "v2"
    assert store.secrets["bad"].versions[1].sealed.term == 2


async def test_a_new_term_from_another_replica_is_picked_up() -> None:
    store = MemoryStore()
    master = masterkey.generate()
    one = await _vault(store, master)
    two = await _vault(store, master)
    await two.rotate()
    await two.set("k", "from-two")
    assert two.keyring.active == 2
    assert (await one.get("k")).value == "from-two"
    assert one.keyring.active == 2
