"""The agent's persisted node id, on a real filesystem."""

from __future__ import annotations

import stat
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from vaultmesh.services.agent.errors import StateError
from vaultmesh.services.agent.state import node_id_path, read_node_id, resolve_node_id


def test_generated_once_then_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = resolve_node_id(state, None)
    assert first.version == 4
    assert resolve_node_id(state, None) == first
    assert read_node_id(state) == first


def test_state_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    resolve_node_id(state, None)
    assert stat.S_IMODE(node_id_path(state).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert [p.name for p in state.iterdir()] == ["node_id"]  # no temp file left behind


def test_configured_id_wins_and_is_not_stored(tmp_path: Path) -> None:
    configured = uuid4()
    assert resolve_node_id(tmp_path / "state", configured) == configured
    assert read_node_id(tmp_path / "state") is None


def test_new_node_id_replaces_the_stored_one(tmp_path: Path) -> None:
    first = resolve_node_id(tmp_path, None)
    second = resolve_node_id(tmp_path, None, regenerate=True)
    assert second != first
    assert resolve_node_id(tmp_path, None) == second


def test_new_node_id_conflicts_with_a_configured_one(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="VAULTMESH_NODE_ID"):
        resolve_node_id(tmp_path, uuid4(), regenerate=True)


def test_corrupt_state_is_an_error_not_a_silent_new_identity(tmp_path: Path) -> None:
    node_id_path(tmp_path).write_text("garbage\n")
    with pytest.raises(StateError, match="--new-node-id"):
        resolve_node_id(tmp_path, None)
    assert node_id_path(tmp_path).read_text() == "garbage\n"


def test_existing_id_from_a_bootstrap_script_is_accepted(tmp_path: Path) -> None:
    node_id_path(tmp_path).write_text("550e8400-e29b-41d4-a716-446655440000\n")
    assert resolve_node_id(tmp_path, None) == UUID("550e8400-e29b-41d4-a716-446655440000")


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match=r"cannot (read|write)"):
        resolve_node_id(blocker / "state", None)
