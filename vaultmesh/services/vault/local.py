"""Hooks for ``vaultmesh up``: the micro service name to wait for, and a dev key and ACL."""

from __future__ import annotations

from pathlib import Path

from vaultmesh.services.vault import masterkey
from vaultmesh.shared import subjects

MICRO_NAME: str | None = subjects.SERVICE_VAULT
KEY_FILE = "vault-master.key"
ACL_FILE = "vault-acl.yaml"

DEV_ACL = """\
# Development ACL written by `vaultmesh up` (edit, then send SIGHUP to the vault).
acl:
  - principal: admin            # the operator CLI
    operations: ["*"]
    keys: ["**"]
  - principal: scheduler        # scheduled key rotation
    operations: [rotate, status]
"""


def local_env(data_dir: Path) -> dict[str, str]:
    """Create (once) a dev master key (0600) and ACL in ``data_dir``; env pointing at them."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = data_dir / KEY_FILE
    if not key.exists():
        masterkey.write_new(key)
    acl = data_dir / ACL_FILE
    if not acl.exists():
        acl.write_text(DEV_ACL, encoding="utf-8")
    return {
        "VAULTMESH_VAULT_MASTER_KEY_FILE": str(key),
        "VAULTMESH_VAULT_ACL_FILE": str(acl),
    }
