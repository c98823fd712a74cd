"""Fleet-state views and the requests of the ``fleet`` micro service."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from vaultmesh.shared.models.common import StrictModel, Timestamp
from vaultmesh.shared.models.heartbeat import Heartbeat, NodeMetrics


class NodeStatus(StrEnum):
    """The attention model's verdict on a node."""

    OK = "OK"
    ATTN = "ATTN"
    CRIT = "CRIT"


class NodeView(BaseModel):
    """What the control plane knows about one node."""

    node_id: UUID
    hostname: str
    os_profile: str
    cloudflare_ok: bool
    services_ok: bool
    vaultmesh_root: str
    last_heartbeat: Timestamp
    last_seen: Timestamp
    first_seen: Timestamp
    interval_s: float
    status: NodeStatus
    reasons: list[str] = Field(default_factory=list)
    metrics: NodeMetrics | None = None


class FleetCounts(BaseModel):
    """Fleet KPIs for the mission bar."""

    total: int
    healthy: int
    attention: int
    critical: int


class ListNodesRequest(StrictModel):
    """``fleet.api.list``: nodes, optionally filtered by status."""

    status: NodeStatus | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 1000
    offset: Annotated[int, Field(ge=0)] = 0


class NodeRequest(StrictModel):
    """``fleet.api.get``: one node."""

    node_id: UUID


class DeleteNodeRequest(StrictModel):
    """``fleet.api.delete``: remove one node; ``by`` names who asked (as the caller states it)."""

    node_id: UUID
    by: Annotated[str, Field(max_length=128)] = ""


class RemovalReason(StrEnum):
    """Why a node left the registry."""

    DELETED = "deleted"
    EXPIRED = "expired"


class NodeRemoval(BaseModel):
    """Reply of ``fleet.api.delete``: the node as it was when it was removed."""

    node_id: UUID
    hostname: str
    status: NodeStatus
    last_seen: Timestamp
    reason: RemovalReason
    removed_at: Timestamp


class HistoryRequest(StrictModel):
    """``fleet.api.history``: a node's recent heartbeats, newest first."""

    node_id: UUID
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class NodeList(BaseModel):
    """Reply of ``fleet.api.list``."""

    nodes: list[NodeView]
    total: int


class HeartbeatHistory(BaseModel):
    """Reply of ``fleet.api.history``."""

    node_id: UUID
    heartbeats: list[Heartbeat]
