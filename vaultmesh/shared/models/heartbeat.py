"""The node heartbeat: seed 000's schema exactly, plus optional metrics and interval.

Policy on unknown fields: ignored (not stored), so a newer agent can talk to an
older control plane. Types are strict: ``"true"`` is not a boolean here.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from vaultmesh.shared.models.common import Timestamp

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# Byte counts: unsigned 64-bit, the integers the bus codec (orjson) can carry.
ByteCount = Annotated[int, Field(ge=0, le=2**64 - 1)]


class NodeMetrics(BaseModel):
    """System metrics an agent may add to its heartbeat (seed 001 V0.2)."""

    model_config = ConfigDict(extra="ignore")

    load1: NonNegative | None = None
    load5: NonNegative | None = None
    load15: NonNegative | None = None
    mem_total_bytes: ByteCount | None = None
    mem_available_bytes: ByteCount | None = None
    disk_total_bytes: ByteCount | None = None
    disk_free_bytes: ByteCount | None = None


class Heartbeat(BaseModel):
    """One heartbeat from a node agent (seed 000 contract)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    node_id: UUID
    hostname: Annotated[str, Field(min_length=1, max_length=253)]
    os_profile: Annotated[str, Field(min_length=1, max_length=64)]
    cloudflare_ok: StrictBool
    services_ok: StrictBool
    vaultmesh_root: Annotated[str, Field(min_length=1, max_length=4096)]
    timestamp: Timestamp
    metrics: NodeMetrics | None = None
    # The agent's VAULTMESH_HEARTBEAT_SECS, so staleness is judged per node.
    interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
