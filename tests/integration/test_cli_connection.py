"""Operator commands find a local `vaultmesh up` (its URL and admin identity) on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultmesh.cli.connection import operator_settings
from vaultmesh.shared import natsauth


@pytest.fixture
def local_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("VAULTMESH_NATS_URL", "VAULTMESH_NATS_USER", "VAULTMESH_NATS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    local = tmp_path / ".vaultmesh"
    natsauth.load_or_create(local / "secrets")
    (local / "nats").mkdir()
    (local / "nats" / "client-url").write_text("nats://127.0.0.1:45123\n")
    monkeypatch.setenv("VAULTMESH_LOCAL_DIR", str(local))
    return local


def test_uses_the_local_admin_identity_and_url(local_up: Path) -> None:
    settings = operator_settings()
    admin = natsauth.load_or_create(local_up / "secrets")[natsauth.ADMIN]
    assert settings.nats_url == "nats://127.0.0.1:45123"
    assert settings.nats_user == "admin"
    assert settings.nats_password == admin.password
    assert settings.nats_inbox_prefix == "_INBOX_admin"


def test_environment_credentials_win(local_up: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NATS_USER", "ops")
    monkeypatch.setenv("VAULTMESH_NATS_PASSWORD", "pw")
    settings = operator_settings()
    assert settings.nats_user == "ops"
    assert settings.nats_url == "nats://127.0.0.1:4222"


def test_an_explicit_url_wins_over_the_local_one(local_up: Path) -> None:
    assert operator_settings(nats_url="nats://elsewhere:4222").nats_url == "nats://elsewhere:4222"


def test_without_a_local_up_the_environment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTMESH_NATS_USER", raising=False)
    monkeypatch.setenv("VAULTMESH_LOCAL_DIR", str(tmp_path / "absent"))
    assert operator_settings().nats_user is None
