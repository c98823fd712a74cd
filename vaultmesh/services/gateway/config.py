"""Gateway settings: the HTTP listener, who may call it, and its limits.

Tokens come inline (comma list) or from a file (a Docker secret, one per
line). They are never logged: the fields are excluded from ``repr``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from vaultmesh.shared.config import ConfigError, ServiceSettings

# A shorter token is guessable; operators generate them (e.g. `openssl rand -hex 32`).
MIN_TOKEN_LENGTH = 16


class GatewaySettings(ServiceSettings):
    """Everything the gateway reads from ``VAULTMESH_*`` variables."""

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8088, ge=0, le=65535)

    admin_tokens: str = Field(default="", repr=False)
    admin_tokens_file: Path | None = None
    agent_tokens: str = Field(default="", repr=False)
    agent_tokens_file: Path | None = None
    # Seed-V1 agents send no token; accepting them must be an explicit decision.
    agent_ingest_open: bool = False

    # A signed identity JWT set by a fronting access proxy (e.g. Cloudflare Access).
    identity_jwt_header: str = "Cf-Access-Jwt-Assertion"
    identity_jwt_issuer: str | None = None
    identity_jwt_public_key_file: Path | None = None
    identity_jwt_audience: str | None = None
    identity_jwt_leeway_s: float = Field(default=30.0, ge=0, le=600)

    # Browser sessions: a signed cookie, valid this long.
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    # None: mark the cookie Secure when the request came over https.
    cookie_secure: bool | None = None
    # Sign-in throttling: this many refused tokens per client address within the
    # window, then 429 until the oldest of them leaves the window.
    login_attempts: int = Field(default=10, ge=1, le=10_000)
    login_window_s: float = Field(default=300.0, gt=0, le=24 * 3600)

    # Largest request body accepted, checked before any parsing.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Every request's head (request line and headers) and header count, the time to
    # receive a whole request, and the connections held at once (httpserver/limits.py).
    http_max_head_bytes: int = Field(default=16 * 1024, ge=4096, le=1024 * 1024)
    http_max_headers: int = Field(default=100, ge=16, le=10_000)
    http_request_timeout_s: float = Field(default=10.0, gt=0, le=600)
    http_max_connections: int = Field(default=500, ge=1, le=1_000_000)
    publish_timeout_s: float = Field(default=5.0, gt=0, le=60)
    fleet_timeout_s: float = Field(default=5.0, gt=0, le=60)
    ready_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # /healthz says unhealthy once the bus has been gone longer than this (a reconnect
    # in progress is healthy; an orchestrator may restart a gateway without a bus).
    health_bus_grace_s: float = Field(default=30.0, gt=0, le=3600)

    sse_max_clients: int = Field(default=100, ge=1, le=10_000)
    sse_keepalive_s: float = Field(default=15.0, gt=0, le=300)
    sse_queue_size: int = Field(default=256, ge=1, le=100_000)

    # How long SIGTERM waits for open HTTP responses before cancelling them.
    shutdown_grace_s: float = Field(default=10.0, gt=0, le=300)


def _read_token_file(path: Path, variable: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def load_tokens(inline: str, file: Path | None, variable: str) -> tuple[str, ...]:
    """Tokens from a comma list plus an optional file; raise ConfigError for weak ones."""
    tokens = [part.strip() for part in inline.split(",") if part.strip()]
    if file is not None:
        tokens += _read_token_file(file, f"{variable}_FILE")
    for position, value in enumerate(tokens, start=1):
        if len(value) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"{variable}: token #{position} is shorter than {MIN_TOKEN_LENGTH} characters"
            )
    return tuple(dict.fromkeys(tokens))
