"""``python -m vaultmesh.services.vault``: run the vault service until SIGTERM."""

from __future__ import annotations

import sys
from functools import partial

from vaultmesh.services.vault.config import VaultSettings
from vaultmesh.services.vault.service import build
from vaultmesh.shared.runtime import Builder, run_service


def build_for(settings: VaultSettings) -> Builder:
    """The service builder for ``settings`` (SIGHUP reloads the ACL)."""
    return partial(build, settings=settings, handle_sighup=True)


if __name__ == "__main__":
    sys.exit(run_service(VaultSettings, "vault", build_for))
