"""Agent configuration: env vars, the agent.env file, transport safety (no I/O)."""

from __future__ import annotations

import os
from uuid import UUID

import pytest

from vaultmesh.services.agent.config import (
    AgentSettings,
    check_transport_security,
    file_overrides,
    is_loopback,
    level_from_rust_log,
    parse_env_file,
)
from vaultmesh.shared.config import ConfigError, load_settings

NODE = "550e8400-e29b-41d4-a716-446655440000"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VAULTMESH_") or key in ("LOG_LEVEL", "RUST_LOG"):
            monkeypatch.delenv(key)


def test_seed_defaults() -> None:
    settings = load_settings(AgentSettings)
    assert settings.cc_url == "http://127.0.0.1:8088"
    assert settings.os_profile == "ArchVault"
    assert str(settings.root) == "/var/lib/vaultmesh"
    assert settings.heartbeat_secs == 30
    assert settings.node_id is None
    assert settings.uses_nats is False
    assert settings.level() == "INFO"


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NODE_ID", NODE)
    monkeypatch.setenv("VAULTMESH_HEARTBEAT_SECS", "5")
    monkeypatch.setenv("VAULTMESH_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("RUST_LOG", "debug")
    settings = load_settings(AgentSettings)
    assert settings.node_id == UUID(NODE)
    assert settings.heartbeat_secs == 5
    assert settings.uses_nats is True
    assert settings.level() == "DEBUG"


def test_invalid_node_id_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NODE_ID", "not-a-uuid")
    with pytest.raises(ConfigError, match="VAULTMESH_NODE_ID"):
        load_settings(AgentSettings)


def test_empty_node_id_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NODE_ID", "")
    assert load_settings(AgentSettings).node_id is None


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_bad_interval_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VAULTMESH_HEARTBEAT_SECS", value)
    with pytest.raises(ConfigError, match="VAULTMESH_HEARTBEAT_SECS"):
        load_settings(AgentSettings)


def test_cc_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_CC_URL", "ftp://cc.example")
    with pytest.raises(ConfigError, match="VAULTMESH_CC_URL"):
        load_settings(AgentSettings)


def test_log_level_wins_over_rust_log() -> None:
    settings = AgentSettings.model_validate({"LOG_LEVEL": "error", "RUST_LOG": "debug"})
    assert settings.level() == "error"


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("info", "INFO"),
        ("warn", "WARN"),
        ("vaultmesh_agent=debug,hyper=warn", "DEBUG"),
        ("off", "CRITICAL"),
        ("gibberish", "INFO"),
        ("", "INFO"),
    ],
)
def test_rust_log_levels(value: str, level: str) -> None:
    assert level_from_rust_log(value) == level


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("cc.example", False),
        ("localhost.evil.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_to_remote_host_is_refused() -> None:
    settings = AgentSettings(cc_url="http://cc.example:8088")
    with pytest.raises(ConfigError, match=r"VAULTMESH_CC_URL.*VAULTMESH_ALLOW_INSECURE_HTTP"):
        check_transport_security(settings)


@pytest.mark.parametrize(
    "options",
    [
        {"cc_url": "https://cc.example"},
        {"cc_url": "http://127.0.0.1:8088"},
        {"cc_url": "http://cc.example", "allow_insecure_http": True},
        {"cc_url": "http://cc.example", "nats_url": "nats://127.0.0.1:4222"},
    ],
)
def test_allowed_transports(options: dict[str, object]) -> None:
    check_transport_security(AgentSettings.model_validate(options))


def test_env_file_syntax() -> None:
    text = f"""
# bootstrap
VAULTMESH_NODE_ID={NODE}
export VAULTMESH_CC_URL="https://cc.vaultmesh.example"
VAULTMESH_OS_PROFILE='DebianVault'
RUST_LOG=info
"""
    assert parse_env_file(text) == {
        "VAULTMESH_NODE_ID": NODE,
        "VAULTMESH_CC_URL": "https://cc.vaultmesh.example",
        "VAULTMESH_OS_PROFILE": "DebianVault",
        "RUST_LOG": "info",
    }


@pytest.mark.parametrize("line", ["just words", "=value", "BAD KEY=1"])
def test_env_file_bad_line_names_the_line(line: str) -> None:
    with pytest.raises(ConfigError, match=r"agent\.env line 2"):
        parse_env_file(f"A=1\n{line}\n")


def test_real_environment_overrides_the_file() -> None:
    values = {
        "VAULTMESH_NODE_ID": NODE,
        "VAULTMESH_OS_PROFILE": "DebianVault",
        "RUST_LOG": "debug",
        "UNRELATED": "x",
    }
    kwargs = file_overrides(values, {"VAULTMESH_OS_PROFILE": "ArchVault"})
    assert kwargs == {"node_id": NODE, "RUST_LOG": "debug"}
    settings = load_settings(AgentSettings, **kwargs)
    assert settings.node_id == UUID(NODE)
    assert settings.level() == "DEBUG"
