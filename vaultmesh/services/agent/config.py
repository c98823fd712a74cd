"""Agent settings: seed 000's environment variables, optionally from an ``agent.env`` file.

Precedence: command-line overrides, then the real environment, then the env
file (``/etc/vaultmesh/agent.env`` by default, if present), then the YAML file
of ``VAULTMESH_CONFIG``, then the defaults.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from vaultmesh.shared.config import ENV_PREFIX, BusSettings, ConfigError, load_settings

DEFAULT_ENV_FILE = Path("/etc/vaultmesh/agent.env")
CC_URL_VAR = "VAULTMESH_CC_URL"
_LEVEL_NAMES = {"TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "OFF"}


class AgentSettings(BusSettings):
    """Configuration of one node agent (seed 000 plus the bus and safety options)."""

    # An empty variable (``VAULTMESH_NODE_ID=``) means "not set", as in a shell.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    node_id: UUID | None = None
    cc_url: str = "http://127.0.0.1:8088"
    os_profile: Annotated[str, Field(min_length=1, max_length=64)] = "ArchVault"
    root: Path = Path("/var/lib/vaultmesh")
    heartbeat_secs: float = Field(default=30, gt=0, le=86400)
    agent_token: SecretStr | None = None
    state_dir: Path = Path("/var/lib/vaultmesh-agent")
    allow_insecure_http: bool = False
    # Reported hostname; the system hostname when unset (lets `vaultmesh up` name its agents).
    hostname: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    # Upper bound of one in-flight heartbeat delivery (also capped by the interval).
    send_timeout: float = Field(default=10, gt=0, le=300)
    check_timeout: float = Field(default=2, gt=0, le=60)
    log_level: str | None = Field(default=None, validation_alias="LOG_LEVEL")
    rust_log: str | None = Field(default=None, validation_alias="RUST_LOG")

    @field_validator("cc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @property
    def uses_nats(self) -> bool:
        """Publish heartbeats on the bus (VAULTMESH_NATS_URL was given) instead of POSTing."""
        return "nats_url" in self.model_fields_set

    @property
    def effective_timeout(self) -> float:
        """How long one delivery may take: never longer than the heartbeat interval."""
        return min(self.send_timeout, self.heartbeat_secs)

    def level(self) -> str:
        """The log level: LOG_LEVEL, else RUST_LOG's, else INFO."""
        if self.log_level:
            return self.log_level
        return level_from_rust_log(self.rust_log or "")


def level_from_rust_log(value: str) -> str:
    """The level of a RUST_LOG directive list ("info", "agent=debug,hyper=warn")."""
    for directive in value.split(","):
        level = directive.rpartition("=")[2].strip().upper()
        if level in _LEVEL_NAMES:
            return "CRITICAL" if level == "OFF" else level
    return "INFO"


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback IP addresses."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport_security(settings: AgentSettings) -> None:
    """Refuse plain http:// to a non-loopback Command Center unless explicitly allowed."""
    if settings.uses_nats or settings.allow_insecure_http:
        return
    parts = urlsplit(settings.cc_url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"{CC_URL_VAR}: refusing plain http:// to {parts.hostname} (heartbeats and the "
            "host token would cross the network unencrypted); use https:// or set "
            "VAULTMESH_ALLOW_INSECURE_HTTP=true"
        )


def parse_env_file(text: str, source: str = "agent.env") -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (comments, blank lines, ``export`` and quotes allowed)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{source} line {number}: expected KEY=VALUE")
        values[key] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def file_overrides(values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, Any]:
    """Env-file values as settings keyword arguments, except those the real env sets."""
    names = _env_names()
    return {
        names[key]: value
        for key, value in values.items()
        if key in names and key not in environ and value != ""
    }


def _env_names() -> dict[str, str]:
    """Environment variable name -> keyword argument name, for every agent setting."""
    names: dict[str, str] = {}
    for field, info in AgentSettings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[alias] = alias
        else:
            names[f"{ENV_PREFIX}{field}".upper()] = field
    return names


def read_env_file(path: Path | None) -> dict[str, str]:
    """The variables of ``path`` (None: the default file, when it exists)."""
    if path is None:
        if not DEFAULT_ENV_FILE.is_file():
            return {}
        path = DEFAULT_ENV_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--env-file: cannot read {path}: {exc.strerror}") from None
    return parse_env_file(text, str(path))


def load_agent_settings(env_file: Path | None = None, **overrides: Any) -> AgentSettings:
    """Settings from the environment and the env file; raise ConfigError naming bad variables."""
    from_file = file_overrides(read_env_file(env_file), os.environ)
    settings = load_settings(AgentSettings, **{**from_file, **overrides})
    check_transport_security(settings)
    return settings
