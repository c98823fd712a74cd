"""fleet-state settings (environment variables ``VAULTMESH_FLEET_*``)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from vaultmesh.shared.config import ServiceSettings
from vaultmesh.shared.streams import DAY, StreamLimits

from .attention import AttentionPolicy


class FleetSettings(ServiceSettings):
    """Settings of the fleet-state service."""

    # Staleness is judged against each node's own interval; this is used when it sent none.
    fleet_default_interval_s: float = Field(default=30.0, gt=0, le=86400)
    # ATTN / CRIT after this many intervals without a heartbeat.
    fleet_attn_intervals: float = Field(default=3.0, gt=1)
    fleet_crit_intervals: float = Field(default=10.0, gt=1)
    # Heartbeat timestamp vs arrival beyond this is clock skew (ATTN).
    fleet_max_skew_s: float = Field(default=120.0, gt=0)
    # A drifted identity (hostname, os_profile, root) becomes the new baseline after this; 0: never.
    fleet_drift_accept_s: float = Field(default=3600.0, ge=0)
    # How often the staleness sweep runs.
    fleet_sweep_interval_s: float = Field(default=5.0, gt=0, le=3600)
    # Events kept in memory for fleet.api.events.
    fleet_events_window: int = Field(default=500, ge=1, le=100_000)
    # Heartbeats larger than this are rejected (the stream itself caps at 64 KiB).
    fleet_max_heartbeat_bytes: int = Field(default=16 * 1024, ge=256, le=64 * 1024)
    # How long start-up waits for the streams to be replayed before serving anyway.
    fleet_replay_timeout_s: float = Field(default=120.0, gt=0)
    # Stream limits (the clustered stack uses 3 replicas).
    fleet_stream_replicas: int = Field(default=1, ge=1, le=5)
    fleet_heartbeat_history: int = Field(default=100, ge=1, le=10_000)
    fleet_heartbeat_max_age_s: float = Field(default=7 * DAY, gt=0)
    # A node silent for longer than this leaves the registry and FLEET_STATE; 0: never.
    fleet_node_retention_s: float = Field(default=7 * DAY, ge=0)
    # The writer lease's TTL: a replica that dies is replaced as the writer within about
    # this long (whole seconds: the server's per-message TTL granularity).
    fleet_lease_ttl_s: int = Field(default=10, ge=1, le=300)

    @field_validator("fleet_crit_intervals")
    @classmethod
    def _crit_after_attn(cls, value: float, info: ValidationInfo) -> float:
        attn = info.data.get("fleet_attn_intervals")
        if attn is not None and value <= attn:
            raise ValueError("must be larger than VAULTMESH_FLEET_ATTN_INTERVALS")
        return value

    def policy(self) -> AttentionPolicy:
        """The attention thresholds these settings describe."""
        return AttentionPolicy(
            default_interval_s=self.fleet_default_interval_s,
            attn_intervals=self.fleet_attn_intervals,
            crit_intervals=self.fleet_crit_intervals,
            max_skew_s=self.fleet_max_skew_s,
            drift_accept_s=self.fleet_drift_accept_s,
        )

    def limits(self) -> StreamLimits:
        """Stream limits for HEARTBEATS and EVENTS."""
        return StreamLimits(
            replicas=self.fleet_stream_replicas,
            heartbeat_history=self.fleet_heartbeat_history,
            heartbeat_max_age_s=self.fleet_heartbeat_max_age_s,
        )
