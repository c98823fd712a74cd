"""The persisted node id: generated once, kept in the agent's state directory.

Seed 000 wants the id to survive restarts. When ``VAULTMESH_NODE_ID`` is not
set, the first start writes a UUID4 to ``<state_dir>/node_id`` (mode 0600,
atomically, never overwriting one that appeared meanwhile) and every later
start reads it back. Only ``--new-node-id`` replaces it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from uuid import UUID

from vaultmesh.services.agent.errors import StateError
from vaultmesh.shared.files import fsync_dir

NODE_ID_FILE = "node_id"


def node_id_path(state_dir: Path) -> Path:
    """Where the node id is kept."""
    return state_dir / NODE_ID_FILE


def read_node_id(state_dir: Path) -> UUID | None:
    """The stored node id, or None when there is none yet."""
    path = node_id_path(state_dir)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {_reason(exc)}") from None
    try:
        return UUID(text)
    except ValueError:
        raise StateError(
            f"{path} does not hold a node id; fix it, or start once with --new-node-id"
        ) from None


def resolve_node_id(state_dir: Path, configured: UUID | None, regenerate: bool = False) -> UUID:
    """The node id to use: the configured one, else the stored one, else a new stored one."""
    if configured is not None:
        if regenerate:
            raise StateError("--new-node-id conflicts with VAULTMESH_NODE_ID; unset one of them")
        return configured
    if not regenerate:
        stored = read_node_id(state_dir)
        if stored is not None:
            return stored
    fresh = uuid.uuid4()
    return _store(state_dir, fresh, replace=regenerate)


def _store(state_dir: Path, node_id: UUID, replace: bool) -> UUID:
    """Write ``node_id`` atomically; without ``replace``, an id stored meanwhile wins."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = _write_temp(state_dir, f"{node_id}\n")
        try:
            if replace:
                os.replace(tmp, node_id_path(state_dir))
            else:
                os.link(tmp, node_id_path(state_dir))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(state_dir)
    except FileExistsError:
        # Another agent process with this state directory stored its id first: use that.
        stored = read_node_id(state_dir)
        if stored is None:
            raise StateError(f"{node_id_path(state_dir)} vanished while being created") from None
        return stored
    except OSError as exc:
        raise StateError(f"cannot write {node_id_path(state_dir)}: {_reason(exc)}") from None
    return node_id


def _write_temp(state_dir: Path, text: str) -> Path:
    tmp = state_dir / f".{NODE_ID_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
