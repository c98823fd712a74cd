"""Typed bus requests from the gateway to the fleet-state ``fleet`` micro service.

The gateway holds no fleet state: every answer comes from here.
"""

from __future__ import annotations

from uuid import UUID

from nats.aio.client import Client

from vaultmesh.shared import bus, subjects
from vaultmesh.shared.models.events import EventList, EventsQuery
from vaultmesh.shared.models.fleet import (
    FleetCounts,
    HeartbeatHistory,
    ListNodesRequest,
    NodeList,
    NodeStatus,
    NodeView,
)


class FleetClient:
    """Asks fleet-state over NATS and returns models."""

    def __init__(self, nc: Client, timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = timeout

    async def list_nodes(
        self, status: NodeStatus | None = None, limit: int = 1000, offset: int = 0
    ) -> NodeList:
        """Nodes, optionally only those with ``status``."""
        query = ListNodesRequest(status=status, limit=limit, offset=offset)
        data = await self._ask("list", query.model_dump(mode="json", exclude_none=True))
        return NodeList.model_validate(data)

    async def get_node(self, node_id: UUID) -> NodeView:
        """One node (raises NotFound when unknown)."""
        return NodeView.model_validate(await self._ask("get", {"node_id": str(node_id)}))

    async def history(self, node_id: UUID, limit: int = 100) -> HeartbeatHistory:
        """A node's recent heartbeats, newest first."""
        data = await self._ask("history", {"node_id": str(node_id), "limit": limit})
        return HeartbeatHistory.model_validate(data)

    async def counts(self) -> FleetCounts:
        """Fleet KPIs."""
        return FleetCounts.model_validate(await self._ask("counts", None))

    async def events(self, query: EventsQuery) -> EventList:
        """Recent events from the working set, newest first."""
        data = await self._ask("events", query.model_dump(mode="json", exclude_none=True))
        return EventList.model_validate(data)

    async def _ask(self, op: str, payload: object) -> object:
        return await bus.request(self._nc, subjects.fleet_api(op), payload, timeout=self._timeout)
