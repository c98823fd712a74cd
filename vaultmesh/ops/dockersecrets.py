"""Docker secrets from the secret files (``secretfiles``), created through the SDK.

Each file becomes the secret ``vaultmesh_<file name, dots as underscores>`` unless one
of that name exists: a Docker secret cannot change, and re-running must never rotate a
key by accident. ``nats_auth.conf`` is the exception. It holds no secret and changes
when a release changes the grants, so it is labelled with its SHA-256, and new content
becomes a new secret ``vaultmesh_nats_auth_conf_<12 hex digits>``; ``swarm deploy``
then names the newest in ``VAULTMESH_STACK_NATS_AUTH_SECRET`` and the NATS servers
restart one by one with the new users. Secret values are never printed or labelled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaultmesh.ops.secretfiles import AUTH_CONF

PREFIX = "vaultmesh_"
LABEL_FILE = "io.vaultmesh.file"
LABEL_DIGEST = "io.vaultmesh.sha256"
AUTH_SECRET = PREFIX + AUTH_CONF.replace(".", "_")


@dataclass(frozen=True)
class Outcome:
    """What happened to one secret: ``created``, ``exists`` or ``new version``."""

    name: str
    action: str


def secret_name(path: Path) -> str:
    """The Docker secret of a secret file, as ``stack.yml`` names it."""
    return PREFIX + path.name.replace(".", "_")


def _index(secret: Any) -> int:
    # The raft index orders secrets by creation; CreatedAt's text does not sort reliably.
    return int((secret.attrs.get("Version") or {}).get("Index", 0))


def _labels(secret: Any) -> dict[str, str]:
    return dict((secret.attrs.get("Spec") or {}).get("Labels") or {})


def auth_versions(secrets: Iterable[Any]) -> list[Any]:
    """The secrets made from ``nats_auth.conf``, oldest first."""
    found = [s for s in secrets if s.name == AUTH_SECRET or _labels(s).get(LABEL_FILE) == AUTH_CONF]
    return sorted(found, key=_index)


def newest_auth_secret(client: Any) -> str | None:
    """The most recent ``nats_auth.conf`` secret, or None when there is none."""
    versions = auth_versions(client.secrets.list())
    return versions[-1].name if versions else None


def _create_auth(client: Any, path: Path, existing: dict[str, Any]) -> Outcome:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    versions = auth_versions(existing.values())
    if versions and _labels(versions[-1]).get(LABEL_DIGEST) == digest:
        return Outcome(versions[-1].name, "exists")
    name = AUTH_SECRET if not versions else f"{AUTH_SECRET}_{digest[:12]}"
    action = "created" if not versions else "new version"
    if name in existing:
        # Back to grants deployed before: that secret exists, a newer one is in the way.
        name = f"{AUTH_SECRET}_{digest[:12]}_{len(versions)}"
    labels = {LABEL_FILE: AUTH_CONF, LABEL_DIGEST: digest}
    client.secrets.create(name=name, data=data, labels=labels)
    return Outcome(name, action)


def create(client: Any, files: Iterable[Path]) -> list[Outcome]:
    """Create the Docker secret of each file where missing (a new version for the auth file)."""
    existing = {s.name: s for s in client.secrets.list()}
    outcomes = []
    for path in files:
        if path.name == AUTH_CONF:
            outcomes.append(_create_auth(client, path, existing))
            continue
        name = secret_name(path)
        if name in existing:
            outcomes.append(Outcome(name, "exists"))
            continue
        client.secrets.create(name=name, data=path.read_bytes(), labels={LABEL_FILE: path.name})
        outcomes.append(Outcome(name, "created"))
    return outcomes
