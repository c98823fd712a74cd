"""Hooks for ``vaultmesh up`` (local run)."""

from __future__ import annotations

from pathlib import Path

# The gateway is no micro service: `up` checks it with GET /readyz instead.
MICRO_NAME: str | None = None


def local_env(data_dir: Path) -> dict[str, str]:
    """The gateway keeps no data; `up` passes the port and tokens itself."""
    del data_dir
    return {}
