"""The rewrap lease in KV bucket ``VAULT_LEASES`` (a bus adapter; see ``lease``).

One key per lease. Its value names the holder (a random id per process), and each
write carries a per-message TTL (``Nats-TTL``), so the server removes the entry
of a holder that stopped renewing. Taking, renewing and giving up are
compare-and-set on the key's revision: of two replicas racing for a free lease,
one write succeeds. A given-up lease is an empty value without TTL. The leases
live in their own bucket so that their renewals and expiries never touch the
secrets bucket, whose last sequence the key index waits for (``kv_index``).
"""

from __future__ import annotations

import contextlib
import secrets

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError
from nats.js.kv import KeyValue

from vaultmesh.services.vault.lease import LEASE_TTL_S
from vaultmesh.shared import buckets, codec, subjects
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.streams import open_bucket


class KvLease:
    """Lease ``name`` in bucket ``VAULT_LEASES``."""

    def __init__(
        self, js: JetStreamContext, name: str, replicas: int = 1, ttl: int = LEASE_TTL_S
    ) -> None:
        self._js = js
        self._name = name
        self._replicas = replicas
        self._ttl = ttl
        self._subject = subjects.kv_key(subjects.KV_VAULT_LEASES, name)
        self._holder = secrets.token_hex(8).encode("ascii")  # names this process, no secret
        self._revision = 0  # of this process's entry while it holds the lease
        self._kv: KeyValue | None = None

    @property
    def ttl(self) -> float:
        """Seconds the lease lasts unless renewed."""
        return float(self._ttl)

    async def open(self) -> None:
        """Open the lease bucket (made by the provisioning step)."""
        if self._kv is None:
            try:
                self._kv = await open_bucket(self._js, buckets.vault_leases_config(self._replicas))
            except (NatsError, TimeoutError) as exc:
                raise Unavailable(f"vault lease bucket unavailable: {type(exc).__name__}") from None

    async def claim(self) -> bool:
        """Take the lease, or renew it when held; False while another replica holds it."""
        if self._revision and await self._write(self._holder, self._revision, self._ttl):
            return True
        entry = await self._entry()
        if entry is not None and entry.value and entry.value != self._holder:
            return False  # held by another replica (a given-up lease has no value)
        last = entry.revision if entry is not None and entry.revision else 0
        return await self._write(self._holder, last, self._ttl)

    async def release(self) -> None:
        """Give the lease up if held (on a bus failure it lapses by itself)."""
        revision, self._revision = self._revision, 0
        if revision:
            with contextlib.suppress(Unavailable):
                await self._write(b"", revision, None)

    async def _entry(self) -> KeyValue.Entry | None:
        assert self._kv is not None, "lease is not open"
        try:
            return await self._kv.get(self._name)
        except KeyNotFoundError:
            return None
        except (NatsError, TimeoutError) as exc:
            raise Unavailable(f"vault lease unavailable: {type(exc).__name__}") from None

    async def _write(self, value: bytes, last: int, ttl: int | None) -> bool:
        headers = {codec.EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER: str(last)}
        try:
            ack = await self._js.publish(self._subject, value, headers=headers, msg_ttl=ttl)
        except APIError as exc:
            if codec.wrong_last_sequence(exc):
                self._revision = 0
                return False
            raise Unavailable(f"vault lease unavailable: {exc.code}") from None
        except (NatsError, TimeoutError) as exc:
            raise Unavailable(f"vault lease unavailable: {type(exc).__name__}") from None
        self._revision = ack.seq if value else 0
        return True
