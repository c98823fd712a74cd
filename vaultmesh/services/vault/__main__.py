"""``python -m vaultmesh.services.vault``: run the vault service until SIGTERM."""

from __future__ import annotations

import sys

from vaultmesh.services.vault.config import VaultSettings
from vaultmesh.services.vault.service import build_for
from vaultmesh.shared.runtime import run_service

if __name__ == "__main__":
    sys.exit(run_service(VaultSettings, "vault", build_for))
