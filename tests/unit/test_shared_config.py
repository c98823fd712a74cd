"""Settings: environment, YAML file, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultmesh.shared.config import ConfigError, ServiceSettings, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULTMESH_NATS_URL", raising=False)
    settings = load_settings(ServiceSettings)
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.metrics_port == -1


def test_environment_wins_over_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("nats_url: nats://yaml:4222\nmetrics_port: 9100\n")
    monkeypatch.setenv("VAULTMESH_CONFIG", str(conf))
    monkeypatch.setenv("VAULTMESH_NATS_URL", "nats://env:4222")
    settings = load_settings(ServiceSettings)
    assert settings.nats_url == "nats://env:4222"
    assert settings.metrics_port == 9100


def test_error_names_the_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_METRICS_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="VAULTMESH_METRICS_PORT"):
        load_settings(ServiceSettings)


def test_alias_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NATS_CONNECT_ATTEMPTS", "0")
    with pytest.raises(ConfigError, match="VAULTMESH_NATS_CONNECT_ATTEMPTS"):
        load_settings(ServiceSettings)


def test_bad_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("- just\n- a list\n")
    monkeypatch.setenv("VAULTMESH_CONFIG", str(conf))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(ServiceSettings)


def test_password_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NATS_PASSWORD", "hunter2-secret")
    assert "hunter2-secret" not in repr(load_settings(ServiceSettings))
