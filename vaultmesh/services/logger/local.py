"""Hooks for ``vaultmesh up`` (a local, single-machine run)."""

from __future__ import annotations

from pathlib import Path

from vaultmesh.services.logger.signing import generate_key_file
from vaultmesh.shared import subjects

MICRO_NAME: str | None = subjects.SERVICE_LOGS
DEV_KEY_FILE = "dev-checkpoint.key"


def local_env(data_dir: Path) -> dict[str, str]:
    """Create a development signing key in ``data_dir`` (mode 0600) if none, and point at it."""
    key = data_dir / DEV_KEY_FILE
    generate_key_file(key)
    return {"VAULTMESH_LOGGER_SIGNING_KEY_FILE": str(key)}
