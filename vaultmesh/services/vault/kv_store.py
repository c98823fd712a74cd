"""The JetStream KV backend (a bus adapter): ciphertext only, replicated by JetStream.

One KV entry per secret (``s.<base64url(path)>``) holds its metadata and all
retained versions as MessagePack, so a write is one atomic compare-and-set on
the entry's revision; key terms live in ``t.<term>``. The bucket keeps one
revision per key, so a replaced or deleted ciphertext does not linger.

Several replicas share the bucket, and none keeps a copy of an entry: every read
is a get from the stream (the bucket has no direct gets, so the stream leader
answers, which has every acknowledged write). Listing and counting use the key
index (``kv_index``), made current with the stream before each answer; the
rewrap lease is in its own bucket (``kv_lease``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from datetime import datetime
from typing import Any, TypeVar

import msgpack
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from vaultmesh.services.vault.errors import StaleWrite
from vaultmesh.services.vault.kv_index import KeyIndex
from vaultmesh.services.vault.kv_keys import secret_key as _key
from vaultmesh.services.vault.kv_keys import term_key
from vaultmesh.services.vault.kv_lease import KvLease
from vaultmesh.services.vault.lease import Lease
from vaultmesh.services.vault.records import Sealed, Secret, TermRecord, Version
from vaultmesh.shared import codec, subjects
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.streams import ensure_kv

T = TypeVar("T")
_CAS_RETRIES = 20


def _pack(doc: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb(doc, use_bin_type=True))


def _encode_secret(secret: Secret) -> bytes:
    return _pack(
        {
            "created": secret.created.isoformat(),
            "updated": secret.updated.isoformat(),
            "current": secret.current,
            "versions": [
                [
                    v.number,
                    v.created.isoformat(),
                    v.sealed.term,
                    v.sealed.nonce,
                    v.sealed.ciphertext,
                ]
                for v in secret.versions
            ],
        }
    )


def _decode_secret(path: str, data: bytes, rev: int) -> Secret:
    doc = msgpack.unpackb(data, raw=False)
    versions = tuple(
        Version(number, datetime.fromisoformat(created), Sealed(term, nonce, ct))
        for number, created, term, nonce, ct in doc["versions"]
    )
    return Secret(
        path,
        datetime.fromisoformat(doc["created"]),
        datetime.fromisoformat(doc["updated"]),
        int(doc["current"]),
        versions,
        rev,
    )


async def _bus(call: Awaitable[T]) -> T:
    """Await a KV call, turning bus failures into Unavailable (never a raw exception)."""
    try:
        return await call
    except (KeyNotFoundError, KeyWrongLastSequenceError):
        raise
    except (NatsError, TimeoutError) as exc:
        raise Unavailable(
            f"vault storage (JetStream KV) unavailable: {type(exc).__name__}"
        ) from None


class KvStore:
    """The JetStream KV implementation of ``Store``."""

    backend = "jetstream-kv"

    def __init__(self, js: JetStreamContext, replicas: int = 1) -> None:
        self._js = js
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._index = KeyIndex(js, subjects.KV_VAULT)
        self._lease = KvLease(js, "rewrap", replicas)

    async def open(self) -> None:
        """Open the buckets (creating them where this identity may) and load the key index."""
        if self._kv is None:
            self._kv = await _bus(ensure_kv(self._js, subjects.KV_VAULT, self._replicas))
            await self._lease.open()
            await self._index.start()

    async def close(self) -> None:
        """Stop following the bucket (the connection belongs to the service)."""
        await self._index.stop()
        self._kv = None

    def rewrap_lease(self) -> Lease:
        """The lease the rewrap holds while it runs, shared by every replica."""
        return self._lease

    @property
    def _bucket(self) -> KeyValue:
        assert self._kv is not None, "store is not open"
        return self._kv

    # ---- key terms ---------------------------------------------------------------------

    async def load_terms(self) -> list[TermRecord]:
        """Every stored key term, oldest first."""
        await self._index.sync()
        records = []
        for term in self._index.terms:
            doc = msgpack.unpackb((await _bus(self._bucket.get(term_key(term)))).value, raw=False)
            records.append(
                TermRecord(
                    doc["term"], doc["nonce"], doc["key"], datetime.fromisoformat(doc["created"])
                )
            )
        return records

    async def has_term(self, term: int) -> bool:
        """Whether ``term`` is stored (one get: another replica may have just added it)."""
        try:
            await _bus(self._bucket.get(term_key(term)))
        except KeyNotFoundError:
            return False
        return True

    async def add_term(self, record: TermRecord) -> bool:
        """Store a new term; False when it exists."""
        doc = {
            "term": record.term,
            "nonce": record.nonce,
            "key": record.sealed_key,
            "created": record.created.isoformat(),
            "reserved": 0,
        }
        try:
            await _bus(self._bucket.create(term_key(record.term), _pack(doc)))
        except KeyWrongLastSequenceError:
            return False
        return True

    async def reseal_term(self, old: TermRecord, new: TermRecord) -> bool:
        """Replace ``old.term``'s sealed key by ``new``'s if it is still ``old``'s
        (compare-and-set on the term entry, so a concurrent reservation is kept)."""
        key = term_key(old.term)
        for _ in range(_CAS_RETRIES):
            try:
                entry = await _bus(self._bucket.get(key))
            except KeyNotFoundError:
                return False
            doc = msgpack.unpackb(entry.value, raw=False)
            if doc["key"] != old.sealed_key:
                return False
            doc["nonce"], doc["key"] = new.nonce, new.sealed_key
            try:
                await _bus(self._bucket.update(key, _pack(doc), last=entry.revision))
            except KeyWrongLastSequenceError:
                continue
            return True
        raise Unavailable("could not re-seal the key term: its entry is too contended")

    async def reserve(self, term: int, count: int) -> int:
        """Reserve ``count`` encryptions under ``term`` (compare-and-set on the term entry)."""
        key = term_key(term)
        for _ in range(_CAS_RETRIES):
            entry = await _bus(self._bucket.get(key))
            doc = msgpack.unpackb(entry.value, raw=False)
            doc["reserved"] = int(doc.get("reserved", 0)) + count
            try:
                await _bus(self._bucket.update(key, _pack(doc), last=entry.revision))
            except KeyWrongLastSequenceError:
                continue
            return int(doc["reserved"])
        raise Unavailable("could not reserve encryptions: the key term is too contended")

    # ---- secrets -----------------------------------------------------------------------

    async def read(self, path: str) -> Secret | None:
        """The secret at ``path``, or None."""
        try:
            entry = await _bus(self._bucket.get(_key(path)))
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return _decode_secret(path, entry.value, entry.revision)

    async def write(self, secret: Secret, changed: Collection[int]) -> int:
        """Store ``secret`` if its revision is unchanged; the new revision."""
        data = _encode_secret(secret)
        try:
            if secret.rev == 0:
                return int(await _bus(self._bucket.create(_key(secret.path), data)))
            return int(await _bus(self._bucket.update(_key(secret.path), data, last=secret.rev)))
        except KeyWrongLastSequenceError:
            raise StaleWrite from None

    async def remove(self, secret: Secret) -> None:
        """Delete ``secret`` if its revision is unchanged (a delete marker replaces it)."""
        try:
            await self._bucket.delete(_key(secret.path), last=secret.rev)
        except APIError as exc:
            if codec.wrong_last_sequence(exc):
                raise StaleWrite from None
            raise Unavailable(f"vault storage (JetStream KV) unavailable: {exc.code}") from None
        except (NatsError, TimeoutError) as exc:
            raise Unavailable(
                f"vault storage (JetStream KV) unavailable: {type(exc).__name__}"
            ) from None

    async def paths(self, prefix: str = "") -> list[str]:
        """Key paths starting with ``prefix``, sorted (from the index, made current first)."""
        await self._index.sync()
        return self._index.paths(prefix)

    async def count(self) -> int:
        """How many secrets are stored (from the index, made current first)."""
        await self._index.sync()
        return self._index.count

    async def stale_paths(self, term: int) -> list[str]:
        """Paths with a version sealed under a term older than ``term`` (reads every secret)."""
        stale = []
        for path in await self.paths():
            secret = await self.read(path)
            if secret is not None and secret.older_than(term):
                stale.append(path)
        return stale
