"""Settings of the logger (environment variables ``VAULTMESH_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from vaultmesh.services.logger.errors import SigningKeyError
from vaultmesh.services.logger.signing import load_signing_key
from vaultmesh.shared.config import BusSettings, ServiceSettings

MIB = 1024 * 1024


class LoggerSettings(ServiceSettings):
    """Where the log lives, how it is signed, and how it batches."""

    # The log directory: segments, tree, ROOT.txt, PROOFCHAIN.json, checkpoint.pub.
    data_dir: Path
    # Ed25519 private key (PEM or raw 32-byte seed), e.g. /run/secrets/logger_signing_key.
    logger_signing_key_file: Path
    # Name of this log, written into every checkpoint.
    logger_log_id: str = Field(default="vaultmesh-audit", min_length=1, max_length=128)
    # A segment is closed and a new one started when it would grow past this size.
    logger_segment_bytes: int = Field(default=16 * MIB, ge=4096, le=1024 * MIB)
    # How often a new checkpoint is signed (only when the log grew).
    logger_checkpoint_interval_s: float = Field(default=30.0, gt=0, le=86400)
    # Messages per fetch and per write (one fsync and one ack per stream per batch).
    logger_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Longest wait of one fetch when the streams are idle.
    logger_fetch_wait_s: float = Field(default=1.0, ge=0.05, le=30)
    # Also capture the EVENTS stream (fleet.event.>) with a second durable consumer.
    logger_capture_events: bool = True
    # Also announce a gap in a stream as an incident event (fleet.event.incident._) on
    # EVENTS; the audit record audit.logger.stream_gap is always published.
    logger_gap_incidents: bool = True
    # The system account's monitor user (natsauth.MONITOR): failed NATS logins become audit
    # records. Unset: not watched.
    logger_monitor_user: str | None = None
    logger_monitor_password: SecretStr | None = Field(default=None, repr=False)
    logger_monitor_nkey_seed_file: Path | None = None
    # Replicas for the streams the logger creates when they do not exist yet.
    stream_replicas: int = Field(default=1, ge=1, le=5)

    def monitor_settings(self) -> BusSettings | None:
        """Bus settings of the monitor connection, or None when it has no credentials."""
        if not (self.logger_monitor_user or self.logger_monitor_nkey_seed_file):
            return None
        password = self.logger_monitor_password
        # Every credential field given, so none of the logger's own comes from the environment.
        return BusSettings(
            nats_url=self.nats_url,
            nats_user=self.logger_monitor_user,
            nats_password=password.get_secret_value() if password else None,
            nats_token=None,
            nats_nkey_seed_file=self.logger_monitor_nkey_seed_file,
            nats_creds_file=None,
            nats_inbox_prefix="_INBOX",
            nats_connect_attempts=self.nats_connect_attempts,
            nats_max_reconnects=self.nats_max_reconnects,
        )

    @field_validator("logger_signing_key_file")
    @classmethod
    def _key_is_usable(cls, path: Path) -> Path:
        # Fail at start-up, before connecting, with the file named (never its content).
        try:
            load_signing_key(path)
        except SigningKeyError as exc:
            raise ValueError(str(exc)) from None
        return path
