"""Hooks for ``vaultmesh up`` (a local, single-machine run).

The checkpoint signing key is kept with the other local secrets (``<data>/secrets``,
next to the tokens and NATS identities), not in the log directory
(``<data>/logger``): a copy of the log, handed to an auditor, must not carry the
key that could re-sign a rewritten history. Runs before this change kept it in
the log directory as ``dev-checkpoint.key``; it is moved on the next ``up``, so
the log keeps verifying with the same key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vaultmesh.services.logger.signing import generate_key_file
from vaultmesh.shared import subjects

MICRO_NAME: str | None = subjects.SERVICE_LOGS
# ``up`` gives each service <data>/<service> and keeps secrets in <data>/secrets.
SECRETS_DIR = "secrets"
KEY_FILE = "logger-checkpoint.key"
LEGACY_KEY_FILE = "dev-checkpoint.key"  # where runs before kept it: in the log directory


def key_path(data_dir: Path) -> Path:
    """Where the local signing key lives for the log directory ``data_dir``."""
    return data_dir.parent / SECRETS_DIR / KEY_FILE


def local_env(data_dir: Path) -> dict[str, str]:
    """Create a development signing key (mode 0600) with the secrets if none, and point at it."""
    key = key_path(data_dir)
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _move_legacy_key(data_dir / LEGACY_KEY_FILE, key)
    generate_key_file(key)
    return {"VAULTMESH_LOGGER_SIGNING_KEY_FILE": str(key)}


def _move_legacy_key(old: Path, new: Path) -> None:
    """Move a key kept in the log directory by an earlier run to the secrets directory.

    If a key is already at the new place it wins and the old file is left alone
    (it may have signed older checkpoints; ``checkpoint.pub`` still verifies them).
    """
    if new.exists() or not old.exists():
        return
    with contextlib.suppress(FileNotFoundError):  # another ``up`` moved it first
        os.replace(old, new)
