"""Hooks for ``vaultmesh up`` (local run): the micro name to wait for, and extra env."""

from __future__ import annotations

from pathlib import Path

from vaultmesh.shared import subjects

MICRO_NAME: str | None = subjects.SERVICE_FLEET


def local_env(data_dir: Path) -> dict[str, str]:
    """fleet-state keeps all state in NATS: no extra environment is needed."""
    del data_dir
    return {}
