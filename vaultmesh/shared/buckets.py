"""KV bucket definitions (their configuration is part of the architecture, like streams.py).

The provisioning step (``provision.py``) creates them; a service opens its bucket
with ``streams.open_bucket``.
"""

from __future__ import annotations

from nats.js.api import KeyValueConfig, StorageType

from vaultmesh.shared import subjects

DAY = 24 * 3600
# The longest browser session the gateway can be configured for (VAULTMESH_SESSION_TTL_S).
MAX_SESSION_S = 30 * DAY


def kv_config(bucket: str, replicas: int = 1, history: int = 1) -> KeyValueConfig:
    """A plain KV bucket of VaultMesh (fleet state, vault ciphertexts)."""
    return KeyValueConfig(bucket=bucket, history=history, replicas=replicas)


def session_revocations_config(replicas: int = 1) -> KeyValueConfig:
    """SESSION_REVOCATIONS: one key per logged-out session id, until its cookie expires.

    Each entry is written with a per-message TTL equal to what is left of its
    cookie's lifetime (the bucket's stream allows message TTLs), so the bucket
    cleans itself; the bucket-wide TTL only caps an entry at the longest session.
    """
    return KeyValueConfig(
        bucket=subjects.KV_SESSION_REVOCATIONS,
        description="Revoked gateway browser sessions (logout), kept until the cookie expires",
        history=1,
        ttl=MAX_SESSION_S,
        max_value_size=1024,  # the whole message: value and headers (TTL, expected sequence)
        storage=StorageType.FILE,
        replicas=replicas,
    )


def vault_leases_config(replicas: int = 1) -> KeyValueConfig:
    """VAULT_LEASES: the vault replicas' leases (one key each, e.g. who runs the rewrap).

    A holder writes its entry with a per-message TTL and renews it; the entry of a
    holder that stopped is removed by the server when its TTL runs out.
    """
    return KeyValueConfig(
        bucket=subjects.KV_VAULT_LEASES,
        description="Vault replicas' leases (the background rewrap runs on one replica)",
        history=1,
        max_value_size=1024,
        storage=StorageType.FILE,
        replicas=replicas,
    )
