"""Settings from environment variables and an optional YAML file.

Every service defines a subclass of ``ServiceSettings``. Values come, in order
of precedence, from environment variables (``VAULTMESH_<FIELD>``), then the YAML
file named by ``VAULTMESH_CONFIG`` (a mapping of field name to value), then the
defaults. ``load_settings`` turns validation failures into a ``ConfigError``
whose message names each bad variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "VAULTMESH_"
CONFIG_FILE_VAR = "VAULTMESH_CONFIG"


class ConfigError(Exception):
    """Configuration is missing or invalid; the message names the variables."""


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the optional YAML file named by ``VAULTMESH_CONFIG``."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data = _read_yaml(os.environ.get(CONFIG_FILE_VAR))

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {key: value for key, value in self._data.items() if key in fields}


def _read_yaml(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE_VAR}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{CONFIG_FILE_VAR}: {path} is not valid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{CONFIG_FILE_VAR}: {path} must hold a mapping")
    return {str(key).lower(): value for key, value in loaded.items()}


class BusSettings(BaseSettings):
    """How to reach NATS and who to be there."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = Field(default=None, repr=False)
    nats_token: str | None = Field(default=None, repr=False)
    nats_nkey_seed_file: Path | None = None
    nats_creds_file: Path | None = None
    # Private reply inboxes (``_INBOX_<identity>``) so no other identity can read our replies.
    nats_inbox_prefix: str = "_INBOX"
    # A dead server must fail fast at start-up: attempts x wait seconds at most.
    nats_connect_attempts: int = Field(default=3, ge=1, le=100)
    nats_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    nats_reconnect_wait: float = Field(default=1.0, gt=0, le=60)
    # Once running, keep reconnecting (-1: for ever) so a NATS restart is survived.
    nats_max_reconnects: int = Field(default=-1, ge=-1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings)


class ServiceSettings(BusSettings):
    """Settings every service has: the bus, logging and its metrics endpoint."""

    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    # Port of the Prometheus /metrics endpoint; 0 picks a free port, -1 disables it.
    metrics_port: int = Field(default=-1, ge=-1, le=65535)
    metrics_host: str = "0.0.0.0"
    # Upper bound for one request body on the bus.
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # How long start-up keeps retrying while the NATS cluster is still forming.
    start_timeout_s: float = Field(default=60.0, ge=0)

    def level(self) -> str:
        """The log level (``LOG_LEVEL``)."""
        return self.log_level


S = TypeVar("S", bound=BaseSettings)


def _variable_name(cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    field = cls.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, str):
        return alias
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment; raise ConfigError naming every bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = [f"{_variable_name(cls, err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
