"""How operator commands (``vaultmesh vault``, ``vaultmesh logs``) reach NATS.

The environment decides first (``VAULTMESH_NATS_URL`` and the credential
variables of ``BusSettings``). When it names no credentials and a local
``vaultmesh up`` data directory is present (``VAULTMESH_LOCAL_DIR``, default
``./.vaultmesh``), the command connects to that server as its ``admin`` identity,
so the CLI works against ``vaultmesh up`` with no set-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vaultmesh.shared import natsauth
from vaultmesh.shared.config import BusSettings, load_settings
from vaultmesh.shared.natsserver import CLIENT_URL_FILE

LOCAL_DIR_VAR = "VAULTMESH_LOCAL_DIR"
DEFAULT_LOCAL_DIR = ".vaultmesh"


def _has_credentials(settings: BusSettings) -> bool:
    return any(
        (
            settings.nats_user,
            settings.nats_token,
            settings.nats_nkey_seed_file,
            settings.nats_creds_file,
        )
    )


def _local_url(local: Path) -> str | None:
    path = local / "nats" / CLIENT_URL_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def operator_settings(identity: str = natsauth.ADMIN, **overrides: Any) -> BusSettings:
    """Bus settings for an operator command: the environment, else the local ``vaultmesh up``
    (as its ``identity``: the admin, or the provisioner for ``vaultmesh provision``)."""
    settings = load_settings(BusSettings, **overrides)
    local = Path(os.environ.get(LOCAL_DIR_VAR, DEFAULT_LOCAL_DIR))
    identities = local / "secrets" / natsauth.FILE_NAME
    if _has_credentials(settings) or not identities.exists():
        return settings
    own = natsauth.load_or_create(local / "secrets")[identity]
    update: dict[str, Any] = {
        "nats_user": own.name,
        "nats_password": own.password,
        # `vaultmesh up` gives every identity a private reply inbox.
        "nats_inbox_prefix": natsauth.inbox_prefix(own.name),
    }
    url = _local_url(local)
    if url and "nats_url" not in overrides and "VAULTMESH_NATS_URL" not in os.environ:
        update["nats_url"] = url
    return settings.model_copy(update=update)
