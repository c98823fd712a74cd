"""The vault itself: versioned, encrypted secrets with check-and-set, rotation and rewrap.

No bus, no ACL and no audit here (the service layer does those): this module
turns requests into sealed records and back, with an injected store and clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from vaultmesh.services.vault.budget import Budget
from vaultmesh.services.vault.errors import IntegrityError, StaleWrite
from vaultmesh.services.vault.keyring import Keyring
from vaultmesh.services.vault.records import Sealed, Secret, Version
from vaultmesh.services.vault.rewrap import Rewrapper
from vaultmesh.services.vault.store import Store
from vaultmesh.shared.clock import Clock, rfc3339
from vaultmesh.shared.errors import Conflict, NotFound

log = logging.getLogger(__name__)
# Optimistic writes retry this often when another writer (or the rewrap) got in between.
_WRITE_RETRIES = 8


@dataclass(frozen=True)
class Limits:
    """Tunable limits of the vault."""

    max_versions: int = 10
    rotate_after: int = 1_000_000_000


@dataclass(frozen=True)
class Revealed:
    """A decrypted version and the metadata of its secret."""

    secret: Secret
    version: Version
    value: str


def describe(secret: Secret) -> dict[str, Any]:
    """A secret's metadata as plain data (never its value)."""
    return {
        "key": secret.path,
        "current_version": secret.current,
        "versions": [version.number for version in secret.versions],
        "created": rfc3339(secret.created),
        "updated": rfc3339(secret.updated),
    }


def _check_cas(current: Secret | None, cas: int | None) -> None:
    if cas is None:
        return
    if cas == 0 and current is not None:
        raise Conflict(f"check-and-set failed: the secret exists (version {current.current})")
    if cas > 0 and (current is None or current.current != cas):
        found = "absent" if current is None else f"at version {current.current}"
        raise Conflict(f"check-and-set failed: expected version {cas}, the secret is {found}")


class Vault:
    """Versioned, encrypted secrets over a ``Store``."""

    def __init__(self, store: Store, keyring: Keyring, clock: Clock, limits: Limits) -> None:
        self.store = store
        self.keyring = keyring
        self._clock = clock
        self._limits = limits
        self._budget = Budget(store, limits.rotate_after)
        self._rotating = asyncio.Lock()
        self.rewrap = Rewrapper(store.stale_paths, self.rewrap_one, clock, store.rewrap_lease())
        self.resealed_terms = 0  # terms moved from the previous master key to the master key
        self._opened = False

    async def open(self) -> None:
        """Load the keyring (starting term 1 on a new store) and resume any unfinished rewrap."""
        await self._load_terms()
        if self.keyring.has_previous:
            log.warning(
                "a previous master key is configured; every key term is sealed by the master "
                "key now, so the previous one can be removed from the configuration",
                extra={"resealed_terms": self.resealed_terms},
            )
        if self.keyring.active == 0:
            await self._add_term(1)
        if await self.store.stale_paths(self.keyring.active):
            self.rewrap.start(self.keyring.active)
        self._opened = True

    async def close(self) -> None:
        """Stop the background rewrap."""
        await self.rewrap.stop()

    # ---- reads -------------------------------------------------------------------------

    async def get(self, path: str, version: int | None = None) -> Revealed:
        """Decrypt ``version`` (default: current) of ``path``."""
        secret = await self.store.read(path)
        if secret is None:
            raise NotFound("no such secret")
        found = secret.version(version)
        if found is None:
            raise NotFound(f"version {version} is not retained")
        plaintext = await self._open(path, found)
        return Revealed(secret, found, plaintext.decode("utf-8"))

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Key paths starting with ``prefix``."""
        return await self.store.paths(prefix)

    async def _open(self, path: str, version: Version) -> bytes:
        if not self.keyring.knows(version.sealed.term):
            # Another replica rotated; pick up its new term.
            await self._load_terms()
        try:
            return self.keyring.open(path, version.number, version.sealed)
        except IntegrityError:
            log.error("integrity check failed", extra={"version": version.number})
            raise

    # ---- writes ------------------------------------------------------------------------

    async def set(self, path: str, value: str, cas: int | None = None) -> Secret:
        """Write ``value`` as a new version; honour check-and-set ``cas``."""
        plaintext = value.encode("utf-8")
        for _ in range(_WRITE_RETRIES):
            current = await self._read_for_write(path)
            _check_cas(current, cas)
            number = (current.current if current else 0) + 1
            now = self._clock.now()
            new = Version(number, now, await self._seal(path, number, plaintext))
            kept = ((current.versions if current else ()) + (new,))[-self._limits.max_versions :]
            secret = Secret(
                path,
                current.created if current else now,
                now,
                number,
                kept,
                current.rev if current else 0,
            )
            try:
                return replace(secret, rev=await self.store.write(secret, (number,)))
            except StaleWrite:
                continue
        raise Conflict("the secret changed concurrently too often; retry")

    async def _read_for_write(self, path: str) -> Secret | None:
        """The stored secret; meanwhile ask whether another replica started a newer term, so
        that a write acknowledged after its rotation is sealed under it."""
        current, newer = await asyncio.gather(
            self.store.read(path), self.store.has_term(self.keyring.active + 1)
        )
        if newer:
            await self._load_terms()
        return current

    async def delete(self, path: str, cas: int | None = None) -> Secret:
        """Delete ``path`` and all its versions; with ``cas`` only at that version."""
        for _ in range(_WRITE_RETRIES):
            current = await self.store.read(path)
            if current is None:
                raise NotFound("no such secret")
            _check_cas(current, cas)
            try:
                await self.store.remove(current)
            except StaleWrite:
                continue
            return current
        raise Conflict("the secret changed concurrently too often; retry")

    async def _seal(self, path: str, number: int, plaintext: bytes, rewrap: bool = False) -> Sealed:
        term = self.keyring.active
        if not await self._budget.take(term, hard=rewrap):
            await self._rotate_after(term)
            return await self._seal(path, number, plaintext, rewrap)
        return self.keyring.seal(path, number, plaintext, term)

    # ---- key terms ---------------------------------------------------------------------

    async def rotate(self) -> int:
        """Start a new key term now; old data stays readable and is rewrapped in the background.

        The newest stored term counts, not this replica's: a rotation another replica made
        before this request does not stand in for it (one made meanwhile does).
        """
        await self._load_terms()
        return await self._rotate_after(self.keyring.active, reason="request")

    async def _rotate_after(self, seen: int, reason: str = "limit") -> int:
        async with self._rotating:
            await self._load_terms()
            if self.keyring.active > seen:
                return self.keyring.active  # someone rotated meanwhile
            term = await self._add_term(self.keyring.active + 1)
        log.info("key term started", extra={"term": term, "reason": reason})
        self.rewrap.start(term)
        return term

    async def _add_term(self, term: int) -> int:
        record = self.keyring.create(term, self._clock.now())
        if await self.store.add_term(record):
            self.keyring.load([record])
        else:
            await self._load_terms()
        return self.keyring.active

    async def _load_terms(self) -> None:
        """Load the stored terms; keep those the previous master key sealed re-sealed.

        A term another replica started is rewrapped to here too (one replica at a time,
        see ``rewrap``): if that replica dies mid-pass, this one finishes the work.
        """
        known = self.keyring.active
        for resealed in self.keyring.load(await self.store.load_terms()):
            if await self.store.reseal_term(resealed.old, resealed.new):
                self.resealed_terms += 1
                log.info(
                    "key term re-sealed under the new master key", extra={"term": resealed.old.term}
                )
        if self._opened and self.keyring.active > known:
            log.info("key term started by another replica", extra={"term": self.keyring.active})
            self.rewrap.start(self.keyring.active)

    async def rewrap_one(self, path: str, target: int) -> int:
        """Re-seal ``path``'s versions older than ``target``; return how many failed to open."""
        for _ in range(_WRITE_RETRIES):
            current = await self.store.read(path)
            if current is None or not current.older_than(target):
                return 0
            versions, failed = await self._reseal(current, target)
            changed = [
                new.number
                for new, old in zip(versions, current.versions, strict=True)
                if new is not old
            ]
            if not changed:
                return failed
            try:
                await self.store.write(replace(current, versions=tuple(versions)), changed)
            except StaleWrite:
                continue
            return failed
        return 0

    async def _reseal(self, secret: Secret, target: int) -> tuple[list[Version], int]:
        versions: list[Version] = []
        failed = 0
        for version in secret.versions:
            if version.sealed.term >= target:
                versions.append(version)
                continue
            try:
                plaintext = await self._open(secret.path, version)
            except IntegrityError:
                versions.append(version)
                failed += 1
                continue
            sealed = await self._seal(secret.path, version.number, plaintext, rewrap=True)
            versions.append(replace(version, sealed=sealed))
        return versions, failed

    async def status(self) -> dict[str, Any]:
        """Storage backend, key terms, secret count and rewrap progress."""
        return {
            "backend": self.store.backend,
            "key_term": self.keyring.active,
            "key_terms": len(self.keyring.terms),
            # Once started, every term is sealed by the master key: the previous one is unused.
            "previous_master_key": {
                "configured": self.keyring.has_previous,
                "resealed_terms": self.resealed_terms,
            },
            "secrets": await self.store.count(),
            "rewrap": self.rewrap.progress.as_dict(),
            "rotate_after_encryptions": self._limits.rotate_after,
            "max_versions": self._limits.max_versions,
        }
