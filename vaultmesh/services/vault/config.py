"""Vault settings, from ``VAULTMESH_*`` variables or the YAML file in ``VAULTMESH_CONFIG``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from vaultmesh.shared.config import ServiceSettings

KIB = 1024
# Random 96-bit nonces: NIST SP 800-38D caps one key at 2^32 encryptions; stay far below.
MAX_ENCRYPTIONS_PER_TERM = 2**31


class VaultSettings(ServiceSettings):
    """Everything the vault reads at start (the master key itself is loaded by ``masterkey``)."""

    data_dir: Path = Path("data/vault")
    vault_backend: Literal["sqlite", "kv"] = "sqlite"
    # SQLite database file; default <data_dir>/vault.db.
    vault_db_file: Path | None = None
    # Replicas of the KV bucket and of stream AUDIT when this vault creates them.
    vault_replicas: int = Field(default=1, ge=1, le=5)
    # Master key sources, in this order: a file, the variable itself, a Docker secret.
    vault_master_key_file: Path | None = None
    vault_master_key: SecretStr | None = Field(default=None, repr=False)
    vault_master_key_secret: str = "vault_master_key"  # noqa: S105 (a file name)
    vault_secrets_dir: Path = Path("/run/secrets")
    # The master key being replaced, while the key terms move over to the new one (same
    # order of sources; the Docker secret is optional).
    vault_previous_master_key_file: Path | None = None
    vault_previous_master_key: SecretStr | None = Field(default=None, repr=False)
    vault_previous_master_key_secret: str = "vault_master_key_previous"  # noqa: S105
    # YAML access policy; without one every request is denied.
    vault_acl_file: Path | None = None
    vault_max_versions: int = Field(default=10, ge=1, le=100)
    vault_max_value_bytes: int = Field(default=64 * KIB, ge=1, le=512 * KIB)
    # A new key term is started automatically after this many encryptions under one term.
    vault_rotate_after: int = Field(default=1_000_000_000, ge=1, le=MAX_ENCRYPTIONS_PER_TERM)
    # Fail-closed: a request whose audit record cannot be stored fails (and changes nothing).
    vault_audit_fail_closed: bool = False
    vault_audit_timeout: float = Field(default=2.0, gt=0, le=60)
    vault_audit_queue: int = Field(default=10_000, ge=1)
    vault_max_in_flight: int = Field(default=256, ge=1)

    @property
    def db_file(self) -> Path:
        """The SQLite database path."""
        return self.vault_db_file or self.data_dir / "vault.db"
